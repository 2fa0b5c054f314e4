package relaytest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SlackToken is the only bot token the Slack stand-in accepts.
const SlackToken = "xoxb-test"

// SlackMissingChannel is a channel the Slack stand-in says does not exist.
const SlackMissingChannel = "C_MISSING"

// Kinds of SlackPost.
const (
	KindWebhook     = "webhook"
	KindPostMessage = "chat.postMessage"
	KindUpdate      = "chat.update"
)

// SlackPost is a request the Slack stand-in accepted.
type SlackPost struct {
	Path    string
	Kind    string // KindWebhook, KindPostMessage or KindUpdate
	Channel string // "" for a webhook that does not name one
	Text    string
	Blocks  json.RawMessage // the blocks JSON as sent; nil if none
	Body    []byte          // the raw request body
	At      time.Time
	// TS is the message's timestamp: the one this stand-in answered for
	// chat.postMessage, the one being changed for chat.update, "" for a
	// webhook.
	TS string
}

// Slack is an HTTP server that answers like Slack for incoming webhooks
// and for the Web API methods chat.postMessage and chat.update.
//
// Webhooks: POST a JSON body to any path under /services/; the answer is
// 200 "ok". A body that is not JSON gets 400 "invalid_payload" and one with
// no text, blocks or attachments gets 400 "no_text", as Slack does.
//
// Web API: POST /api/chat.postMessage or /api/chat.update, as a form (the
// way slack-go sends them, token in the "token" field) or as JSON with an
// "Authorization: Bearer" header. Errors come back as HTTP 200 with
// {"ok":false,"error":...}, as Slack does: "invalid_auth" unless the token
// is SlackToken, "channel_not_found" for SlackMissingChannel or no
// channel, "no_text" with neither text nor blocks, "invalid_blocks" if
// blocks is not JSON, and for chat.update "message_not_found" unless ts is
// one this server gave out for that channel.
//
// RateLimit's Retry-After is in whole seconds, rounded up, at least 1
// (the header cannot say less); a webhook that FailWith makes answer 404
// has the body "no_service", like a deleted webhook.
type Slack struct {
	server *httptest.Server
	standIn

	posts  []SlackPost
	lastTS int               // number of ts values given out
	issued map[string]string // ts -> channel, for chat.update
}

// StartSlack starts a Slack stand-in that is closed when t ends.
func StartSlack(t testing.TB) *Slack {
	t.Helper()
	s := &Slack{issued: make(map[string]string)}
	s.server = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.server.Close)
	return s
}

// WebhookURL returns an incoming webhook URL served by s.
func (s *Slack) WebhookURL() string {
	return s.server.URL + "/services/T000/B000/XXXX"
}

// APIURL returns the Web API base URL, in the form slack.OptionAPIURL
// expects (with the trailing slash).
func (s *Slack) APIURL() string {
	return s.server.URL + "/api/"
}

// Posts returns a copy of the requests answered with success, in order.
func (s *Slack) Posts() []SlackPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SlackPost, len(s.posts))
	for i, p := range s.posts {
		p.Blocks = append(json.RawMessage(nil), p.Blocks...)
		p.Body = append([]byte(nil), p.Body...)
		out[i] = p
	}
	return out
}

// WaitFor waits until at least n posts have been accepted and returns
// them. If that takes longer than timeout it fails the test. It is for
// posts sent asynchronously, not a statement about speed: be generous.
func (s *Slack) WaitFor(t testing.TB, n int, timeout time.Duration) []SlackPost {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		posts := s.Posts()
		if len(posts) >= n {
			return posts
		}
		if time.Now().After(deadline) {
			t.Fatalf("slack: waited %v for %d posts, got %d (%d attempts)", timeout, n, len(posts), s.Attempts())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slackReply is what the handler sends back.
type slackReply struct {
	status int
	header http.Header
	body   []byte
}

func (s *Slack) serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		// The client went away; there is nobody to answer.
		return
	}
	s.mu.Lock()
	reply := s.handle(r, body)
	s.mu.Unlock()

	for k, v := range reply.header {
		w.Header()[k] = v
	}
	w.WriteHeader(reply.status)
	w.Write(reply.body)
}

// handle decides the answer to one request. s.mu is held.
func (s *Slack) handle(r *http.Request, body []byte) slackReply {
	s.attempts++
	webhook := strings.HasPrefix(r.URL.Path, "/services/")

	if f, ok := s.faults.next(); ok {
		return faultReply(f, webhook)
	}
	if r.Method != http.MethodPost {
		return textReply(http.StatusMethodNotAllowed, "method_not_allowed")
	}

	switch {
	case webhook:
		return s.handleWebhook(r, body)
	case r.URL.Path == "/api/"+KindPostMessage:
		return s.handleAPI(r, body, KindPostMessage)
	case r.URL.Path == "/api/"+KindUpdate:
		return s.handleAPI(r, body, KindUpdate)
	case strings.HasPrefix(r.URL.Path, "/api/"):
		return apiError("unknown_method")
	default:
		return textReply(http.StatusNotFound, "not_found")
	}
}

func faultReply(f fault, webhook bool) slackReply {
	if f.status == http.StatusTooManyRequests {
		secs := max(1, int(math.Ceil(f.retryAfter.Seconds())))
		var rep slackReply
		if webhook {
			rep = textReply(f.status, "rate_limited")
		} else {
			rep = apiError("ratelimited")
			rep.status = f.status
		}
		rep.header.Set("Retry-After", strconv.Itoa(secs))
		return rep
	}
	if webhook && f.status == http.StatusNotFound {
		return textReply(f.status, "no_service")
	}
	return textReply(f.status, http.StatusText(f.status))
}

// webhookMessage holds the fields of a webhook body we look at.
type webhookMessage struct {
	Channel     string          `json:"channel"`
	Text        string          `json:"text"`
	Blocks      json.RawMessage `json:"blocks"`
	Attachments json.RawMessage `json:"attachments"`
}

func (s *Slack) handleWebhook(r *http.Request, body []byte) slackReply {
	var m webhookMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return textReply(http.StatusBadRequest, "invalid_payload")
	}
	if m.Text == "" && isEmptyJSON(m.Blocks) && isEmptyJSON(m.Attachments) {
		return textReply(http.StatusBadRequest, "no_text")
	}
	s.record(r, body, KindWebhook, m.Channel, m.Text, m.Blocks, "")
	return textReply(http.StatusOK, "ok")
}

// apiRequest holds the parameters of chat.postMessage and chat.update.
type apiRequest struct {
	Token   string          `json:"-"`
	Channel string          `json:"channel"`
	Text    string          `json:"text"`
	Blocks  json.RawMessage `json:"blocks"`
	TS      string          `json:"ts"`
}

func (s *Slack) handleAPI(r *http.Request, body []byte, kind string) slackReply {
	req, ok := parseAPIRequest(r, body)
	if !ok {
		return apiError("invalid_arguments")
	}
	switch {
	case req.Token != SlackToken:
		return apiError("invalid_auth")
	case req.Channel == "" || req.Channel == SlackMissingChannel:
		return apiError("channel_not_found")
	case len(req.Blocks) > 0 && !json.Valid(req.Blocks):
		return apiError("invalid_blocks")
	case req.Text == "" && isEmptyJSON(req.Blocks):
		return apiError("no_text")
	}

	ts := req.TS
	if kind == KindUpdate {
		if ch, ok := s.issued[ts]; !ok || ch != req.Channel {
			return apiError("message_not_found")
		}
	} else {
		// 1700000000.000100, 1700000000.000101, ...: unique and in order,
		// like Slack's.
		n := 100 + s.lastTS
		s.lastTS++
		ts = fmt.Sprintf("%d.%06d", 1700000000+n/1000000, n%1000000)
		s.issued[ts] = req.Channel
	}
	s.record(r, body, kind, req.Channel, req.Text, req.Blocks, ts)

	reply := map[string]any{
		"ok":      true,
		"channel": req.Channel,
		"ts":      ts,
		"text":    req.Text,
		"message": map[string]any{
			"type": "message",
			"text": req.Text,
			"ts":   ts,
		},
	}
	b, _ := json.Marshal(reply)
	return jsonReply(http.StatusOK, b)
}

// parseAPIRequest reads a form post (slack-go's way for chat.*) or a JSON
// post (what Slack also accepts, with the token in a Bearer header).
func parseAPIRequest(r *http.Request, body []byte) (apiRequest, bool) {
	var req apiRequest
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		if err := json.Unmarshal(body, &req); err != nil {
			return req, false
		}
	} else {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return req, false
		}
		req.Token = form.Get("token")
		req.Channel = form.Get("channel")
		req.Text = form.Get("text")
		req.TS = form.Get("ts")
		if b := form.Get("blocks"); b != "" {
			req.Blocks = json.RawMessage(b)
		}
	}
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		req.Token = bearer
	}
	return req, true
}

func (s *Slack) record(r *http.Request, body []byte, kind, channel, text string, blocks json.RawMessage, ts string) {
	s.posts = append(s.posts, SlackPost{
		Path:    r.URL.Path,
		Kind:    kind,
		Channel: channel,
		Text:    text,
		Blocks:  append(json.RawMessage(nil), blocks...),
		Body:    append([]byte(nil), body...),
		At:      time.Now(),
		TS:      ts,
	})
}

// isEmptyJSON reports whether raw is absent, null or an empty array.
func isEmptyJSON(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "", "null", "[]":
		return true
	}
	return false
}

func textReply(status int, body string) slackReply {
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	return slackReply{status: status, header: h, body: []byte(body)}
}

func jsonReply(status int, body []byte) slackReply {
	h := http.Header{}
	h.Set("Content-Type", "application/json; charset=utf-8")
	return slackReply{status: status, header: h, body: body}
}

func apiError(code string) slackReply {
	b, _ := json.Marshal(map[string]any{"ok": false, "error": code})
	return jsonReply(http.StatusOK, b)
}
