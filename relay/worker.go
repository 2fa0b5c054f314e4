package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/tasks"
	"github.com/exam-relay/relay/templates"
)

// Worker handles the queue's tasks: it fans a registration out into one
// task per channel, so that one channel's failure never repeats the other,
// and delivers each.
type Worker struct {
	Queue     Enqueuer
	Options   tasks.Options
	Templates *templates.Set
	Location  *time.Location
	Sender    Sender
	Mailer    Mailer
	Slack     Slack
	Sent      SentLog
	Log       *slog.Logger
	Metrics   *Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Mux routes each task type to its handler.
func (w *Worker) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.HandleFunc(tasks.TypeRegistration, w.fanOut)
	mux.HandleFunc(tasks.TypeEmail, w.deliverEmail)
	mux.HandleFunc(tasks.TypeSlack, w.deliverSlack)
	return mux
}

func (w *Worker) fanOut(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.DecodePayload(t.Payload())
	if err != nil {
		return archive(err)
	}
	for _, newTask := range []func(tasks.Registration, tasks.Options) (*asynq.Task, error){tasks.NewEmailTask, tasks.NewSlackTask} {
		task, err := newTask(reg, w.Options)
		if err != nil {
			return archive(err)
		}
		// A conflict means an earlier run of this task got that far.
		if _, err := w.Queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("enqueue %s: %w", task.Type(), err)
		}
	}
	return nil
}

func (w *Worker) deliverEmail(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.DecodePayload(t.Payload())
	if err != nil {
		return archive(err)
	}
	return w.deliver(ctx, "email", reg, func() error {
		email, err := w.Templates.Confirmation(templates.NewData(reg, w.Location))
		if err != nil {
			// Fix the template, then re-run the archived task.
			return permanent(fmt.Errorf("render email: %w", err))
		}
		msg, err := newConfirmation(w.Sender, reg, email, w.now())
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
	return w.deliver(ctx, "slack", reg, func() error {
		text, err := w.Templates.StaffAlert(templates.NewData(reg, w.Location))
		if err != nil {
			return permanent(fmt.Errorf("render slack alert: %w", err))
		}
		return w.Slack.Post(ctx, text)
	})
}

// deliver runs render-and-send, counts and logs the outcome, and tells asynq what to
// do next through the error it returns.
func (w *Worker) deliver(ctx context.Context, channel string, reg tasks.Registration, send func() error) error {
	attrs := []any{"channel", channel, "registration", reg.ID(), "user", reg.User.ID, "exam", reg.Exam.ObjectID}
	taskID, _ := asynq.GetTaskID(ctx)
	sent, err := w.Sent.Sent(ctx, taskID)
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
	err = send()
	w.Metrics.sendTime.WithLabelValues(channel).Observe(time.Since(start).Seconds())
	if err == nil {
		w.Metrics.deliveries.WithLabelValues(channel, "sent").Inc()
		w.Log.Info("delivered", attrs...)
		if err := w.Sent.Mark(ctx, taskID); err != nil {
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
}

// ServerConfig is the asynq configuration a worker runs with.
func ServerConfig(s WorkerSettings, log *slog.Logger) asynq.Config {
	return asynq.Config{
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
