package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/tasks"
)

// ReplicaWaiter says whether the Redis master has a registration, stored
// as the task id in queue or handled since (found), and whether enough
// replicas hold it too (held); *redisstore.Replicas is one.
type ReplicaWaiter interface {
	Hold(ctx context.Context, reg relay.Registration, queue, id string) (found, held bool, err error)
	// HoldAll is Hold for many, with one wait for the replicas.
	HoldAll(ctx context.Context, regs []relay.Registration, queue string, ids []string) (found []bool, held bool, err error)
}

// Receiver takes Synap's "User Registered for Exam" webhook. It answers 2xx
// only once the registration is stored, in Redis or in the fsynced spool:
// Synap does not retry, so an answer is a promise.
type Receiver struct {
	queue    tasks.Enqueuer
	replicas ReplicaWaiter
	opts     tasks.Options
	spool    *Spool
	// unreplicated keeps, with Replicas, the registrations Redis took but
	// too few replicas held yet.
	unreplicated *Spool
	// behind is set while the replicas lag: a copy is kept at once, rather
	// than after a wait that would most likely be in vain, until the
	// sweep of the copies finds the replicas holding them.
	behind  atomic.Bool
	log     *slog.Logger
	metrics *Metrics
}

// ReceiverDeps is everything a Receiver needs; every field but Replicas
// and Unreplicated is required, and Unreplicated is with Replicas.
type ReceiverDeps struct {
	Queue tasks.Enqueuer
	// Replicas, when set, must hold a registration before Redis alone is
	// trusted with it; a copy of one they do not hold yet is kept in
	// Unreplicated until they do.
	Replicas     ReplicaWaiter
	Unreplicated *Spool
	// Options are the rules of the registration tasks it enqueues.
	Options tasks.Options
	// Spool keeps registrations while Redis cannot take them.
	Spool   *Spool
	Metrics *Metrics
	Log     *slog.Logger
}

// NewReceiver is a Receiver with every part it needs, or an error naming
// the part that is missing.
func NewReceiver(d ReceiverDeps) (*Receiver, error) {
	switch {
	case d.Queue == nil:
		return nil, errors.New("receiver: no Queue")
	case d.Spool == nil:
		return nil, errors.New("receiver: no Spool")
	case d.Replicas != nil && d.Unreplicated == nil:
		return nil, errors.New("receiver: Replicas without an Unreplicated spool")
	case d.Metrics == nil:
		return nil, errors.New("receiver: no Metrics")
	case d.Log == nil:
		return nil, errors.New("receiver: no Log")
	}
	return &Receiver{queue: d.Queue, replicas: d.Replicas, opts: d.Options, spool: d.Spool, unreplicated: d.Unreplicated, log: d.Log, metrics: d.Metrics}, nil
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

// answer counts o and tells the sender, with o's HTTP status.
func answer(w http.ResponseWriter, m *Metrics, o relay.Outcome, body receipt) {
	answerWith(w, m, o, o.HTTPStatus(), body)
}

// answerWith is answer with a status that says more than o's own: 413 and
// 415 are rejections too.
func answerWith(w http.ResponseWriter, m *Metrics, o relay.Outcome, status int, body receipt) {
	m.countWebhook(o)
	body.Status = string(o)
	writeJSON(w, status, body)
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, rc.metrics)
	if !ok {
		return
	}
	ctx := r.Context()
	reg, err := relay.DecodeRegistration(body)
	if err != nil {
		var problems relay.Problems
		errors.As(err, &problems)
		rc.log.LogAttrs(ctx, slog.LevelInfo, "webhook rejected", slog.String("problems", problems.Error()))
		answer(w, rc.metrics, relay.Rejected, receipt{Error: "invalid registration", Fields: problems})
		return
	}

	id := reg.ID()
	// The audit line of every webhook: LogAttrs with typed attributes
	// spares slog boxing each value and pairing keys with values.
	attrs := []slog.Attr{
		slog.String("registration", id),
		slog.String("user", reg.User.ID),
		slog.String("exam", reg.Exam.ObjectID),
		slog.String("to", relay.MaskEmail(reg.User.Email)),
	}
	outcome, err := rc.store(ctx, reg, webhookID(ctx))
	switch outcome {
	case relay.Accepted:
		rc.log.LogAttrs(ctx, slog.LevelInfo, "webhook accepted", attrs...)
	case relay.Spooled:
		rc.log.LogAttrs(ctx, slog.LevelWarn, "webhook spooled: Redis unavailable", attrs...)
	case relay.Duplicate:
		// Delivered before: a success for Synap, nothing new for the student.
		rc.log.LogAttrs(ctx, slog.LevelInfo, "webhook duplicate", attrs...)
	default:
		rc.log.LogAttrs(ctx, slog.LevelError, "webhook not stored", append(attrs, slog.Any("err", err))...)
		w.Header().Set("Retry-After", "30")
		answer(w, rc.metrics, outcome, receipt{Error: "could not store the registration; nothing was kept, send it again"})
		return
	}
	answer(w, rc.metrics, outcome, receipt{ID: id})
}

// store puts reg in Redis, or in the spool when Redis cannot take it, and
// says which it came to.
func (rc *Receiver) store(ctx context.Context, reg relay.Registration, webhookID string) (relay.Outcome, error) {
	task, err := tasks.NewRegistrationTask(reg, rc.opts)
	if err != nil {
		return relay.Unavailable, err
	}
	if rc.spool.Depth() > 0 {
		// Redis was away a moment ago and the spool is not yet drained:
		// don't make this request wait for Redis too.
		return rc.toSpool(task.Payload())
	}
	var opts []asynq.Option
	if webhookID != "" {
		opts = append(opts, asynq.TaskID(tasks.WebhookTaskID(webhookID)))
	}
	enqueueCtx, cancel := context.WithTimeout(ctx, enqueueTimeout)
	defer cancel()
	info, err := rc.queue.EnqueueContext(enqueueCtx, task, opts...)
	switch {
	case err == nil:
		rc.replicate(ctx, reg, info, task.Payload())
		return relay.Accepted, nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return relay.Duplicate, nil
	}
	rc.log.Warn("redis unavailable; spooling", "err", err)
	return rc.toSpool(task.Payload())
}

// replicate waits until the replicas asked for hold a task just stored,
// and keeps a copy of the registration until they do when they do not
// yet: a failover now would lose what only the master has. The sweep of
// the copies (ConfirmUnreplicated) stores it again in a master that lacks
// it.
func (rc *Receiver) replicate(ctx context.Context, reg relay.Registration, info *asynq.TaskInfo, payload []byte) {
	if rc.replicas == nil {
		return
	}
	if !rc.behind.Load() {
		_, held, err := rc.replicas.Hold(ctx, reg, info.Queue, info.ID)
		if held {
			return
		}
		rc.behind.Store(true)
		rc.log.Warn("registrations on fewer Redis replicas than RELAY_REDIS_MIN_REPLICAS; keeping a copy of each until they hold it", "registration", info.ID, "err", err)
	}
	rc.metrics.unreplicated.Inc()
	if err := rc.keepUnreplicated(info.ID, payload); err != nil {
		rc.log.Error("registration only on the Redis master: the spool could not keep a copy", "registration", info.ID, "err", err)
	}
}

func (rc *Receiver) toSpool(payload []byte) (relay.Outcome, error) {
	if err := rc.spool.Append(payload); err != nil {
		return relay.Unavailable, err
	}
	return relay.Spooled, nil
}

// EnqueueSpooled moves one spooled payload into Redis: the spool's drainer
// calls it. A repeat of something already queued is a success.
func (rc *Receiver) EnqueueSpooled(payload []byte) error {
	reg, err := tasks.ParseRegistration(payload)
	if err != nil {
		// Not something Redis being back will fix; keeping it would block
		// the spool forever.
		rc.log.Error("spool: dropping an unreadable line", "err", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), enqueueTimeout)
	defer cancel()
	return rc.storeAgain(ctx, reg, tasks.TaskID(tasks.TypeRegistration, reg))
}

// storeAgain enqueues reg, from the spool or a copy, under the task id id;
// one still there is a success.
func (rc *Receiver) storeAgain(ctx context.Context, reg relay.Registration, id string) error {
	task, err := tasks.NewRegistrationTask(reg, rc.opts)
	if err != nil {
		return err
	}
	if _, err := rc.queue.EnqueueContext(ctx, task, asynq.TaskID(id)); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return err
	}
	return nil
}
