package teams

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
)

const card = `{"type":"AdaptiveCard","version":"1.4","body":[{"type":"RichTextBlock","inlines":[{"type":"TextRun","text":"hello"}]}]}`

func TestTeamsAnswersAreClassified(t *testing.T) {
	s := relaytest.StartTeams(t)
	hook := Webhook{URL: s.WebhookURL(), Client: http.DefaultClient}
	ctx := context.Background()
	tests := []struct {
		name  string
		fault func()
		post  Webhook
		want  relay.Outcome
		wait  time.Duration
	}{
		{"429 with Retry-After", func() { s.RateLimit(1, 7*time.Second) }, hook, relay.RateLimited, 7 * time.Second},
		{"502", func() { s.FailWith(1, 502) }, hook, relay.Retry, 0},
		{"408", func() { s.FailWith(1, 408) }, hook, relay.Retry, 0},
		{"a deleted workflow", nil, Webhook{URL: strings.Replace(s.WebhookURL(), "SecretSignature123", "old", 1), Client: http.DefaultClient}, relay.Failed, 0},
		{"400", func() { s.FailWith(1, 400) }, hook, relay.Failed, 0},
	}
	for _, tt := range tests {
		if tt.fault != nil {
			tt.fault()
		}
		err := tt.post.Post(ctx, card)
		if got := relay.OutcomeOf(err); err == nil || got != tt.want {
			t.Errorf("%s: %v comes to %v, want %v", tt.name, err, got, tt.want)
		}
		if got := relay.RetryAfterOf(err); got != tt.wait {
			t.Errorf("%s: waits %v, want %v", tt.name, got, tt.wait)
		}
	}
	if err := hook.Post(ctx, card); err != nil {
		t.Fatalf("after the faults: %v", err)
	}
	posts := s.Posts()
	if len(posts) != 1 || posts[0].Text() != "hello" {
		t.Errorf("posts %+v", posts)
	}
}

func TestTeamsErrorsDoNotQuoteTheURL(t *testing.T) {
	// A port nothing listens on: a real connection refused.
	addr := relaytest.FreeAddr(t)
	hook := Webhook{URL: "http://" + addr + "/workflows/x/triggers/manual/paths/invoke?sig=sekret-signature", Client: http.DefaultClient}
	err := hook.Post(context.Background(), card)
	if err == nil || relay.OutcomeOf(err) != relay.Retry || strings.Contains(err.Error(), "sekret-signature") {
		t.Errorf("Post = %v: want a retry that does not quote the URL", err)
	}
}

func TestRetryAfterReadsSecondsOrADate(t *testing.T) {
	if d := retryAfter("30"); d != 30*time.Second {
		t.Errorf("30: %v", d)
	}
	if d := retryAfter(time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)); d < 55*time.Second || d > time.Minute {
		t.Errorf("a date a minute ahead: %v", d)
	}
	if d := retryAfter(""); d != time.Minute {
		t.Errorf("none: %v", d)
	}
}
