package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/tasks"
	"github.com/exam-relay/relay/templates"
)

// Reminders says when reminder emails go out, and reaches the queue to
// move them when an exam's dates change.
type Reminders struct {
	BeforeOpen  []time.Duration
	BeforeClose []time.Duration
	Inspector   *asynq.Inspector
}

func (r *Reminders) enabled() bool {
	return r != nil && len(r.BeforeOpen)+len(r.BeforeClose) > 0
}

// schedule puts reg's reminders in the queue, replacing any held for other
// dates and removing those whose time has now passed.
func (w *Worker) scheduleReminders(ctx context.Context, reg tasks.Registration) error {
	for _, rem := range tasks.PlanReminders(reg, w.Reminders.BeforeOpen, w.Reminders.BeforeClose, w.now()) {
		id := tasks.ReminderTaskID(reg, rem.Event, rem.Before)
		info, err := w.Reminders.Inspector.GetTaskInfo(tasks.QueueEmail, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		case err != nil:
			return fmt.Errorf("look up reminder: %w", err)
		case info.State == asynq.TaskStateScheduled || info.State == asynq.TaskStatePending || info.State == asynq.TaskStateRetry:
			held, err := tasks.DecodeReminder(info.Payload)
			if err == nil && held.At.Equal(rem.At) {
				continue // a repeat: already scheduled for this time
			}
			// New dates: the old reminder must never arrive.
			if err := w.Reminders.Inspector.DeleteTask(tasks.QueueEmail, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return fmt.Errorf("remove reminder for old dates: %w", err)
			}
		default:
			continue // being sent, or archived for an operator to see
		}
		if rem.At.IsZero() {
			continue // its time has passed: not sent late
		}
		task, err := tasks.NewReminderTask(rem, w.Options)
		if err != nil {
			return err
		}
		if _, err := w.Queue.EnqueueContext(ctx, task); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("schedule reminder: %w", err)
		}
	}
	return nil
}

func (w *Worker) deliverReminder(ctx context.Context, t *asynq.Task) error {
	rem, err := tasks.DecodeReminder(t.Payload())
	if err != nil {
		return archive(err)
	}
	reg := rem.Registration
	taskID, _ := asynq.GetTaskID(ctx)
	// The same id serves every date the exam had: the mark names the time.
	key := fmt.Sprintf("%s:%d", taskID, rem.At.Unix())
	return w.deliver(ctx, "email", reg, key, func(routing *Routing, route *Route) error {
		now := w.now()
		if !now.Before(rem.EventTime()) {
			return permanent(fmt.Errorf("too late: the exam %ss at %s, before this reminder could be sent", rem.Event, rem.EventTime().UTC().Format(time.RFC3339)))
		}
		email, err := route.Templates.Reminder(templates.NewReminder(rem, routing.Location(route, reg), now))
		if err != nil {
			return permanent(fmt.Errorf("render reminder: %w", err))
		}
		msg, err := newEmail(route.Sender, reg, email, fmt.Sprintf("%s.reminder-%s-%d", reg.ID(), rem.Event, int(rem.Before.Minutes())), false, now)
		if err != nil {
			return permanent(err)
		}
		return w.Mailer.Send(ctx, msg)
	})
}

// ScheduleLog remembers the dates each student was last told for an exam,
// so that an email about new dates can say they changed.
type ScheduleLog struct {
	Redis redis.UniversalClient
	TTL   time.Duration
}

type toldSchedule struct {
	Schedule tasks.Schedule `json:"schedule"`
	Sequence int            `json:"sequence"`
}

// Swap records reg's dates and returns what was told before, when that
// differs.
func (l ScheduleLog) Swap(ctx context.Context, reg tasks.Registration) (*tasks.Previous, error) {
	key := "exam-relay:schedule:" + reg.SubjectID()
	first, _ := json.Marshal(toldSchedule{Schedule: reg.Exam.Schedule})
	// Most students are told once: SET NX GET records that in one round
	// trip, and returns what was told before when there was something.
	raw, err := l.Redis.SetArgs(ctx, key, first, redis.SetArgs{Mode: "NX", Get: true, TTL: l.TTL}).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, err
	}
	var old toldSchedule
	_ = json.Unmarshal(raw, &old)
	if !old.Schedule.OpenDate.IsZero() && sameSchedule(old.Schedule, reg.Exam.Schedule) {
		return nil, nil
	}
	next := toldSchedule{Schedule: reg.Exam.Schedule, Sequence: old.Sequence}
	var previous *tasks.Previous
	if !old.Schedule.OpenDate.IsZero() {
		next.Sequence++
		previous = &tasks.Previous{Schedule: old.Schedule, Sequence: next.Sequence}
	}
	b, _ := json.Marshal(next)
	if err := l.Redis.Set(ctx, key, b, l.TTL).Err(); err != nil {
		return nil, err
	}
	return previous, nil
}

func sameSchedule(a, b tasks.Schedule) bool {
	if !a.OpenDate.Equal(b.OpenDate) || (a.CloseDate == nil) != (b.CloseDate == nil) {
		return false
	}
	return a.CloseDate == nil || a.CloseDate.Equal(*b.CloseDate)
}
