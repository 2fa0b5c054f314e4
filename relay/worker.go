package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/tasks"
)

// Worker handles the queue's tasks: it fans a registration out into one
// task per channel, so that one channel's failure never repeats the other,
// and delivers each.
type Worker struct {
	Queue   Enqueuer
	Options tasks.Options
	Mailer  Mailer
	// SlackLimit keeps posts to one destination under Slack's limit,
	// across all workers; nil means no limit of our own.
	SlackLimit *SlackLimiter
	// Board, with a bot token, updates today's digest for an exam instead
	// of posting a new one.
	Board *DigestBoard
	// Reminders, when they have offsets, schedule reminder emails.
	Reminders *Reminders
	// Schedules, when set, tells a confirmation that its dates changed.
	Schedules *ScheduleLog
	Sent      SentLog
	Log       *slog.Logger
	Metrics   *Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	routing atomic.Pointer[Routing]
}

// NewWorker is a Worker with nothing but its routing set.
func NewWorker(r *Routing) *Worker {
	w := &Worker{}
	w.SetRouting(r)
	return w
}

// SetRouting replaces the routes, templates and Slack destinations at
// once: tasks that start after it see only the new ones.
func (w *Worker) SetRouting(r *Routing) { w.routing.Store(r) }

// Routing is the routing in use.
func (w *Worker) Routing() *Routing { return w.routing.Load() }

// Mux routes each task type to its handler.
func (w *Worker) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeRegistration, w.fanOut)
	mux.HandleFunc(tasks.TypeEmail, w.deliverEmail)
	mux.HandleFunc(tasks.TypeSlack, w.deliverSlack)
	mux.HandleFunc(tasks.TypeSlackDigest, w.deliverDigest)
	mux.HandleFunc(tasks.TypeReminder, w.deliverReminder)
	return mux
}

// Aggregate is the asynq GroupAggregator: the registrations gathered for
// one exam become one digest task.
func (w *Worker) Aggregate(group string, items []*asynq.Task) *asynq.Task {
	task, err := tasks.NewDigestTask(group, items, w.Options)
	if err != nil {
		// Marshalling decoded JSON does not fail; if it ever does, an
		// empty digest is logged and dropped rather than crashing asynq.
		w.Log.Error("digest: aggregate", "group", group, "err", err)
		return asynq.NewTask(tasks.TypeSlackDigest, []byte(`{}`), asynq.Queue(tasks.QueueSlack))
	}
	return task
}

func (w *Worker) fanOut(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.DecodePayload(t.Payload())
	if err != nil {
		return archive(err)
	}
	if w.Schedules != nil {
		if reg.Previous, err = w.Schedules.Swap(ctx, reg); err != nil {
			return fmt.Errorf("schedule log: %w", err)
		}
	}
	route := w.Routing().Match(reg)
	var next []*asynq.Task
	if route.Email {
		email, err := tasks.NewEmailTask(reg, w.Options)
		if err != nil {
			return archive(err)
		}
		next = append(next, email)
	}
	switch route.SlackMode {
	case config.SlackEach:
		slack, err := tasks.NewSlackTask(reg, w.Options)
		if err != nil {
			return archive(err)
		}
		next = append(next, slack)
	case config.SlackDigest:
		item, err := tasks.NewDigestItemTask(reg, route.SlackDestination, w.now(), w.Options)
		if err != nil {
			return archive(err)
		}
		next = append(next, item)
	}
	for _, task := range next {
		// A conflict means an earlier run of this task got that far.
		if _, err := w.Queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("enqueue %s: %w", task.Type(), err)
		}
	}
	if route.Email && w.Reminders.enabled() {
		return w.scheduleReminders(ctx, reg)
	}
	return nil
}

func (w *Worker) deliverEmail(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.DecodePayload(t.Payload())
	if err != nil {
		return archive(err)
	}
	return w.deliver(ctx, "email", reg, taskID(ctx), func(routing *Routing, route *Route) error {
		if problem := ScheduleProblem(reg); problem != "" {
			w.Log.Warn(problem, "route", route.Name, "registration", reg.ID(), "exam", reg.Exam.ObjectID)
		}
		email, err := route.Templates.Confirmation(routing.Data(route, reg))
		if err != nil {
			// Fix the template, then re-run the archived task.
			return permanent(fmt.Errorf("render email: %w", err))
		}
		msg, err := newConfirmation(route.Sender, reg, email, w.now())
		if err != nil {
			return permanent(err)
		}
		return w.Mailer.Send(ctx, msg)
	})
}

func (w *Worker) deliverSlack(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.DecodePayload(t.Payload())
	if err != nil {
		return archive(err)
	}
	return w.deliver(ctx, "slack", reg, taskID(ctx), func(routing *Routing, route *Route) error {
		text, err := route.Templates.StaffAlert(routing.Data(route, reg))
		if err != nil {
			return permanent(fmt.Errorf("render slack alert: %w", err))
		}
		return w.postSlack(ctx, route.SlackDestination, route.Slack, text)
	})
}

func (w *Worker) deliverDigest(ctx context.Context, t *asynq.Task) error {
	batch, err := tasks.DecodeDigestBatch(t.Payload())
	if err != nil {
		return archive(err)
	}
	if len(batch.Items) == 0 {
		return nil
	}
	first := batch.Items[0].Registration
	return w.deliver(ctx, "slack", first, taskID(ctx), func(routing *Routing, route *Route) error {
		// The destination the items were gathered for, unless a reload
		// has since removed it.
		destination, slack := batch.Items[0].Destination, route.Slack
		if s, ok := routing.Destination(destination); ok {
			slack = s
		} else {
			destination = route.SlackDestination
		}
		render := func(b tasks.DigestBatch) (string, error) {
			text, err := route.Templates.StaffDigest(routing.Digest(route, b))
			if err != nil {
				return "", permanent(fmt.Errorf("render slack digest: %w", err))
			}
			return text, nil
		}
		var err error
		if messages, ok := slack.(SlackMessages); ok && w.Board != nil {
			err = w.Board.post(ctx, messages, destination, batch, render, func(call func() error) error { return w.callSlack(ctx, destination, call) })
		} else {
			var text string
			if text, err = render(batch); err == nil {
				err = w.postSlack(ctx, destination, slack, text)
			}
		}
		if err != nil {
			return err
		}
		w.Metrics.digestSize.Observe(float64(len(batch.Items)))
		earliest := batch.Items[0].ReceivedAt
		for _, item := range batch.Items {
			if item.ReceivedAt.Before(earliest) {
				earliest = item.ReceivedAt
			}
		}
		w.Metrics.digestDelay.Observe(time.Since(earliest).Seconds())
		return nil
	})
}

// postSlack posts text within our own rate limit for the destination.
func (w *Worker) postSlack(ctx context.Context, destination string, slack Slack, text string) error {
	return w.callSlack(ctx, destination, func() error { return slack.Post(ctx, text) })
}

// callSlack makes one Slack call in turn with every worker posting to the
// destination, and makes Slack's 429 hold them all, not only this task.
func (w *Worker) callSlack(ctx context.Context, destination string, call func() error) error {
	if w.SlackLimit == nil {
		return call()
	}
	if err := w.SlackLimit.Wait(ctx, destination); err != nil {
		return err
	}
	err := call()
	if d := retryAfterOf(err); d > 0 {
		w.SlackLimit.Block(ctx, destination, d)
	}
	return err
}

// deliver runs render-and-send on the route reg takes, counts and logs
// the outcome, and tells asynq what to do next through the error it
// returns. key names the delivery in the sent marks.
func (w *Worker) deliver(ctx context.Context, channel string, reg tasks.Registration, key string, send func(*Routing, *Route) error) error {
	// One routing for the whole delivery, even if a reload lands meanwhile.
	routing := w.Routing()
	route := routing.Match(reg)
	attrs := []any{"channel", channel, "route", route.Name, "registration", reg.ID(), "user", reg.User.ID, "exam", reg.Exam.ObjectID}
	sent, err := w.Sent.Sent(ctx, key)
	if err != nil {
		return temporary(fmt.Errorf("check sent mark: %w", err))
	}
	if sent {
		// A re-run of a task whose worker stopped after sending.
		w.Metrics.deliveries.WithLabelValues(channel, "already_sent").Inc()
		w.Log.Warn("already delivered; not sending again", attrs...)
		return nil
	}

	start := time.Now()
	err = send(routing, route)
	w.Metrics.sendTime.WithLabelValues(channel).Observe(time.Since(start).Seconds())
	if err == nil {
		w.Metrics.deliveries.WithLabelValues(channel, "sent").Inc()
		w.Log.Info("delivered", attrs...)
		if err := w.Sent.Mark(ctx, key); err != nil {
			w.Log.Error("delivered but could not record it; a re-run would send again", append(attrs, "err", err)...)
		}
		return nil
	}
	attrs = append(attrs, "err", err)
	switch KindOf(err) {
	case KindPermanent:
		w.Metrics.deliveries.WithLabelValues(channel, "failed").Inc()
		w.Log.Error("delivery failed for good; archived", attrs...)
		return archive(err)
	case KindRateLimited:
		w.Metrics.deliveries.WithLabelValues(channel, "rate_limited").Inc()
		w.Log.Warn("rate limited; waiting as asked", append(attrs, "retry_after", retryAfterOf(err))...)
		return err
	default:
		if retried, _ := asynq.GetRetryCount(ctx); isLastAttempt(ctx, retried) {
			w.Metrics.deliveries.WithLabelValues(channel, "failed").Inc()
			w.Log.Error("delivery failed on its last attempt; archived", attrs...)
			return err
		}
		w.Metrics.deliveries.WithLabelValues(channel, "retry").Inc()
		w.Log.Warn("delivery failed; will retry", attrs...)
		return err
	}
}

func taskID(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}

func isLastAttempt(ctx context.Context, retried int) bool {
	max, ok := asynq.GetMaxRetry(ctx)
	return ok && retried >= max
}

func (w *Worker) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

// archive tells asynq to keep the task with the reason, not to retry it.
func archive(err error) error {
	return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
}

// WorkerSettings are the knobs of a worker process.
type WorkerSettings struct {
	Concurrency     int
	ShutdownTimeout time.Duration
	// RetrySchedule is the wait before each retry; the last one repeats.
	RetrySchedule []time.Duration
	// Aggregator, when set, gathers digest items by Digest's rules.
	Aggregator asynq.GroupAggregator
	Digest     DigestWindow
}

// DigestWindow is when asynq hands a group of digest items over.
type DigestWindow struct {
	Grace, MaxDelay time.Duration
	MaxSize         int
}

// ServerConfig is the asynq configuration a worker runs with.
func ServerConfig(s WorkerSettings, log *slog.Logger) asynq.Config {
	c := asynq.Config{
		Concurrency:    s.Concurrency,
		Queues:         tasks.Queues,
		RetryDelayFunc: retryDelay(s.RetrySchedule),
		IsFailure:      IsFailure,
		// Idle queues are polled this often; asynq's 1 s default would add
		// up to a second to every quiet-time registration.
		TaskCheckInterval: 200 * time.Millisecond,
		// Retries and rate-limit waits become due with this precision.
		DelayedTaskCheckInterval: time.Second,
		ShutdownTimeout:          s.ShutdownTimeout,
		Logger:                   AsynqLogger(log),
		LogLevel:                 asynq.WarnLevel,
	}
	if s.Aggregator != nil {
		c.GroupAggregator = s.Aggregator
		c.GroupGracePeriod = s.Digest.Grace
		c.GroupMaxDelay = s.Digest.MaxDelay
		c.GroupMaxSize = s.Digest.MaxSize
	}
	return c
}

// retryDelay waits what a rate limiter asked for when it asked, else
// follows the schedule with up to 20% jitter, so that a burst that failed
// together does not retry together.
func retryDelay(schedule []time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, _ *asynq.Task) time.Duration {
		if d := retryAfterOf(err); d > 0 {
			return d
		}
		d := schedule[min(n, len(schedule)-1)]
		return d + rand.N(d/5+1)
	}
}

// IsFailure is the asynq IsFailure func: waiting out a rate limit does not
// spend an attempt.
func IsFailure(err error) bool {
	return KindOf(err) != KindRateLimited
}
