package relay

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/tasks"
	"github.com/exam-relay/relay/templates"
)

// memoryQueue keeps tasks in memory: the fuzz target is the HTTP handler,
// not Redis, which the integration tests cover.
type memoryQueue struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (q *memoryQueue) EnqueueContext(_ context.Context, task *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	r, err := tasks.DecodePayload(task.Payload())
	if err != nil {
		return nil, err
	}
	if q.ids[r.ID()] {
		return nil, asynq.ErrTaskIDConflict
	}
	q.ids[r.ID()] = true
	return &asynq.TaskInfo{}, nil
}

// FuzzReceiver: no body or content type makes the receiver answer 5xx or
// panic, and whatever it accepts is a registration it could store.
func FuzzReceiver(f *testing.F) {
	if b, err := os.ReadFile("../examples/registration.json"); err == nil {
		f.Add(b, "application/json")
	}
	f.Add([]byte(`[]`), "application/json; charset=utf-8")
	f.Add([]byte(`{"user":{"email":"a@b.example"}}`), "text/plain")
	f.Add([]byte("\xef\xbb\xbf{"), "")
	m := NewMetrics()
	srv := NewServer(ServerDeps{
		Receiver:    NewReceiver(&memoryQueue{ids: map[string]bool{}}, tasks.Options{}, nil, quietLog(), m),
		Credentials: Credentials{Username: "u", Password: "p"},
		Ready:       func(context.Context) error { return nil },
		Metrics:     m, Log: quietLog(),
	})
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.SetBasicAuth("u", "p")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("status %d for %q (%q): %s", rec.Code, body, contentType, rec.Body)
		}
	})
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
		body := hostileRegistration(0, name, exam, "g", "https://ok.example")
		reg, err := tasks.DecodeRegistration(body)
		if err != nil {
			return
		}
		e, err := set.Confirmation(templates.NewData(reg, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		m, err := newConfirmation(Sender{From: "exams@example.edu"}, reg, e, time.Now())
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
