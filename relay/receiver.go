package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/tasks"
)

// MaxBodyBytes bounds a webhook body. Synap's are about 1 KiB.
const MaxBodyBytes = 1 << 20

// Enqueuer stores a task in the queue; *asynq.Client is one.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Receiver takes Synap's "User Registered for Exam" webhook. It answers 202
// only once the registration is stored in Redis: Synap does not retry, so
// an answer is a promise.
type Receiver struct {
	queue   Enqueuer
	opts    tasks.Options
	log     *slog.Logger
	metrics *Metrics
}

func NewReceiver(queue Enqueuer, opts tasks.Options, log *slog.Logger, metrics *Metrics) *Receiver {
	return &Receiver{queue: queue, opts: opts, log: log, metrics: metrics}
}

// receipt is the body of every answer: what happened, and the
// registration's id for anyone tracing it.
type receipt struct {
	Status string            `json:"status"`
	ID     string            `json:"id,omitempty"`
	Error  string            `json:"error,omitempty"`
	Fields map[string]string `json:"fields,omitempty"`
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			rc.reject(w, http.StatusUnsupportedMediaType, receipt{Status: "rejected", Error: "Content-Type must be application/json (with curl: -H 'Content-Type: application/json')"})
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			rc.reject(w, http.StatusRequestEntityTooLarge, receipt{Status: "rejected", Error: "body is larger than 1 MiB"})
			return
		}
		rc.reject(w, http.StatusBadRequest, receipt{Status: "rejected", Error: "could not read the body"})
		return
	}

	reg, err := tasks.DecodeRegistration(body)
	if err != nil {
		var problems tasks.Problems
		errors.As(err, &problems)
		rc.log.Info("webhook rejected", "problems", problems.Error())
		rc.reject(w, http.StatusBadRequest, receipt{Status: "rejected", Error: "invalid registration", Fields: problems})
		return
	}

	task, err := tasks.NewRegistrationTask(reg, rc.opts)
	if err != nil {
		rc.log.Error("webhook: encode task", "err", err)
		rc.reject(w, http.StatusInternalServerError, receipt{Status: "error", Error: "internal error"})
		return
	}
	id := reg.ID()
	_, err = rc.queue.EnqueueContext(r.Context(), task)
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		// Delivered before: a success for Synap, nothing new for the student.
		rc.metrics.webhooks.WithLabelValues("duplicate").Inc()
		rc.log.Info("webhook duplicate", "registration", id, "user", reg.User.ID, "exam", reg.Exam.ObjectID)
		writeJSON(w, http.StatusOK, receipt{Status: "duplicate", ID: id})
	case err != nil:
		rc.metrics.webhooks.WithLabelValues("unavailable").Inc()
		rc.log.Error("webhook not stored: queue unavailable", "registration", id, "err", err)
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, receipt{Status: "unavailable", Error: "the queue is unavailable; nothing was stored, send it again"})
	default:
		rc.metrics.webhooks.WithLabelValues("accepted").Inc()
		rc.log.Info("webhook accepted", "registration", id, "user", reg.User.ID, "exam", reg.Exam.ObjectID, "to", maskEmail(reg.User.Email))
		writeJSON(w, http.StatusAccepted, receipt{Status: "accepted", ID: id})
	}
}

func (rc *Receiver) reject(w http.ResponseWriter, code int, body receipt) {
	rc.metrics.webhooks.WithLabelValues("rejected").Inc()
	writeJSON(w, code, body)
}
