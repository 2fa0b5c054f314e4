package templates

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
)

// FuzzRender: any text in the payload renders without error, stays one line
// in a subject, never becomes a Slack mention or link, and reaches a Teams
// card only as plain text in a valid card.
func FuzzRender(f *testing.F) {
	f.Add("Amara Okafor", "Year 2 Pharmacology", "MBBS Cohort", "https://med.example.edu/x")
	f.Add("<!channel>", "<@U123|boss>", "<https://evil.example|click>", "https://a.example/?a=<b>&c=|d")
	f.Add("{{.Student.Email}}", "Line\nBreak", "&amp;", "")
	set, err := Load(Options{DigestList: 25})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name, exam, group, url string) {
		r := sampleRegistrations()[0]
		r.User.Name, r.Exam.Name, r.UserGroup.Name, r.Exam.URL = name, exam, group, url
		e, err := set.Confirmation(r, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(e.Subject, "\r\n") {
			t.Fatalf("subject %q", e.Subject)
		}
		alert, err := set.StaffAlert(relay.Slack, r, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		digest, err := set.StaffDigest(relay.Slack, relay.Digest{Items: []relay.DigestItem{{Registration: r}}}, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{alert, digest} {
			// The only < in a Slack message is the exam link the template
			// made: <http…|label>.
			rest := msg
			for {
				i := strings.IndexByte(rest, '<')
				if i < 0 {
					break
				}
				rest = rest[i+1:]
				if !strings.HasPrefix(rest, "http://") && !strings.HasPrefix(rest, "https://") {
					t.Fatalf("markup from the payload in %q", msg)
				}
				end := strings.IndexByte(rest, '>')
				if end < 0 || !strings.Contains(rest[:end], "|") {
					t.Fatalf("unbalanced link in %q", msg)
				}
				rest = rest[end+1:]
			}
		}
		for _, render := range []func() (string, error){
			func() (string, error) { return set.StaffAlert(relay.Teams, r, time.UTC) },
			func() (string, error) {
				return set.StaffDigest(relay.Teams, relay.Digest{Items: []relay.DigestItem{{Registration: r}}}, time.UTC)
			},
		} {
			card, err := render()
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal([]byte(card), &v); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, card)
			}
			if texts := markdownTexts(v); len(texts) != 0 {
				t.Fatalf("Markdown text %q in %s", texts, card)
			}
		}
	})
}
