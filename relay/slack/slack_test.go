package slack

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
)

func TestSlackErrorsAreClassified(t *testing.T) {
	s := relaytest.StartSlack(t)
	bot := NewBot(relaytest.SlackToken, "C0EXAMS", s.APIURL(), http.DefaultClient)
	webhook := Webhook{URL: s.WebhookURL(), Client: http.DefaultClient}
	ctx := context.Background()
	tests := []struct {
		name  string
		fault func()
		post  relay.Poster
		want  relay.Outcome
	}{
		{"bot: invalid_auth", nil, NewBot("xoxb-revoked", "C0EXAMS", s.APIURL(), http.DefaultClient), relay.Failed},
		{"bot: channel_not_found", nil, NewBot(relaytest.SlackToken, relaytest.SlackMissingChannel, s.APIURL(), http.DefaultClient), relay.Failed},
		{"bot: 429", func() { s.RateLimit(1, 2*time.Second) }, bot, relay.RateLimited},
		{"bot: 500", func() { s.FailWith(1, 500) }, bot, relay.Retry},
		{"webhook: 404 no_service", func() { s.FailWith(1, 404) }, webhook, relay.Failed},
		{"webhook: 503", func() { s.FailWith(1, 503) }, webhook, relay.Retry},
		{"webhook: 429", func() { s.RateLimit(1, 3*time.Second) }, webhook, relay.RateLimited},
	}
	for _, tt := range tests {
		if tt.fault != nil {
			tt.fault()
		}
		err := tt.post.Post(ctx, "hello")
		if got := relay.OutcomeOf(err); err == nil || got != tt.want {
			t.Errorf("%s: %v comes to %v, want %v", tt.name, err, got, tt.want)
		}
		if tt.want == relay.RateLimited && relay.RetryAfterOf(err) < 2*time.Second {
			t.Errorf("%s: retry after %v, less than Slack asked", tt.name, relay.RetryAfterOf(err))
		}
	}
	if err := bot.Post(ctx, "hello"); err != nil {
		t.Errorf("after the faults: %v", err)
	}
}

func TestSlackWebhookErrorsDoNotQuoteTheURL(t *testing.T) {
	// A port nothing listens on: a real connection refused.
	addr := relaytest.FreeAddr(t)
	hook := Webhook{URL: "http://" + addr + "/services/T0/B0/sekret-token", Client: http.DefaultClient}
	err := hook.Post(context.Background(), "hello")
	if err == nil || relay.OutcomeOf(err) != relay.Retry {
		t.Fatalf("Post = %v, want a temporary error", err)
	}
	if strings.Contains(err.Error(), "sekret-token") {
		t.Errorf("the error quotes the webhook URL: %v", err)
	}
}
