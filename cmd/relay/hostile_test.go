package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay/relaytest"
)

// hostileRegistration is a valid registration for a new address whose
// name, exam name, group name and link are an attacker's.
func hostileRegistration(i int, name, exam, group, url string) []byte {
	b, _ := json.Marshal(map[string]any{
		"user":      map[string]any{"id": fmt.Sprint("h", i), "name": name, "email": fmt.Sprintf("h%d@example.edu", i)},
		"portal":    map[string]any{"id": "p"},
		"exam":      map[string]any{"objectId": fmt.Sprint("e", i), "name": exam, "url": url, "schedule": map[string]any{"openDate": "2026-12-14T09:00:00Z"}},
		"userGroup": map[string]any{"objectId": "g", "name": group},
	})
	return b
}

func TestHostileInputNeverBreaksOrLeaks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	accepted := []struct{ name, exam, group, url string }{
		{"Eve\r\nBcc: victim@example.com", "Exam\r\nBcc: victim@example.com", "G", "https://ok.example/x"},
		{"<script>alert(1)</script>", `<img src=x onerror="alert(1)">`, "<!channel>", "javascript:alert(document.cookie)"},
		{`{{.Student.Email}} {{template "x"}} {{printf "%s" 1}}`, "{{.}}", "<@U0123|boss>", "data:text/html,<script>alert(1)</script>"},
		{"\"Quoted\" <evil@example.com>, other@example.com", "=?utf-8?q?encoded?=", "<https://evil.example|click>", "https://ok.example/?q=<x>&y=\"z\""},
		{"\xff\xfe broken utf-8 \u202e", "\u0000nul\u0007bell", "&amp; &lt;", "https://ok.example/a|b>c"},
	}
	for i, a := range accepted {
		code, resp := h.post(hostileRegistration(i, a.name, a.exam, a.group, a.url))
		if code != http.StatusAccepted {
			t.Errorf("hostile but valid #%d: %d %s", i, code, resp)
		}
	}
	refused := map[string]string{
		"header injection in email": `{"user":{"email":"a@example.edu\r\nBcc: victim@example.com"},"exam":{"schedule":{"openDate":"2026-12-14T09:00:00Z"}}}`,
		"second recipient":          `{"user":{"email":"a@example.edu, victim@example.com"},"exam":{"schedule":{"openDate":"2026-12-14T09:00:00Z"}}}`,
		"recipient group":           `{"user":{"email":"undisclosed: a@example.edu, victim@example.com;"},"exam":{"schedule":{"openDate":"2026-12-14T09:00:00Z"}}}`,
		"display name in email":     `{"user":{"email":"Boss <victim@example.com>"},"exam":{"schedule":{"openDate":"2026-12-14T09:00:00Z"}}}`,
		"null":                      `null`,
		"string":                    `"hello"`,
		"wrong types":               `{"user":[],"exam":"x"}`,
		"bool date":                 `{"user":{"email":"a@example.edu"},"exam":{"schedule":{"openDate":true}}}`,
		"deep":                      strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000),
	}
	for name, body := range refused {
		if code, resp := h.post([]byte(body)); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", name, code, resp)
		}
	}
	if code, _ := h.post([]byte(`{"pad":"` + strings.Repeat("A", 2<<20) + `"}`)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: %d, want 413", code)
	}

	want := make([]string, len(accepted))
	for i := range accepted {
		want[i] = fmt.Sprintf("h%d@example.edu", i)
	}
	h.waitForRecipients(want, 15*time.Second)
	h.slack.WaitFor(t, len(accepted), 15*time.Second)
	time.Sleep(300 * time.Millisecond)

	for _, m := range h.smtp.Messages() {
		if len(m.To) != 1 || !strings.HasPrefix(m.To[0], "h") || !strings.HasSuffix(m.To[0], "@example.edu") {
			t.Errorf("envelope recipients %v", m.To)
		}
		msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Header["Bcc"]) != 0 || len(msg.Header["Cc"]) != 0 || len(msg.Header["To"]) != 1 {
			t.Errorf("headers: To %q Cc %q Bcc %q", msg.Header["To"], msg.Header["Cc"], msg.Header["Bcc"])
		}
		if to, err := mail.ParseAddressList(msg.Header.Get("To")); err != nil || len(to) != 1 || to[0].Address != m.To[0] {
			t.Errorf("To header %q parses as %v (%v)", msg.Header.Get("To"), to, err)
		}
		e := relaytest.ParseEmail(t, m.Data)
		// Escaped text may say "onerror=", as text; no tag or script URL may pass.
		for _, bad := range []string{"<script", "<img", "javascript:", "data:text/html"} {
			if strings.Contains(strings.ToLower(e.HTML), bad) {
				t.Errorf("HTML carries %q:\n%s", bad, e.HTML)
			}
		}
		if strings.Contains(e.Subject, "\n") || strings.Contains(e.Subject, "\r") {
			t.Errorf("subject spans lines: %q", e.Subject)
		}
		if m.To[0] == "h2@example.edu" && !strings.Contains(e.Text, `Hello {{.Student.Email}} {{template "x"}}`) {
			t.Errorf("template syntax in a name was not shown as text:\n%s", e.Text)
		}
	}
	if got := recipients(h.smtp.Messages()); len(got) != len(accepted) {
		t.Errorf("emails went to %v", got)
	}

	for _, p := range h.slack.Posts() {
		var sent struct {
			Text   string `json:"text"`
			Blocks []struct {
				Text struct{ Text string } `json:"text"`
			} `json:"blocks"`
		}
		if err := json.Unmarshal(p.Body, &sent); err != nil {
			t.Fatal(err)
		}
		for _, text := range []string{sent.Text, sent.Blocks[0].Text.Text} {
			for _, bad := range []string{"<!", "<@", "<https://evil", "<javascript", "<data:"} {
				if strings.Contains(text, bad) {
					t.Errorf("Slack text carries %q: %s", bad, text)
				}
			}
		}
	}

	if resp, err := http.Get(h.http.URL + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("not healthy after the hostile bodies: %v %v", resp, err)
	}
}
