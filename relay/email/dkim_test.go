package email

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/mail"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	gomail "github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/relay"
)

func TestDKIMSignatureVerifiesWithThePublicKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "dkim.pem")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := LoadDKIM(keyFile, "exams2026")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	record := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
	var looked []string
	lookup := func(domain string) ([]string, error) {
		looked = append(looked, domain)
		if domain != "exams2026._domainkey.school.example" {
			return nil, nil
		}
		return []string{record}, nil
	}

	reg := example(t)
	from := relay.Sender{From: "Exams Office <exams@school.example>"}
	m, err := Confirmation(from, reg, relay.Email{Subject: "You are registered", Text: "Hello", HTML: "<p>Hello</p>"}, signer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if _, err := m.WriteTo(&raw); err != nil {
		t.Fatal(err)
	}
	verifications, err := dkim.VerifyWithOptions(bytes.NewReader(raw.Bytes()), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(verifications) != 1 {
		t.Fatalf("%d signatures (%v):\n%.1500s", len(verifications), err, raw.String())
	}
	if v := verifications[0]; v.Err != nil || v.Domain != "school.example" {
		t.Errorf("signature for %q: %v (looked up %v)", v.Domain, v.Err, looked)
	}

	// A changed body no longer verifies: the check can fail.
	tampered := bytes.Replace(raw.Bytes(), []byte("Hello"), []byte("Hullo"), 1)
	if v, _ := dkim.VerifyWithOptions(bytes.NewReader(tampered), &dkim.VerifyOptions{LookupTXT: lookup}); len(v) != 1 || v[0].Err == nil {
		t.Error("a tampered message still verifies")
	}
	// Unsigned without a key.
	m, _ = Confirmation(from, reg, relay.Email{Subject: "s", Text: "t", HTML: "h"}, DKIM{}, time.Now())
	raw.Reset()
	m.WriteTo(&raw)
	if msg, _ := mail.ReadMessage(&raw); msg.Header.Get("DKIM-Signature") != "" {
		t.Error("signed without a key")
	}
}

func TestLoadDKIMSaysWhatIsWrongWithTheKey(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, err := LoadDKIM(bad, "s"); err == nil || !bytes.Contains([]byte(err.Error()), []byte("RELAY_DKIM_KEY_FILE")) {
		t.Errorf("LoadDKIM of a file that is not a key: %v", err)
	}
}

func TestEveryEmailSaysItWasSentAutomatically(t *testing.T) {
	reg := example(t)
	for name, build := range map[string]func() (*gomail.Msg, error){
		"confirmation": func() (*gomail.Msg, error) {
			return Confirmation(sender, reg, relay.Email{Subject: "s", Text: "t", HTML: "h"}, DKIM{}, time.Now())
		},
		"reminder": func() (*gomail.Msg, error) {
			return Reminder(sender, relay.Reminder{Registration: reg, Event: relay.ExamOpens, Before: time.Hour}, relay.Email{Subject: "s", Text: "t", HTML: "h"}, DKIM{}, time.Now())
		},
	} {
		m, err := build()
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		m.WriteTo(&raw)
		msg, err := mail.ReadMessage(&raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Header.Get("Auto-Submitted"); got != "auto-generated" {
			t.Errorf("%s: Auto-Submitted %q", name, got)
		}
		if got := msg.Header.Get("X-Auto-Response-Suppress"); got != "OOF, AutoReply" {
			t.Errorf("%s: X-Auto-Response-Suppress %q", name, got)
		}
	}
}
