package email

import (
	"bytes"
	"fmt"
	"time"

	ics "github.com/arran4/golang-ical"

	"github.com/exam-relay/relay/relay"
)

// newCalendar is the exam window as one VEVENT. PUBLISH, not REQUEST: it is
// an entry for the student's calendar, not a meeting to accept. The UID
// ignores the dates so that a moved exam replaces the old event.
func newCalendar(reg relay.Registration, now time.Time) ([]byte, error) {
	cal := ics.NewCalendarFor("exam-relay")
	cal.SetMethod(ics.MethodPublish)
	ev := cal.AddEvent(reg.SubjectID() + "@exam-relay")
	stamp := now
	if reg.Meta.Timestamp != nil {
		stamp = *reg.Meta.Timestamp
	}
	ev.SetDtStampTime(stamp.UTC())
	ev.SetStartAt(reg.Exam.Schedule.OpenDate.UTC())
	if c := reg.Exam.Schedule.CloseDate; c != nil {
		ev.SetEndAt(c.UTC())
	}
	name := reg.Exam.Name
	if name == "" {
		name = "Exam"
	}
	ev.SetSummary(name)
	// Calendars replace an event by UID only when its SEQUENCE grows.
	seq := reg.Sequence
	if seq == 0 {
		seq = relay.CalendarSequence(now)
	}
	ev.SetSequence(seq)
	if reg.Exam.URL != "" {
		ev.SetURL(reg.Exam.URL)
		ev.SetDescription(reg.Exam.URL)
	}
	var b bytes.Buffer
	if err := cal.SerializeTo(&b, ics.WithNewLine("\r\n")); err != nil {
		return nil, fmt.Errorf("calendar: %w", err)
	}
	return b.Bytes(), nil
}
