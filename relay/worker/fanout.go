package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/tasks"
)

// fanOut turns a registration into a task per channel its route asks for,
// each with its own id, and schedules its reminders.
func (w *Worker) fanOut(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.ParseRegistration(t.Payload())
	if err != nil {
		return unreadable(err)
	}
	told, err := w.store.SwapSchedule(ctx, reg)
	if err != nil {
		return fmt.Errorf("schedule memory: %w", err)
	}
	reg.Previous, reg.Sequence = told.Previous, told.Sequence
	route := w.Routing().Match(reg)
	if told.Same {
		// Synap sent this registration again after the queue forgot it:
		// until the exam is over, a student told these dates hears
		// nothing more, nor do staff.
		confirmed, err := w.store.Sent(ctx, tasks.TaskID(tasks.TypeEmail, reg))
		if err != nil {
			return fmt.Errorf("check sent mark: %w", err)
		}
		if confirmed {
			w.log.Info("the same registration again; already confirmed, nothing sent", "registration", reg.ID(), "user", reg.User.ID, "exam", reg.Exam.ObjectID)
			w.record(ctx, delivery{channel: channelEmail, kind: kindConfirmation, reg: reg, route: route}, redisstore.HistorySkipped,
				sent{reply: "the same registration again; the student was told these dates already"})
			return nil
		}
	}
	var next []*asynq.Task
	if !route.Email {
		w.record(ctx, delivery{channel: channelEmail, kind: kindConfirmation, reg: reg, route: route}, redisstore.HistorySkipped,
			sent{reply: "route " + route.Name + " sends no email"})
	} else {
		email, err := tasks.NewEmailTask(reg, w.options)
		if err != nil {
			return relay.Permanent(err)
		}
		next = append(next, email)
	}
	for _, dest := range route.Staff() {
		var task *asynq.Task
		if dest.Mode == relay.ModeEach {
			task, err = tasks.NewAlertTask(dest.Channel, reg, w.options)
		} else {
			task, err = tasks.NewDigestItemTask(dest, reg, w.now(), w.options)
		}
		if err != nil {
			return relay.Permanent(err)
		}
		next = append(next, task)
	}
	for _, task := range next {
		// A conflict means an earlier run of this task got that far.
		if _, err := w.queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("enqueue %s: %w", task.Type(), err)
		}
	}
	if route.Email && w.reminders.On() {
		return w.scheduleReminders(ctx, reg)
	}
	return nil
}
