package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

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
// only once the registration is stored, in Redis or in the fsynced spool:
// Synap does not retry, so an answer is a promise.
type Receiver struct {
	queue   Enqueuer
	opts    tasks.Options
	spool   *Spool // nil: no spool, 503 while Redis is away
	log     *slog.Logger
	metrics *Metrics
	// Signatures, when set, must verify every request.
	Signatures *StandardWebhooks
}

func NewReceiver(queue Enqueuer, opts tasks.Options, spool *Spool, log *slog.Logger, metrics *Metrics) *Receiver {
	return &Receiver{queue: queue, opts: opts, spool: spool, log: log, metrics: metrics}
}

// enqueueTimeout bounds how long a request waits for Redis before the
// registration goes to the spool instead.
const enqueueTimeout = 2 * time.Second

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

	var deliveryID string
	if rc.Signatures != nil {
		deliveryID, err = rc.Signatures.Verify(r.Header, body, time.Now())
		if err != nil {
			rc.metrics.webhooks.WithLabelValues("unauthorized").Inc()
			rc.log.Warn("webhook signature refused", "remote", r.RemoteAddr, "reason", err.Error())
			writeJSON(w, http.StatusUnauthorized, receipt{Status: "unauthorized", Error: "webhook signature: " + err.Error()})
			return
		}
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
	attrs := []any{"registration", id, "user", reg.User.ID, "exam", reg.Exam.ObjectID, "to", maskEmail(reg.User.Email)}
	var opts []asynq.Option
	if deliveryID != "" {
		// A signed sender retries with the same webhook-id: that is the
		// repeat to recognise. The email and Slack tasks still carry the
		// registration's own id, so a new webhook-id sends nothing twice.
		opts = append(opts, asynq.TaskID(tasks.TypeRegistration+":webhook-id:"+tasks.Digest(deliveryID)))
	}
	outcome, err := rc.store(r.Context(), task, opts...)
	rc.metrics.webhooks.WithLabelValues(outcome).Inc()
	switch outcome {
	case "accepted":
		rc.log.Info("webhook accepted", attrs...)
		writeJSON(w, http.StatusAccepted, receipt{Status: outcome, ID: id})
	case "spooled":
		rc.log.Warn("webhook spooled: Redis unavailable", attrs...)
		writeJSON(w, http.StatusAccepted, receipt{Status: outcome, ID: id})
	case "duplicate":
		// Delivered before: a success for Synap, nothing new for the student.
		rc.log.Info("webhook duplicate", attrs...)
		writeJSON(w, http.StatusOK, receipt{Status: outcome, ID: id})
	default:
		rc.log.Error("webhook not stored", append(attrs, "err", err)...)
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusServiceUnavailable, receipt{Status: "unavailable", Error: "could not store the registration; nothing was kept, send it again"})
	}
}

// store puts the task in Redis, or in the spool when Redis cannot take it,
// and says which: accepted, duplicate, spooled or unavailable.
func (rc *Receiver) store(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (string, error) {
	if rc.spool != nil && rc.spool.Depth() > 0 {
		// Redis was away a moment ago and the spool is not yet drained:
		// don't make this request wait for Redis too.
		return rc.toSpool(task.Payload())
	}
	ctx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()
	_, err := rc.queue.EnqueueContext(ctx, task, opts...)
	switch {
	case err == nil:
		return "accepted", nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return "duplicate", nil
	case rc.spool == nil:
		return "unavailable", err
	}
	rc.log.Warn("redis unavailable; spooling", "err", err)
	return rc.toSpool(task.Payload())
}

func (rc *Receiver) toSpool(payload []byte) (string, error) {
	if err := rc.spool.Append(payload); err != nil {
		return "unavailable", err
	}
	return "spooled", nil
}

// EnqueueSpooled moves one spooled payload into Redis: the spool's drainer
// calls it. A repeat of something already queued is a success.
func (rc *Receiver) EnqueueSpooled(payload []byte) error {
	reg, err := tasks.DecodePayload(payload)
	if err != nil {
		// Not something Redis being back will fix; keeping it would block
		// the spool forever.
		rc.log.Error("spool: dropping an unreadable line", "err", err)
		return nil
	}
	task, err := tasks.NewRegistrationTask(reg, rc.opts)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), enqueueTimeout)
	defer cancel()
	if _, err := rc.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return nil
}

func (rc *Receiver) reject(w http.ResponseWriter, code int, body receipt) {
	rc.metrics.webhooks.WithLabelValues("rejected").Inc()
	writeJSON(w, code, body)
}
