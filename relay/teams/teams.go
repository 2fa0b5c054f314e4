// Package teams is the relay's room for Microsoft Teams: posting staff
// messages, Adaptive Cards, to the webhook of a Teams workflow, and saying
// what Teams' answers come to.
package teams

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/exam-relay/relay/relay"
)

// Webhook posts to a Teams workflow's "When a Teams webhook request is
// received" URL, which carries its signature: the URL is a secret.
type Webhook struct {
	URL    string
	Client *http.Client
}

// Post sends card, an Adaptive Card written by a Teams template, as a
// message with the card attached.
func (w Webhook) Post(ctx context.Context, card string) error {
	body := `{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","contentUrl":null,"content":` + card + `}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader([]byte(body)))
	if err != nil {
		return relay.Permanent(relay.Redact(err, w.URL, "(the Teams webhook URL)"))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.Client.Do(req)
	if err != nil {
		// A network error quotes the URL.
		return relay.Temporary(relay.Redact(err, w.URL, "(the Teams webhook URL)"))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return classify(resp, answer)
}

// classify says what Teams' answer comes to: a 429 waits as long as it
// asks, a 5xx or a timeout is retried, any other 4xx will not work until
// someone fixes the workflow.
func classify(resp *http.Response, answer []byte) error {
	status := resp.StatusCode
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusTooManyRequests:
		return relay.Limited(retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("teams: %s", resp.Status))
	case status >= 500 || status == http.StatusRequestTimeout:
		return relay.Temporary(fmt.Errorf("teams: %s", resp.Status))
	default:
		return relay.Permanent(fmt.Errorf("teams: %s: %.200s (has the workflow been deleted, or its URL changed?)", resp.Status, answer))
	}
}

// retryAfter reads Retry-After in seconds or as a date; without one, a
// minute.
func retryAfter(v string) time.Duration {
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && time.Until(t) > 0 {
		return time.Until(t)
	}
	return time.Minute
}

// DestinationName names a Teams destination without its secret URL.
func DestinationName(webhookURL string) string {
	return "teams-" + relay.Hash(webhookURL)[:12]
}
