package relay

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay/relaytest"
)

func TestSlackErrorsAreClassified(t *testing.T) {
	s := relaytest.StartSlack(t)
	bot := NewSlackBot(relaytest.SlackToken, "C0EXAMS", s.APIURL(), http.DefaultClient)
	webhook := SlackWebhook{URL: s.WebhookURL(), Client: http.DefaultClient}
	ctx := context.Background()
	tests := []struct {
		name  string
		fault func()
		post  Slack
		want  Kind
	}{
		{"bot: invalid_auth", nil, NewSlackBot("xoxb-revoked", "C0EXAMS", s.APIURL(), http.DefaultClient), KindPermanent},
		{"bot: channel_not_found", nil, NewSlackBot(relaytest.SlackToken, relaytest.SlackMissingChannel, s.APIURL(), http.DefaultClient), KindPermanent},
		{"bot: 429", func() { s.RateLimit(1, 2*time.Second) }, bot, KindRateLimited},
		{"bot: 500", func() { s.FailWith(1, 500) }, bot, KindTemporary},
		{"webhook: 404 no_service", func() { s.FailWith(1, 404) }, webhook, KindPermanent},
		{"webhook: 503", func() { s.FailWith(1, 503) }, webhook, KindTemporary},
		{"webhook: 429", func() { s.RateLimit(1, 3*time.Second) }, webhook, KindRateLimited},
	}
	for _, tt := range tests {
		if tt.fault != nil {
			tt.fault()
		}
		err := tt.post.Post(ctx, "hello")
		if KindOf(err) != tt.want {
			t.Errorf("%s: %v is %v, want %v", tt.name, err, KindOf(err), tt.want)
		}
		if tt.want == KindRateLimited && retryAfterOf(err) < 2*time.Second {
			t.Errorf("%s: retry after %v, less than Slack asked", tt.name, retryAfterOf(err))
		}
	}
	if err := bot.Post(ctx, "hello"); err != nil {
		t.Errorf("after the faults: %v", err)
	}
}

func TestSlackWebhookErrorsDoNotQuoteTheURL(t *testing.T) {
	// A port nothing listens on: a real connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hook := SlackWebhook{URL: "http://" + addr + "/services/T0/B0/sekret-token", Client: http.DefaultClient}
	err = hook.Post(context.Background(), "hello")
	if err == nil || KindOf(err) != KindTemporary {
		t.Fatalf("Post = %v (%v), want a temporary error", err, KindOf(err))
	}
	if strings.Contains(err.Error(), "sekret-token") {
		t.Errorf("the error quotes the webhook URL: %v", err)
	}
}
