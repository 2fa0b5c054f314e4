package relay

import (
	"bytes"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	ics "github.com/arran4/golang-ical"
	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/tasks"
	"github.com/exam-relay/relay/templates"
)

// Sender is who student emails come from.
type Sender struct {
	From    string
	ReplyTo string
}

// newConfirmation builds the student's confirmation: the email with the
// exam window as a calendar file.
func newConfirmation(s Sender, reg tasks.Registration, e templates.Email, now time.Time) (*mail.Msg, error) {
	return newEmail(s, reg, e, reg.ID()+".confirmation", true, now)
}

// newEmail builds an email to the student: subject, text and HTML
// alternatives, and the calendar file when asked. Every value from the
// payload goes through go-mail's header encoding, never into a raw header.
// The same idLocal always makes the same Message-ID, so a mail system that
// sees a message twice can tell.
func newEmail(s Sender, reg tasks.Registration, e templates.Email, idLocal string, calendar bool, now time.Time) (*mail.Msg, error) {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := m.From(s.From); err != nil {
		return nil, fmt.Errorf("from address: %w", err)
	}
	if s.ReplyTo != "" {
		if err := m.ReplyTo(s.ReplyTo); err != nil {
			return nil, fmt.Errorf("reply-to address: %w", err)
		}
	}
	// A backslash in a display name reads as an escape to go-mail and to
	// net/mail, and can leave a To header no reader parses; no one's name
	// needs one.
	if err := m.AddToFormat(strings.ReplaceAll(reg.User.Name, `\`, ""), reg.User.Email); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	m.Subject(e.Subject)
	m.SetMessageIDWithValue(idLocal + "@" + messageIDDomain(s.From))
	m.SetDateWithValue(now)
	m.SetGenHeader("X-Exam-Relay-Registration", reg.ID())
	m.SetBodyString(mail.TypeTextPlain, e.Text)
	m.AddAlternativeString(mail.TypeTextHTML, e.HTML)
	if !calendar {
		return m, nil
	}

	cal, err := newCalendar(reg, now)
	if err != nil {
		return nil, err
	}
	if err := m.AttachReader("exam.ics", bytes.NewReader(cal),
		mail.WithFileContentType("text/calendar; method=PUBLISH; charset=utf-8")); err != nil {
		return nil, fmt.Errorf("attach calendar: %w", err)
	}
	return m, nil
}

// messageIDDomain is the From address's domain, as RFC 5322 suggests for
// the right side of a Message-ID.
func messageIDDomain(from string) string {
	if a, err := netmail.ParseAddress(from); err == nil {
		if _, domain, ok := strings.Cut(a.Address, "@"); ok && domain != "" {
			return domain
		}
	}
	return "exam-relay"
}

// newCalendar is the exam window as one VEVENT. PUBLISH, not REQUEST: it is
// an entry for the student's calendar, not a meeting to accept. The UID
// ignores the dates so that a moved exam replaces the old event.
func newCalendar(reg tasks.Registration, now time.Time) ([]byte, error) {
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
	if reg.Previous != nil {
		// Calendars replace an event by UID only when SEQUENCE grows.
		ev.SetSequence(reg.Previous.Sequence)
	}
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
