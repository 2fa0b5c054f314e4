package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

const (
	oauthMailbox  = "exams@school.edu"
	oauthClientID = "relay-app"
	oauthSecret   = "client-secret-value-7f3a"
)

// xoauth2URL is RELAY_SMTP_URL for logging in to sink as oauthMailbox.
func xoauth2URL(sink *relaytest.SMTPSink) string {
	return "smtp://exams%40school.edu@" + sink.Addr + "?tls=starttls&auth=xoauth2"
}

// withXOAUTH2 sends through an SMTP server that, like Microsoft 365, takes
// only XOAUTH2 logins with tokens from endpoint, and that hangs up after
// three messages, so the relay logs in again and again.
func withXOAUTH2(endpoint *relaytest.OAuth) harnessOption {
	return func(h *harness, c *config.Config) {
		h.smtp = relaytest.StartSMTP(h.t, relaytest.RequireXOAUTH2(endpoint.Check), relaytest.HangUpAfter(3))
		c.SMTP.URL = xoauth2URL(h.smtp)
		c.SMTP.OAuth = config.OAuth{
			TokenURL: endpoint.TokenURL(), ClientID: oauthClientID, ClientSecret: oauthSecret,
			Scopes: config.Scopes{config.DefaultOAuthScope},
		}
	}
}

func TestABurstOutlastingItsTokensIsDeliveredOnceEachOnAHandfulOfTokens(t *testing.T) {
	const lifetime = 2 * time.Second
	endpoint := relaytest.StartOAuth(t, oauthClientID, oauthSecret, lifetime)
	h := newHarness(t, withXOAUTH2(endpoint))

	start := time.Now()
	// The first email is out before the rest come, so the deliveries
	// outlast the first token however fast or slow the machine is.
	if code, body := h.post(registrationFor(0, 1)); code != 202 {
		t.Fatalf("post: %d %s", code, body)
	}
	h.smtp.WaitFor(t, 1, 30*time.Second)
	const students = 40
	for i := 1; i < students; i++ {
		if code, body := h.post(registrationFor(i, 1)); code != 202 {
			t.Fatalf("post %d: %d %s", i, code, body)
		}
		time.Sleep(lifetime * 5 / 2 / students)
	}
	want := make([]string, students)
	for i := range want {
		want[i] = fmt.Sprintf("student%d@example.edu", i)
	}
	h.waitForRecipients(want, time.Minute)
	h.waitIdle(time.Minute, tasks.QueueRegistrations, tasks.QueueEmail)
	elapsed := time.Since(start)

	msgs := h.smtp.Messages()
	for addr, n := range recipients(msgs) {
		if n != 1 {
			t.Errorf("%s got %d emails", addr, n)
		}
	}
	if len(msgs) != students {
		t.Errorf("%d emails for %d students", len(msgs), students)
	}
	for _, m := range msgs {
		if m.Username != oauthMailbox {
			t.Errorf("an email sent logged in as %q, want %s", m.Username, oauthMailbox)
			break
		}
	}
	granted, refused, connections := endpoint.Granted(), h.smtp.AuthFailures(), h.smtp.Connections()
	t.Logf("%d emails in %v over %d connections, on %d tokens of %v; %d logins refused", len(msgs), elapsed.Round(time.Millisecond), connections, granted, lifetime, refused)
	if connections < students/3 {
		t.Errorf("%d connections for %d emails, three to a connection", connections, students)
	}
	// The sink refuses a token past its life, so delivering the last
	// email took a second one.
	if granted < 2 {
		t.Errorf("%d token for deliveries over %v of %v tokens", granted, elapsed, lifetime)
	}
	// A token is kept for three quarters of its life and replaced early
	// only when a login is refused: not one per connection or email.
	if most := 1 + int(elapsed/(lifetime*3/4)) + refused; granted > most {
		t.Errorf("%d tokens in %v, want at most %d", granted, elapsed, most)
	}
}

func TestCheckSaysWhetherTheOAuth2LoginWorks(t *testing.T) {
	endpoint := relaytest.StartOAuth(t, oauthClientID, oauthSecret, time.Hour)
	sink := relaytest.StartSMTP(t, relaytest.RequireXOAUTH2(endpoint.Check))
	env := map[string]string{
		"RELAY_SMTP_URL":                 xoauth2URL(sink),
		"RELAY_SMTP_OAUTH_TOKEN_URL":     endpoint.TokenURL(),
		"RELAY_SMTP_OAUTH_CLIENT_ID":     oauthClientID,
		"RELAY_SMTP_OAUTH_CLIENT_SECRET": oauthSecret,
	}
	check := func() (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := run(context.Background(), []string{"relay", "check"}, func(k string) string { return env[k] }, nil, &out, io.Discard)
		for _, secret := range []string{oauthSecret, "wrong-secret-0c1d"} {
			if strings.Contains(out.String(), secret) || err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("check shows the client secret %q:\n%s\n%v", secret, out.String(), err)
			}
		}
		return out.String(), err
	}
	contains := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("check output lacks %q:\n%s", w, out)
			}
		}
	}
	tokenURL, err := url.Parse(endpoint.TokenURL())
	if err != nil {
		t.Fatal(err)
	}
	tokenLine := "smtp: OAuth2 token from " + tokenURL.Host

	out, err := check()
	if err != nil {
		t.Fatalf("check with the right secret: %v\n%s", err, out)
	}
	contains(out, "RELAY_SMTP_OAUTH_CLIENT_SECRET  [redacted]", "ok    "+tokenLine, "ok    smtp: XOAUTH2 login as "+oauthMailbox+" at "+sink.Addr)

	env["RELAY_SMTP_OAUTH_CLIENT_SECRET"] = "wrong-secret-0c1d"
	out, err = check()
	if err == nil {
		t.Fatalf("check with a wrong secret passed:\n%s", out)
	}
	contains(out, "FAIL  "+tokenLine, `refused the client id "relay-app" or its client secret`, "invalid_client", "RELAY_SMTP_OAUTH_CLIENT_SECRET (smtp.oauth.client_secret)")
	contains(err.Error(), "client secret")
	if strings.Contains(out, "XOAUTH2 login as") {
		t.Errorf("check tried to log in without a token:\n%s", out)
	}

	// The token is good but the mailbox will not take it.
	env["RELAY_SMTP_OAUTH_CLIENT_SECRET"] = oauthSecret
	env["RELAY_SMTP_URL"] = xoauth2URL(relaytest.StartSMTP(t, relaytest.RequireXOAUTH2(func(string, string) error {
		return fmt.Errorf("no permission on the mailbox")
	})))
	out, err = check()
	if err == nil {
		t.Fatalf("check passed though the login is refused:\n%s", out)
	}
	contains(out, "ok    "+tokenLine, "FAIL  smtp: XOAUTH2 login as "+oauthMailbox, "535", "Add-MailboxPermission")
}
