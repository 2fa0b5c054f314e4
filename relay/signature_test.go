package relay

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/exam-relay/relay/tasks"
)

func TestStandardWebhooksSignatures(t *testing.T) {
	oldKey, newKey := []byte("old secret key for tests"), []byte("new secret key for tests")
	h := newHarness(t, withSignatures(false, oldKey, newKey))
	body := example(t, "registration.json")
	signed := func(key []byte, id string, at time.Time, b []byte) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("webhook-id", id)
			r.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
			r.Header.Set("webhook-signature", "v1,bm90IGl0 "+NewStandardWebhooks([][]byte{key}).Sign(id, at, b))
		}
	}
	now := time.Now()
	tests := []struct {
		name    string
		prepare func(*http.Request)
		want    int
	}{
		{"unsigned", func(*http.Request) {}, 401},
		{"unknown key", signed([]byte("someone else's"), "msg_1", now, body), 401},
		{"too old", signed(oldKey, "msg_1", now.Add(-6*time.Minute), body), 401},
		{"from the future", signed(oldKey, "msg_1", now.Add(6*time.Minute), body), 401},
		{"signed over another body", signed(oldKey, "msg_1", now, []byte(`{}`)), 401},
		{"old key during rotation", signed(oldKey, "msg_1", now, body), 202},
		{"same webhook-id again", signed(newKey, "msg_1", now, body), 200},
		{"new webhook-id, same registration", signed(newKey, "msg_2", now, body), 202},
	}
	for _, tt := range tests {
		if code, resp := h.do(body, tt.prepare); code != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, code, resp, tt.want)
		}
	}
	h.smtp.WaitFor(t, 1, 10*time.Second)
	h.waitForRecipients([]string{"jonas.becker@example.edu"}, 5*time.Second)
	time.Sleep(500 * time.Millisecond) // room for a wrong second email
	if n := h.smtp.Count(); n != 1 {
		t.Errorf("%d emails for one registration sent under two webhook-ids, want 1", n)
	}
	if code, _ := h.do(body, func(r *http.Request) { r.SetBasicAuth(testUser, testPassword) }); code != http.StatusUnauthorized {
		t.Errorf("Basic auth alone passed a receiver that requires signatures: %d", code)
	}
}

func TestEmptyPasswordNeverAuthenticates(t *testing.T) {
	m := NewMetrics()
	srv := NewServer(ServerDeps{Receiver: NewReceiver(nil, tasks.Options{}, nil, quietLog(), m), Metrics: m, Log: quietLog()})
	req := httptest.NewRequest(http.MethodPost, WebhookPath, nil)
	req.SetBasicAuth("", "")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("empty credentials against an empty password: %d", rec.Code)
	}
}
