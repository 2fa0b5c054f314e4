// Package worker runs the queue's tasks. It fans each registration out:
// the student's confirmation, sent at once and handed to the email queue
// when it fails; a task per staff alert; the student's line in each staff
// digest, which its digest loop hands to the queue when due. So one
// channel's failure never repeats another. It delivers each: the
// confirmation and reminders by email, staff alerts and digests to Slack
// and Teams, each within what the other side allows. Every handler
// returns the domain's outcomes; the mux turns them into asynq's retry
// decisions.
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

// Deps is everything a Worker needs. Every pointer and interface is
// required but Now; the zero Reminders, SMTP and DKIM mean none.
type Deps struct {
	Queue tasks.Enqueuer
	// Inspector finds and replaces reminders held for old dates.
	Inspector *asynq.Inspector
	// Store keeps sent marks, the dates each student was told, today's
	// digest messages and the rate limits.
	Store *redisstore.Store
	// History records every delivery, for `relay history` and the admin
	// page.
	History *redisstore.History
	Mailer  email.Mailer
	Routing *relay.Routing
	// Options are the rules of the tasks the worker enqueues.
	Options tasks.Options
	// Reminders, when any is on, schedule reminder emails.
	Reminders relay.Reminders
	// Today is the zone of the school's day, for today's digest message.
	Today *time.Location
	// SMTP is what the mail provider allows; its zero limits are none.
	SMTP SMTPLimits
	// DKIM signs every email; the zero DKIM signs none.
	DKIM     email.DKIM
	Settings Settings
	Metrics  *Metrics
	Log      *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Worker handles the queue's tasks. Its routing can be swapped while it
// runs.
type Worker struct {
	queue     tasks.Enqueuer
	inspector *asynq.Inspector
	store     *redisstore.Store
	history   *redisstore.History
	mailer    email.Mailer
	options   tasks.Options
	reminders relay.Reminders
	today     *time.Location
	settings  Settings
	metrics   *Metrics
	log       *slog.Logger
	now       func() time.Time
	// staffLimits keep posts to each staff destination under its
	// channel's limit, across workers.
	staffLimits map[relay.Channel]*redisstore.Limiter
	smtp        *smtpLimits
	dkim        email.DKIM

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
		{"Queue", d.Queue == nil}, {"Inspector", d.Inspector == nil}, {"Store", d.Store == nil}, {"History", d.History == nil},
		{"Mailer", d.Mailer == nil}, {"Routing", d.Routing == nil}, {"Today", d.Today == nil},
		{"Metrics", d.Metrics == nil}, {"Log", d.Log == nil},
		{"Settings.Concurrency", d.Settings.Concurrency < 1}, {"Settings.RetrySchedule", len(d.Settings.RetrySchedule) == 0},
	} {
		if part.absent {
			missing = append(missing, part.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("worker: missing %s", strings.Join(missing, ", "))
	}
	w := &Worker{
		queue: d.Queue, inspector: d.Inspector, store: d.Store, history: d.History, mailer: d.Mailer, options: d.Options,
		reminders: d.Reminders, today: d.Today, settings: d.Settings, metrics: d.Metrics, log: d.Log, now: d.Now, dkim: d.DKIM,
		// Slack allows about one message per second per channel, and Teams
		// throttles a workflow above a few a second. One worker of a process
		// waits for the next slot: were each digest due at once to sleep for
		// its turn, they would hold every worker and stall the emails behind
		// them. The others come back spread over the time the queue takes
		// to post, not each at the next slot: in a drain of 20,000
		// registrations, 40 digests came back 163 times that way, each
		// reading 500 students again, where spread they came back 45.
		staffLimits: map[relay.Channel]*redisstore.Limiter{
			relay.Slack: staffLimiter(d, relay.Slack, tasks.QueueSlack),
			relay.Teams: staffLimiter(d, relay.Teams, tasks.QueueTeams),
		},
	}
	w.smtp = newSMTPLimits(d.SMTP, d.Store, d.Settings.Concurrency, newBacklog(d.Inspector, tasks.QueueEmail).size)
	d.Metrics.quotaLimit.Set(float64(d.SMTP.DailyLimit))
	if w.now == nil {
		w.now = time.Now
	}
	w.SetRouting(d.Routing)
	return w, nil
}

// staffLimiter keeps the posts to each of channel's destinations, which
// wait in queue, to one a second (its Redis keys are named after channel).
func staffLimiter(d Deps, channel relay.Channel, queue string) *redisstore.Limiter {
	return d.Store.NewLimiter(string(channel), 1, time.Second, redisstore.LimiterOptions{
		Sleepers: 1, MaxSleep: 3 * time.Second, Backlog: newBacklog(d.Inspector, queue).size,
	})
}

// SetRouting replaces the routes, templates and destinations at once:
// tasks that start after it see only the new ones.
func (w *Worker) SetRouting(r *relay.Routing) { w.routing.Store(r) }

// Routing is the routing in use.
func (w *Worker) Routing() *relay.Routing { return w.routing.Load() }

// mux routes each task type to its handler.
func (w *Worker) mux() *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Use(w.archiveFailed)
	mux.HandleFunc(tasks.TypeRegistration, w.fanOut)
	mux.HandleFunc(tasks.TypeEmail, w.deliverConfirmation)
	mux.HandleFunc(tasks.TypeReminder, w.deliverReminder)
	mux.HandleFunc(tasks.TypeSlack, w.deliverStaffAlert)
	mux.HandleFunc(tasks.TypeSlackDigest, w.deliverDigest)
	mux.HandleFunc(tasks.TypeTeams, w.deliverStaffAlert)
	mux.HandleFunc(tasks.TypeTeamsDigest, w.deliverDigest)
	return mux
}

// archiveFailed is where a failure that will never work, or that used its
// last attempt, becomes asynq's "archive, do not retry". The tasks carry
// one retry more than the relay allows (see tasks.Options), so that asynq
// itself never archives a task that is only waiting for a rate limit.
func (w *Worker) archiveFailed(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if err == nil {
			return nil
		}
		switch relay.OutcomeOf(err).Next() {
		case relay.Archive:
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		case relay.RetryLater:
			if w.lastAttempt(ctx) {
				return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
			}
		}
		return err
	})
}

// lastAttempt reports whether the task has failed as often as the relay
// allows it: one less than its asynq MaxRetry (see tasks.Options), which
// is lower for an email the fan-out tried first. asynq counts only the
// failures: a wait for a rate limit is not one.
func (w *Worker) lastAttempt(ctx context.Context) bool {
	retried, ok := asynq.GetRetryCount(ctx)
	most, _ := asynq.GetMaxRetry(ctx)
	return ok && retried >= most-1
}

// unreadable is a payload that will never be readable: archived.
func unreadable(err error) error { return relay.Permanent(err) }
