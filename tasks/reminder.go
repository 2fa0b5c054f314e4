package tasks

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeReminder is an email held by asynq until shortly before an exam
// opens or closes.
const TypeReminder = "email:reminder"

// Reminder events.
const (
	BeforeOpen  = "open"
	BeforeClose = "close"
)

// Reminder is the payload of a reminder task.
type Reminder struct {
	Registration Registration `json:"registration"`
	// Event is BeforeOpen or BeforeClose; Before is how long before it.
	Event  string        `json:"event"`
	Before time.Duration `json:"before"`
	// At is when it is due: the event's time less Before.
	At time.Time `json:"at"`
}

// EventTime is when the exam opens or closes, as the reminder is about.
func (r Reminder) EventTime() time.Time {
	if r.Event == BeforeClose && r.Registration.Exam.Schedule.CloseDate != nil {
		return *r.Registration.Exam.Schedule.CloseDate
	}
	return r.Registration.Exam.Schedule.OpenDate
}

// ReminderTaskID leaves the dates out: when Synap sends the registration
// again with new dates, the new reminder has the old one's id and replaces
// it.
func ReminderTaskID(r Registration, event string, before time.Duration) string {
	return TypeReminder + ":" + Digest(r.SubjectID(), event, before.String())
}

// PlanReminders is every reminder the offsets ask for, due or not: a
// reminder whose time has passed is returned with a zero At, so that the
// caller can remove one scheduled for earlier dates.
func PlanReminders(r Registration, beforeOpen, beforeClose []time.Duration, now time.Time) []Reminder {
	var out []Reminder
	plan := func(event string, at time.Time, offsets []time.Duration) {
		for _, before := range offsets {
			rem := Reminder{Registration: r, Event: event, Before: before}
			if due := at.Add(-before); !at.IsZero() && due.After(now) {
				rem.At = due
			}
			out = append(out, rem)
		}
	}
	plan(BeforeOpen, r.Exam.Schedule.OpenDate, beforeOpen)
	var closes time.Time
	if c := r.Exam.Schedule.CloseDate; c != nil {
		closes = *c
	}
	plan(BeforeClose, closes, beforeClose)
	return out
}

// NewReminderTask holds rem until rem.At. It keeps no retention: once
// sent, its id is free for a reminder about new dates.
func NewReminderTask(rem Reminder, o Options) (*asynq.Task, error) {
	payload, err := json.Marshal(rem)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", TypeReminder, err)
	}
	return asynq.NewTask(TypeReminder, payload,
		asynq.TaskID(ReminderTaskID(rem.Registration, rem.Event, rem.Before)),
		asynq.Queue(QueueEmail),
		asynq.ProcessAt(rem.At),
		asynq.MaxRetry(o.MaxRetry),
	), nil
}

// DecodeReminder reads a reminder task's payload.
func DecodeReminder(payload []byte) (Reminder, error) { return decode[Reminder](payload) }
