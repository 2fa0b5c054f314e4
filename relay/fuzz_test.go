package relay

import (
	"encoding/json"
	"net/mail"
	"os"
	"strings"
	"testing"
)

// FuzzDecodeRegistration: whatever arrives, decoding never panics, and what
// it accepts is safe to send to: one address, no line breaks, a link that
// is http(s) or nothing, and a payload that reads back the same.
func FuzzDecodeRegistration(f *testing.F) {
	for _, name := range []string{"registration.json", "registration-dst.json", "registration-no-close.json"} {
		if b, err := os.ReadFile("../examples/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"user":{"email":"a@b.example","id":12},"exam":{"url":"javascript:x","schedule":{"openDate":"2026-01-01T00:00:00Z","closeDate":null}}}`))
	f.Add([]byte("\xef\xbb\xbf{}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRegistration(body)
		if err != nil {
			if p, ok := err.(Problems); !ok || len(p) == 0 {
				t.Fatalf("error %v (%T) names no field", err, err)
			}
			return
		}
		addr, err := mail.ParseAddress(r.User.Email)
		if err != nil || addr.Address != r.User.Email || strings.ContainsAny(r.User.Email, "\r\n,;") {
			t.Fatalf("accepted email %q", r.User.Email)
		}
		for _, s := range []string{r.User.Name, r.Exam.Name, r.UserGroup.Name, r.User.ID, r.Exam.ObjectID} {
			if strings.ContainsAny(s, "\r\n") {
				t.Fatalf("accepted a line break in %q", s)
			}
		}
		if r.Exam.URL != "" && !strings.HasPrefix(r.Exam.URL, "http://") && !strings.HasPrefix(r.Exam.URL, "https://") {
			t.Fatalf("accepted link %q", r.Exam.URL)
		}
		payload, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back Registration
		if err := json.Unmarshal(payload, &back); err != nil || back.ID() != r.ID() {
			t.Fatalf("payload does not read back: %v", err)
		}
	})
}
