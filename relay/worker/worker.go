// Package worker runs the queue's tasks. It fans each registration out
// into one task per channel, so that one channel's failure never repeats
// the other, and delivers each: the student's confirmation and reminders
// by email, staff alerts and digests to Slack. Every handler returns the
// domain's outcomes; Mux turns them into asynq's retry decisions.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/email"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/tasks"
)

// Enqueuer stores a task in the queue; *asynq.Client is one.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Deps is everything a Worker needs. Every field is required but Now.
type Deps struct {
	Queue Enqueuer
	// Inspector finds and replaces reminders held for old dates.
	Inspector *asynq.Inspector
	// Store keeps sent marks, the dates each student was told, today's
	// digest messages and the Slack rate limit.
	Store   *redisstore.Store
	Mailer  email.Mailer
	Routing *relay.Routing
	// Options are the rules of the tasks the worker enqueues.
	Options tasks.Options
	// Reminders, when any is on, schedule reminder emails.
	Reminders relay.Reminders
	// Today is the zone of the school's day, for today's digest message.
	Today   *time.Location
	Metrics *Metrics
	Log     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Worker handles the queue's tasks. Its routing can be swapped while it
// runs.
type Worker struct {
	queue      Enqueuer
	inspector  *asynq.Inspector
	store      *redisstore.Store
	mailer     email.Mailer
	options    tasks.Options
	reminders  relay.Reminders
	today      *time.Location
	metrics    *Metrics
	log        *slog.Logger
	now        func() time.Time
	slackLimit *redisstore.Limiter

	routing atomic.Pointer[relay.Routing]
}

// NewWorker is a Worker with every part it needs, or an error naming the
// part that is missing.
func NewWorker(d Deps) (*Worker, error) {
	var missing []string
	for _, part := range []struct {
		name   string
		absent bool
	}{
		{"Queue", d.Queue == nil}, {"Inspector", d.Inspector == nil}, {"Store", d.Store == nil},
		{"Mailer", d.Mailer == nil}, {"Routing", d.Routing == nil}, {"Today", d.Today == nil},
		{"Metrics", d.Metrics == nil}, {"Log", d.Log == nil},
	} {
		if part.absent {
			missing = append(missing, part.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("worker: missing %s", strings.Join(missing, ", "))
	}
	w := &Worker{
		queue: d.Queue, inspector: d.Inspector, store: d.Store, mailer: d.Mailer, options: d.Options,
		reminders: d.Reminders, today: d.Today, metrics: d.Metrics, log: d.Log, now: d.Now,
		// Slack allows about one message per second per channel.
		slackLimit: d.Store.NewLimiter("slack", 1, time.Second),
	}
	if w.now == nil {
		w.now = time.Now
	}
	w.SetRouting(d.Routing)
	return w, nil
}

// SetRouting replaces the routes, templates and destinations at once:
// tasks that start after it see only the new ones.
func (w *Worker) SetRouting(r *relay.Routing) { w.routing.Store(r) }

// Routing is the routing in use.
func (w *Worker) Routing() *relay.Routing { return w.routing.Load() }

// Mux routes each task type to its handler.
func (w *Worker) Mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(archiveFailed)
	mux.HandleFunc(tasks.TypeRegistration, w.fanOut)
	mux.HandleFunc(tasks.TypeEmail, w.deliverConfirmation)
	mux.HandleFunc(tasks.TypeReminder, w.deliverReminder)
	mux.HandleFunc(tasks.TypeSlack, w.deliverStaffAlert)
	mux.HandleFunc(tasks.TypeSlackDigest, w.deliverDigest)
	return mux
}

// archiveFailed is where a failure that will never work becomes asynq's
// "archive, do not retry".
func archiveFailed(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if err != nil && relay.OutcomeOf(err).Next() == relay.Archive {
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return err
	})
}

// unreadable is a payload that will never be readable: archived.
func unreadable(err error) error { return relay.Permanent(err) }
