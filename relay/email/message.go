// Package email is the relay's room for mail: building a student's email
// (text, HTML and a calendar file) with go-mail, and handing it to an SMTP
// server over pooled connections, or to the outbox folder when no server
// is configured.
package email

import (
	"bytes"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/relay"
)

// Confirmation builds the student's confirmation: the email with the exam
// window as a calendar file.
func Confirmation(s relay.Sender, reg relay.Registration, e relay.Email, sign DKIM, now time.Time) (*mail.Msg, error) {
	m, err := newMessage(s, reg, e, "confirmation", sign, now)
	if err != nil {
		return nil, err
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

// Reminder builds a reminder email. Its Message-ID names the reminder, so
// a mail system that sees it twice can tell.
func Reminder(s relay.Sender, rem relay.Reminder, e relay.Email, sign DKIM, now time.Time) (*mail.Msg, error) {
	kind := fmt.Sprintf("reminder-%s-%d", rem.Event, int(rem.Before.Minutes()))
	return newMessage(s, rem.Registration, e, kind, sign, now)
}

// newMessage builds an email of a kind to the student about reg: subject,
// text and HTML alternatives. Every value from the payload goes through
// go-mail's header encoding, never into a raw header. The same
// registration and kind always make the same Message-ID.
func newMessage(s relay.Sender, reg relay.Registration, e relay.Email, kind string, sign DKIM, now time.Time) (*mail.Msg, error) {
	id := reg.ID()
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
	m.SetMessageIDWithValue(id + "." + kind + "@" + messageIDDomain(s.From))
	m.SetDateWithValue(now)
	m.SetGenHeader("X-Exam-Relay-Registration", id)
	// An automatic email (RFC 3834): out-of-office and auto-replies are
	// not sent back to it, or to the exams office in Reply-To. Exchange
	// reads its own header for the same.
	m.SetGenHeader("Auto-Submitted", "auto-generated")
	m.SetGenHeader("X-Auto-Response-Suppress", "OOF, AutoReply")
	m.SetBodyString(mail.TypeTextPlain, e.Text)
	m.AddAlternativeString(mail.TypeTextHTML, e.HTML)
	sign.sign(m, s.From)
	return m, nil
}

// messageIDDomain is the From address's domain, as RFC 5322 suggests for
// the right side of a Message-ID.
func messageIDDomain(from string) string {
	if domain := fromDomain(from); domain != "" {
		return domain
	}
	return "exam-relay"
}

// fromDomain is the domain of a From address, or "".
func fromDomain(from string) string {
	if a, err := netmail.ParseAddress(from); err == nil {
		if _, domain, ok := strings.Cut(a.Address, "@"); ok {
			return domain
		}
	}
	return ""
}
