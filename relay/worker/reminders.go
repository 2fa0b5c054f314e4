package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/email"
	"github.com/exam-relay/relay/tasks"
)

// scheduleReminders puts reg's reminders in the queue, replacing any held
// for other dates and removing those whose time has now passed.
func (w *Worker) scheduleReminders(ctx context.Context, reg relay.Registration) error {
	for _, rem := range w.reminders.Plan(reg, w.now()) {
		id := tasks.ReminderTaskID(reg, rem.Event, rem.Before)
		info, err := w.inspector.GetTaskInfo(tasks.QueueEmail, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		case err != nil:
			return fmt.Errorf("look up reminder: %w", err)
		case info.State == asynq.TaskStateScheduled || info.State == asynq.TaskStatePending || info.State == asynq.TaskStateRetry:
			held, err := tasks.ParseReminder(info.Payload)
			if err == nil && held.At.Equal(rem.At) {
				continue // a repeat: already scheduled for this time
			}
			// New dates: the old reminder must never arrive.
			if err := w.inspector.DeleteTask(tasks.QueueEmail, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return fmt.Errorf("remove reminder for old dates: %w", err)
			}
		default:
			continue // being sent, or archived for an operator to see
		}
		if rem.At.IsZero() {
			continue // its time has passed: not sent late
		}
		task, err := tasks.NewReminderTask(rem, w.options)
		if err != nil {
			return err
		}
		if _, err := w.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("schedule reminder: %w", err)
		}
	}
	return nil
}

func (w *Worker) deliverReminder(ctx context.Context, t *asynq.Task) error {
	rem, err := tasks.ParseReminder(t.Payload())
	if err != nil {
		return unreadable(err)
	}
	reg := rem.Registration
	route := w.Routing().Match(reg)
	return w.deliver(ctx, delivery{channel: channelEmail, kind: kindReminder, mark: reminderMark(rem),
		reg: reg, route: route, send: func() (sent, error) {
			now := w.now()
			if !now.Before(rem.EventTime()) {
				return sent{}, relay.Permanent(fmt.Errorf("too late: the exam %ss at %s, before this reminder could be sent", rem.Event, rem.EventTime().UTC().Format(time.RFC3339)))
			}
			rendered, err := route.Reminder(rem, now)
			if err != nil {
				return sent{}, relay.Permanent(fmt.Errorf("render reminder: %w", err))
			}
			msg, err := email.Reminder(route.Sender, rem, rendered, w.dkim, now)
			if err != nil {
				return sent{}, relay.Permanent(err)
			}
			return w.sendEmail(ctx, msg)
		}})
}

// reminderMark names a reminder in the ledger, which forgets it with the
// dates it was about.
func reminderMark(rem relay.Reminder) string {
	return "r:" + string(rem.Event) + ":" + rem.Before.String()
}
