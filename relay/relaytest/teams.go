package relaytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TeamsPost is a message the Teams stand-in accepted.
type TeamsPost struct {
	// Card is the Adaptive Card attached to the message, as sent.
	Card json.RawMessage
	// Texts are the text of the card's TextRuns and TextBlocks, in order.
	Texts []string
	Body  []byte // the raw request body
	At    time.Time
}

// Text is the card's texts, one after the other.
func (p TeamsPost) Text() string { return strings.Join(p.Texts, "") }

// Teams is an HTTP server that answers like the webhook of a Teams
// workflow ("When a Teams webhook request is received"): POST a message
// with one Adaptive Card attachment to WebhookURL and it answers 202. A
// body that is not such a message gets 400, as Teams does, and a test
// can make it answer 429 or another status to the next requests.
type Teams struct {
	server *httptest.Server
	standIn

	posts []TeamsPost
}

// StartTeams starts a Teams stand-in that is closed when t ends.
func StartTeams(t testing.TB) *Teams {
	t.Helper()
	s := &Teams{}
	s.server = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.server.Close)
	return s
}

// WebhookURL is a workflow URL served by s, signature included, as Teams
// gives it out.
func (s *Teams) WebhookURL() string {
	return s.server.URL + "/workflows/8f2c0a/triggers/manual/paths/invoke?api-version=2016-06-01&sig=SecretSignature123"
}

// Posts returns a copy of the messages accepted, in order.
func (s *Teams) Posts() []TeamsPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TeamsPost(nil), s.posts...)
}

// WaitFor waits until at least n messages were accepted and returns them,
// failing the test after timeout.
func (s *Teams) WaitFor(t testing.TB, n int, timeout time.Duration) []TeamsPost {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if posts := s.Posts(); len(posts) >= n {
			return posts
		}
		if time.Now().After(deadline) {
			t.Fatalf("teams stand-in: waited %v for %d messages, got %d", timeout, n, len(s.Posts()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Teams) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if f, ok := s.faults.next(); ok {
		if f.retryAfter > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(int(f.retryAfter.Seconds())))
		}
		http.Error(w, http.StatusText(f.status), f.status)
		return
	}
	if r.Method != http.MethodPost || !strings.Contains(r.URL.RawQuery, "sig=SecretSignature123") {
		http.Error(w, `{"error":{"code":"WorkflowTriggerNotFound"}}`, http.StatusNotFound)
		return
	}
	var msg struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string          `json:"contentType"`
			Content     json.RawMessage `json:"content"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(body, &msg); err != nil || msg.Type != "message" || len(msg.Attachments) != 1 ||
		msg.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" {
		http.Error(w, `{"error":{"code":"InvalidRequestContent"}}`, http.StatusBadRequest)
		return
	}
	var card any
	if err := json.Unmarshal(msg.Attachments[0].Content, &card); err != nil {
		http.Error(w, `{"error":{"code":"InvalidRequestContent"}}`, http.StatusBadRequest)
		return
	}
	s.posts = append(s.posts, TeamsPost{Card: msg.Attachments[0].Content, Texts: cardTexts(card), Body: body, At: time.Now()})
	w.WriteHeader(http.StatusAccepted)
}

// cardTexts are the texts of a card's TextRuns and TextBlocks, in order.
func cardTexts(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if t, ok := v["text"].(string); ok && (v["type"] == "TextRun" || v["type"] == "TextBlock") {
			out = append(out, t)
		}
		for _, k := range []string{"body", "inlines", "items", "columns"} {
			out = append(out, cardTexts(v[k])...)
		}
	case []any:
		for _, child := range v {
			out = append(out, cardTexts(child)...)
		}
	}
	return out
}
