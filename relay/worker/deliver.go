package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/email"
	"github.com/exam-relay/relay/tasks"
)

// The channels deliveries are counted and logged by.
const (
	channelEmail = "email"
	channelSlack = "slack"
)

// delivery is one message to send, once.
type delivery struct {
	channel string
	// key names the delivery in the sent marks.
	key   string
	reg   relay.Registration
	route *relay.Route
	send  func() error
}

func (w *Worker) deliverConfirmation(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.ParseRegistration(t.Payload())
	if err != nil {
		return unreadable(err)
	}
	route := w.Routing().Match(reg)
	return w.deliver(ctx, delivery{channel: channelEmail, key: taskID(ctx), reg: reg, route: route, send: func() error {
		if problem := reg.Exam.Schedule.Problem(); problem != "" {
			w.log.Warn(problem, "route", route.Name, "registration", reg.ID(), "exam", reg.Exam.ObjectID)
		}
		rendered, err := route.Confirmation(reg)
		if err != nil {
			// Fix the template, then re-run the archived task.
			return relay.Permanent(fmt.Errorf("render email: %w", err))
		}
		msg, err := email.Confirmation(route.Sender, reg, rendered, w.smtp.dkim, w.now())
		if err != nil {
			return relay.Permanent(err)
		}
		return w.sendEmail(ctx, msg)
	}})
}

func (w *Worker) deliverStaffAlert(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.ParseRegistration(t.Payload())
	if err != nil {
		return unreadable(err)
	}
	route := w.Routing().Match(reg)
	return w.deliver(ctx, delivery{channel: channelSlack, key: taskID(ctx), reg: reg, route: route, send: func() error {
		text, err := route.StaffAlert(reg)
		if err != nil {
			return relay.Permanent(fmt.Errorf("render slack alert: %w", err))
		}
		return w.postSlack(ctx, route.Slack, text)
	}})
}

// deliver sends d unless it was sent before, counts and logs the outcome,
// and returns the failure for the queue to act on.
func (w *Worker) deliver(ctx context.Context, d delivery) error {
	attrs := []any{"channel", d.channel, "route", d.route.Name, "registration", d.reg.ID(), "user", d.reg.User.ID, "exam", d.reg.Exam.ObjectID}
	sent, err := w.store.Sent(ctx, d.key)
	if err != nil {
		return relay.Temporary(fmt.Errorf("check sent mark: %w", err))
	}
	if sent {
		// A re-run of a task whose worker stopped after sending.
		w.metrics.delivered(d.channel, relay.AlreadySent)
		w.log.Warn("already delivered; not sending again", attrs...)
		return nil
	}

	start := time.Now()
	err = d.send()
	w.metrics.sendTime.WithLabelValues(d.channel).Observe(time.Since(start).Seconds())
	if err == nil {
		w.metrics.delivered(d.channel, relay.Sent)
		w.log.Info("delivered", attrs...)
		if err := w.store.MarkSent(ctx, d.key); err != nil {
			w.log.Error("delivered but could not record it; a re-run would send again", append(attrs, "err", err)...)
		}
		return nil
	}
	attrs = append(attrs, "err", err)
	outcome := relay.OutcomeOf(err)
	switch {
	case outcome == relay.Failed:
		w.log.Error("delivery failed for good; archived", attrs...)
	case outcome == relay.RateLimited:
		w.log.Warn("rate limited; waiting as asked", append(attrs, "retry_after", relay.RetryAfterOf(err).String())...)
	case w.lastAttempt(ctx):
		outcome = relay.Failed
		w.log.Error("delivery failed on its last attempt; archived", attrs...)
	default:
		w.log.Warn("delivery failed; will retry", attrs...)
	}
	w.metrics.delivered(d.channel, outcome)
	return err
}

func taskID(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}
