package relay

import "time"

// Event is the moment a reminder is about.
type Event string

const (
	ExamOpens  Event = "open"
	ExamCloses Event = "close"
)

// Reminders say when reminder emails go out: each offset before the exam
// opens or closes. None of either means no reminders.
type Reminders struct {
	BeforeOpen  []time.Duration
	BeforeClose []time.Duration
}

// On reports whether any reminder is asked for.
func (rs Reminders) On() bool { return len(rs.BeforeOpen)+len(rs.BeforeClose) > 0 }

// Reminder is one email held until shortly before an exam opens or closes.
// It is the payload of a reminder task; its JSON names are stored in Redis.
type Reminder struct {
	Registration Registration `json:"registration"`
	// Event is what it reminds of; Before is how long before it.
	Event  Event         `json:"event"`
	Before time.Duration `json:"before"`
	// At is when it is due: the event's time less Before. Zero means its
	// time has passed.
	At time.Time `json:"at"`
}

// EventTime is when the exam opens or closes, as the reminder is about.
func (r Reminder) EventTime() time.Time {
	if r.Event == ExamCloses && r.Registration.Exam.Schedule.CloseDate != nil {
		return *r.Registration.Exam.Schedule.CloseDate
	}
	return r.Registration.Exam.Schedule.OpenDate
}

// Plan is every reminder the offsets ask for reg, due or not: one whose
// time has passed by now has a zero At, so that the caller can remove one
// scheduled for earlier dates. An exam with no close date has no close
// reminders due.
func (rs Reminders) Plan(reg Registration, now time.Time) []Reminder {
	var out []Reminder
	plan := func(event Event, at time.Time, offsets []time.Duration) {
		for _, before := range offsets {
			rem := Reminder{Registration: reg, Event: event, Before: before}
			if due := at.Add(-before); !at.IsZero() && due.After(now) {
				rem.At = due
			}
			out = append(out, rem)
		}
	}
	plan(ExamOpens, reg.Exam.Schedule.OpenDate, rs.BeforeOpen)
	var closes time.Time
	if c := reg.Exam.Schedule.CloseDate; c != nil {
		closes = *c
	}
	plan(ExamCloses, closes, rs.BeforeClose)
	return out
}
