package email

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	gomail "github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/templates"
)

var sender = relay.Sender{From: "exams@example.edu"}

func TestPoolReusesConnections(t *testing.T) {
	sink := relaytest.StartSMTP(t)
	server, err := config.ParseSMTPURL(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	pool := NewPool(server, 3, nil)
	defer pool.Close()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if err := pool.Send(context.Background(), testMessage(t, i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := sink.Count(); n != 30 {
		t.Fatalf("%d messages arrived, want 30", n)
	}
	if n := sink.Connections(); n < 1 || n > 3 {
		t.Errorf("%d connections for 30 messages over a pool of 3", n)
	}
}

func TestSMTPErrorsAreClassified(t *testing.T) {
	sink := relaytest.StartSMTP(t)
	server, _ := config.ParseSMTPURL(sink.URL())
	pool := NewPool(server, 1, nil)
	defer pool.Close()
	for code, want := range map[int]relay.Outcome{451: relay.Retry, 452: relay.Retry, 550: relay.Failed, 553: relay.Failed} {
		sink.SetRcptHook(func(string) *smtp.SMTPError { return &smtp.SMTPError{Code: code, Message: "no"} })
		err := pool.Send(context.Background(), testMessage(t, code))
		if got := relay.OutcomeOf(err); err == nil || got != want {
			t.Errorf("SMTP %d: %v comes to %v, want %v", code, err, got, want)
		}
	}
	sink.SetRcptHook(nil)
	if err := pool.Send(context.Background(), testMessage(t, 0)); err != nil {
		t.Errorf("after refusals the pool cannot send: %v", err)
	}

	unreachable := NewPool(config.SMTPServer{Host: "127.0.0.1", Port: 1, TLS: config.TLSNone}, 1, nil)
	if err := unreachable.Send(context.Background(), testMessage(t, 0)); err == nil || relay.OutcomeOf(err) != relay.Retry {
		t.Errorf("dial failure: %v, want a retry", err)
	}
}

func TestOutboxWritesOneWholeFilePerMessage(t *testing.T) {
	dir := t.TempDir()
	outbox := Outbox{Dir: dir}
	for i := range 2 {
		if err := outbox.Send(context.Background(), testMessage(t, i)); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 2 {
		t.Fatalf("%d files, want 2", len(files))
	}
	for _, f := range files {
		b, _ := os.ReadFile(dir + "/" + f.Name())
		if !strings.HasSuffix(f.Name(), ".eml") || !bytes.Contains(b, []byte("text/calendar")) {
			t.Errorf("%s: %.200s", f.Name(), b)
		}
	}
}

func TestReminderHasItsOwnMessageIDAndNoCalendar(t *testing.T) {
	reg := example(t)
	rem := relay.Reminder{Registration: reg, Event: relay.ExamOpens, Before: time.Hour}
	m, err := Reminder(sender, rem, relay.Email{Subject: "s", Text: "t", HTML: "h"}, DKIM{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	m.WriteTo(&raw)
	want := "<" + reg.ID() + ".reminder-open-60@example.edu>"
	if id := m.GetMessageID(); id != want || bytes.Contains(raw.Bytes(), []byte("text/calendar")) {
		t.Errorf("Message-ID %s (want %s), calendar attached: %v", id, want, bytes.Contains(raw.Bytes(), []byte("text/calendar")))
	}
}

func example(t testing.TB) relay.Registration {
	t.Helper()
	body, err := os.ReadFile("../../examples/registration.json")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := relay.DecodeRegistration(body)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func testMessage(t testing.TB, i int) *gomail.Msg {
	t.Helper()
	reg := example(t)
	reg.User.ID = reg.User.ID + string(rune('a'+i%26))
	set, err := templates.Load(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := set.Confirmation(reg, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Confirmation(sender, reg, e, DKIM{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// hostileRegistration is a valid registration whose name and exam name
// are an attacker's.
func hostileRegistration(name, exam string) []byte {
	b, _ := json.Marshal(map[string]any{
		"user":   map[string]any{"id": "h0", "name": name, "email": "h0@example.edu"},
		"portal": map[string]any{"id": "p"},
		"exam":   map[string]any{"objectId": "e0", "name": exam, "url": "https://ok.example", "schedule": map[string]any{"openDate": "2026-12-14T09:00:00Z"}},
	})
	return b
}

// FuzzConfirmationMessage: no name or exam name adds a header or a
// recipient to the email.
func FuzzConfirmationMessage(f *testing.F) {
	f.Add("Amara Okafor", "Pharmacology")
	f.Add("Eve\r\nBcc: victim@example.com", "Exam\nCc: x@example.com")
	f.Add(`"a" <b@example.com>, c@example.com`, "=?utf-8?b?QmNjOg==?=")
	set, err := templates.Load(templates.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, exam string) {
		reg, err := relay.DecodeRegistration(hostileRegistration(name, exam))
		if err != nil {
			return
		}
		e, err := set.Confirmation(reg, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Confirmation(sender, reg, e, DKIM{}, time.Now())
		if err != nil {
			return // refused, never sent
		}
		var raw bytes.Buffer
		if _, err := m.WriteTo(&raw); err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(&raw)
		if err != nil {
			t.Fatalf("unreadable message: %v", err)
		}
		to, err := mail.ParseAddressList(msg.Header.Get("To"))
		if err != nil || len(to) != 1 || to[0].Address != "h0@example.edu" {
			t.Fatalf("To %q: %v %v", msg.Header.Get("To"), to, err)
		}
		for _, h := range []string{"Cc", "Bcc", "Reply-To", "Sender"} {
			if len(msg.Header[h]) != 0 {
				t.Fatalf("payload added %s: %q", h, msg.Header[h])
			}
		}
		if got, _ := m.GetRecipients(); len(got) != 1 || !strings.EqualFold(strings.Trim(got[0], "<>"), "h0@example.edu") {
			t.Fatalf("envelope recipients %v", got)
		}
	})
}

// BenchmarkConfirmationMessage is the worker's CPU per email: render the
// templates, build the MIME message with its calendar file, write it out.
func BenchmarkConfirmationMessage(b *testing.B) {
	reg := example(b)
	set, err := templates.Load(templates.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, err := set.Confirmation(reg, time.UTC)
		if err != nil {
			b.Fatal(err)
		}
		m, err := Confirmation(sender, reg, e, DKIM{}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAMessageTheServerTookIsNotSentAgainWhenItHangsUp(t *testing.T) {
	sink := relaytest.StartSMTP(t, relaytest.HangUpOnAccept())
	server, _ := config.ParseSMTPURL(sink.URL())
	pool := NewPool(server, 1, nil)
	defer pool.Close()
	for i := range 3 {
		if err := pool.Send(context.Background(), testMessage(t, i)); err != nil {
			t.Errorf("message %d: %v, though the server took it", i, err)
		}
	}
	if n, c := sink.Count(), sink.Connections(); n != 3 || c != 3 {
		t.Errorf("%d messages over %d connections, want 3 over 3", n, c)
	}
}

// A pooled connection costs no NOOP or RSET per message, so the pool must
// find the ones the server closed in the meantime itself, and send
// nothing twice.
func TestPoolDialsAfreshWhenTheServerClosedAConnection(t *testing.T) {
	tests := []struct {
		name   string
		option relaytest.SMTPOption
		wait   time.Duration
	}{
		// The server says so (go-smtp: 421) and hangs up.
		{"idle too long", relaytest.CloseIdleAfter(200 * time.Millisecond), 500 * time.Millisecond},
		// The server answers the next MAIL with 421.
		{"one message a connection", relaytest.HangUpAfter(1), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := relaytest.StartSMTP(t, tt.option)
			server, _ := config.ParseSMTPURL(sink.URL())
			pool := NewPool(server, 1, nil)
			defer pool.Close()
			for i := range 3 {
				if i > 0 {
					time.Sleep(tt.wait)
				}
				if err := pool.Send(context.Background(), testMessage(t, i)); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			if n, c := sink.Count(), sink.Connections(); n != 3 || c != 3 {
				t.Errorf("%d messages over %d connections, want 3 over 3", n, c)
			}
		})
	}
}
