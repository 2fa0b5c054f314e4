package email

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
)

const (
	mailbox      = "exams@school.edu"
	clientID     = "relay-app"
	clientSecret = "client-secret-value-42"
)

// xoauth2Pool is a pool that logs in to sink as mailbox with tokens from
// endpoint, presenting secret.
func xoauth2Pool(t *testing.T, sink *relaytest.SMTPSink, endpoint *relaytest.OAuth, secret string) *Pool {
	t.Helper()
	server, err := config.ParseSMTPURL("smtp://exams%40school.edu@" + sink.Addr + "?tls=starttls&auth=xoauth2")
	if err != nil {
		t.Fatal(err)
	}
	tokens := NewOAuthTokens(config.OAuth{TokenURL: endpoint.TokenURL(), ClientID: clientID, ClientSecret: secret, Scopes: config.Scopes{config.DefaultOAuthScope}})
	pool := NewPool(server, 1, tokens)
	t.Cleanup(func() { pool.Close() })
	return pool
}

func TestPoolFetchesANewTokenWhenTheServerRevokesOne(t *testing.T) {
	endpoint := relaytest.StartOAuth(t, clientID, clientSecret, time.Hour)
	// One message per connection: each send logs in again.
	sink := relaytest.StartSMTP(t, relaytest.RequireXOAUTH2(endpoint.Check), relaytest.HangUpAfter(1))
	pool := xoauth2Pool(t, sink, endpoint, clientSecret)

	if err := pool.Send(context.Background(), testMessage(t, 1)); err != nil {
		t.Fatal(err)
	}
	// The token has most of its hour left, so the pool keeps it; the
	// server stops taking it.
	endpoint.Revoke()
	if err := pool.Send(context.Background(), testMessage(t, 2)); err != nil {
		t.Fatalf("after a revoked token: %v", err)
	}
	if err := pool.Send(context.Background(), testMessage(t, 3)); err != nil {
		t.Fatal(err)
	}
	if n := sink.Count(); n != 3 {
		t.Errorf("%d messages arrived, want 3", n)
	}
	for _, m := range sink.Messages() {
		if m.Username != mailbox {
			t.Errorf("logged in as %q, want %s", m.Username, mailbox)
		}
	}
	// The first token, its refusal, one new token kept for the third.
	if n := endpoint.Requests(); n != 2 {
		t.Errorf("%d token requests, want 2", n)
	}
	if n := sink.AuthFailures(); n != 1 {
		t.Errorf("%d logins refused, want 1", n)
	}
	if endpoint.Scopes() != config.DefaultOAuthScope {
		t.Errorf("asked for scopes %q", endpoint.Scopes())
	}
}

func TestPoolTriesOneNewTokenWhenTheMailboxRefusesItsLogin(t *testing.T) {
	endpoint := relaytest.StartOAuth(t, clientID, clientSecret, time.Hour)
	sink := relaytest.StartSMTP(t, relaytest.RequireXOAUTH2(func(string, string) error {
		return errors.New("SmtpClientAuthentication is disabled for the mailbox")
	}))
	pool := xoauth2Pool(t, sink, endpoint, clientSecret)

	err := pool.Send(context.Background(), testMessage(t, 1))
	if err == nil {
		t.Fatal("sent")
	}
	// Retried: the mailbox's settings can be fixed without a re-run.
	if got := relay.OutcomeOf(err); got != relay.Retry {
		t.Errorf("outcome %v, want %v", got, relay.Retry)
	}
	for _, want := range []string{"XOAUTH2 login as " + mailbox, "535", "Add-MailboxPermission", "RELAY_SMTP_OAUTH_SCOPES"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %q", err, want)
		}
	}
	if n, m := endpoint.Requests(), sink.AuthFailures(); n != 2 || m != 2 {
		t.Errorf("%d tokens fetched and %d logins refused, want 2 and 2: one new token, not a loop", n, m)
	}
}

func TestPoolSaysTheClientSecretWasRefusedAndRetries(t *testing.T) {
	endpoint := relaytest.StartOAuth(t, clientID, clientSecret, time.Hour)
	sink := relaytest.StartSMTP(t, relaytest.RequireXOAUTH2(endpoint.Check))
	pool := xoauth2Pool(t, sink, endpoint, "an-expired-secret-99")

	err := pool.Send(context.Background(), testMessage(t, 1))
	if err == nil {
		t.Fatal("sent")
	}
	if got := relay.OutcomeOf(err); got != relay.Retry {
		t.Errorf("outcome %v, want %v: a fixed secret must let the email go", got, relay.Retry)
	}
	for _, want := range []string{"refused the client id \"relay-app\" or its client secret", "invalid_client", "RELAY_SMTP_OAUTH_CLIENT_SECRET", endpoint.TokenURL()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\ndoes not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "an-expired-secret-99") {
		t.Errorf("the error shows the client secret: %v", err)
	}
	if n := sink.Connections(); n != 0 {
		t.Errorf("%d connections to the mail server without a token", n)
	}
}

func TestOAuthTokensAreRenewedAfterThreeQuartersOfTheirLife(t *testing.T) {
	endpoint := relaytest.StartOAuth(t, clientID, clientSecret, 2*time.Second)
	tokens := NewOAuthTokens(config.OAuth{TokenURL: endpoint.TokenURL(), ClientID: clientID, ClientSecret: clientSecret, Scopes: config.Scopes{"s"}})
	first, err := tokens.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 1.5 s into a 2 s life it is time for another; until then, maybe not.
	time.Sleep(1600 * time.Millisecond)
	second, err := tokens.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if second == first || endpoint.Requests() != 2 {
		t.Errorf("after 1.6 s of a 2 s token: %d requests, same token %v; want a new one", endpoint.Requests(), second == first)
	}
	tokens.Refused(first)
	if third, _ := tokens.Token(context.Background()); third != second {
		t.Error("refusing an old token dropped the current one")
	}
}
