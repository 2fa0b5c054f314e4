package relaytest

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/smtp"
	"net/url"
	"strings"
	"testing"
	"time"
)

// requestToken asks o for a token as the relay does, the credentials in
// the form.
func requestToken(t *testing.T, o *OAuth, secret string) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(o.TokenURL(), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {o.ClientID}, "client_secret": {secret},
		"scope": {"https://outlook.office365.com/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestOAuthGrantsTokensThatExpire(t *testing.T) {
	o := StartOAuth(t, "relay-app", "right-secret", time.Second)
	status, body := requestToken(t, o, "right-secret")
	token, _ := body["access_token"].(string)
	if status != http.StatusOK || token == "" || body["expires_in"] != 1.0 || body["token_type"] != "Bearer" {
		t.Fatalf("token request: %d %v", status, body)
	}
	if err := o.Check("exams@school.edu", token); err != nil {
		t.Errorf("a fresh token: %v", err)
	}
	if err := o.Check("exams@school.edu", "tok-made-up"); err == nil {
		t.Error("a made-up token passes")
	}
	if o.Scopes() != "https://outlook.office365.com/.default" {
		t.Errorf("scopes seen: %q", o.Scopes())
	}
	time.Sleep(time.Second)
	if err := o.Check("exams@school.edu", token); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a token past its lifetime: %v", err)
	}

	status, body = requestToken(t, o, "wrong-secret")
	if status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v, want 401 invalid_client", status, body)
	}
	_, body = requestToken(t, o, "right-secret")
	o.Revoke()
	if err := o.Check("exams@school.edu", body["access_token"].(string)); err == nil {
		t.Error("a revoked token passes")
	}
	if o.Requests() != 3 || o.Granted() != 2 {
		t.Errorf("Requests() = %d, Granted() = %d; want 3 and 2", o.Requests(), o.Granted())
	}
}

// xoauth2Auth is the client side of XOAUTH2 for net/smtp.
type xoauth2Auth struct{ user, token string }

func (a xoauth2Auth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a xoauth2Auth) Next([]byte, bool) ([]byte, error) { return nil, nil }

func TestSMTPRequireXOAUTH2(t *testing.T) {
	o := StartOAuth(t, "relay-app", "right-secret", time.Hour)
	s := StartSMTP(t, RequireXOAUTH2(o.Check))
	_, body := requestToken(t, o, "right-secret")
	token := body["access_token"].(string)

	dial := func() *smtp.Client {
		c, err := smtp.Dial(s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Hello("relay"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := dial()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS: a token would cross in clear")
	}
	if err := c.Mail("exams@school.edu"); err == nil {
		t.Error("mail taken without a login")
	}
	// No RootCAs: the system's roots, which RunTrustingSinkCertificate set.
	if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if _, mechs := c.Extension("AUTH"); mechs != "XOAUTH2" {
		t.Errorf("AUTH %s offered, want XOAUTH2 alone", mechs)
	}
	// net/smtp hangs up after a refused login.
	if err := c.Auth(xoauth2Auth{"exams@school.edu", "tok-made-up"}); err == nil || !strings.HasPrefix(err.Error(), "535") {
		t.Errorf("a token the endpoint did not grant: %v, want 535", err)
	}

	c = dial()
	if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Auth(xoauth2Auth{"exams@school.edu", token}); err != nil {
		t.Fatalf("a granted token: %v", err)
	}
	sendOn(t, c, "exams@school.edu", []string{"student@example.edu"}, "Subject: hi\r\n\r\nhi\r\n")
	if m := s.WaitFor(t, 1, 5*time.Second)[0]; m.Username != "exams@school.edu" {
		t.Errorf("logged in as %q", m.Username)
	}
	if s.AuthFailures() != 1 {
		t.Errorf("AuthFailures() = %d, want 1", s.AuthFailures())
	}
}

func TestSMTPHangUpAfter(t *testing.T) {
	s := StartSMTP(t, HangUpAfter(2))
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 2 {
		sendOn(t, c, "exams@school.edu", []string{"student@example.edu"}, "Subject: hi\r\n\r\nhi\r\n")
		// What go-mail sends after each message; the sink answers it
		// before it hangs up.
		if err := c.Reset(); err != nil {
			t.Fatalf("RSET after message %d: %v", i+1, err)
		}
	}
	if err := c.Noop(); err == nil {
		t.Error("the connection is open after two messages")
	}
	if s.Count() != 2 {
		t.Errorf("%d messages, want 2", s.Count())
	}
}
