package templates

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
)

// textRuns are the text of every TextRun in a card.
func textRuns(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if v["type"] == "TextRun" {
			out = append(out, v["text"].(string))
		}
		for _, child := range v {
			out = append(out, textRuns(child)...)
		}
	case []any:
		for _, child := range v {
			out = append(out, textRuns(child)...)
		}
	}
	return out
}

func TestTeamsCardsShowWhatAStudentWroteAsTyped(t *testing.T) {
	s := mustLoad(t, "")
	r := sampleRegistrations()[0]
	r.User.Name = "**[click](https://evil.example)** <at>All</at>"
	r.Exam.Name = `Final "B" \ {{DATE(2026-12-07T09:00:00Z, SHORT)}}`
	alert, err := s.StaffAlert(relay.Teams, r, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := s.StaffDigest(relay.Teams, relay.Digest{Items: []relay.DigestItem{{Registration: r}}}, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	for name, card := range map[string]string{"alert": alert, "digest": digest} {
		var v map[string]any
		if err := json.Unmarshal([]byte(card), &v); err != nil || v["type"] != "AdaptiveCard" || v["version"] != "1.4" {
			t.Fatalf("%s is not an Adaptive Card 1.4 (%v): %s", name, err, card)
		}
		if texts := markdownTexts(v); len(texts) != 0 {
			t.Errorf("%s has Markdown text %q", name, texts)
		}
		runs := strings.Join(textRuns(v), "|")
		if !strings.Contains(runs, "**[click](https://evil.example)** <at>All</at>") || !strings.Contains(runs, `Final "B" \`) {
			t.Errorf("%s does not show the names as typed: %s", name, runs)
		}
		if strings.Contains(runs, "{{DATE") {
			t.Errorf("%s lets a name call the card's date function: %s", name, runs)
		}
		// The one link is the exam's, to its http(s) address.
		if !strings.Contains(card, `"url":"https://med.example.edu/exams/exm_3Jd9xK"`) || strings.Contains(card, `"url":"https://evil`) {
			t.Errorf("%s links: %s", name, card)
		}
	}
	r.Exam.URL = "javascript:alert(1)"
	if alert, _ := s.StaffAlert(relay.Teams, r, time.UTC); strings.Contains(alert, "javascript") {
		t.Errorf("a non-web link reached the card: %s", alert)
	}
}

func TestCheckRefusesATeamsTemplateThatWritesPayloadAsMarkdown(t *testing.T) {
	for name, tmpl := range map[string]string{
		"in a TextBlock": `{"type":"AdaptiveCard","version":"1.4","body":[{"type":"TextBlock","text":{{json .Student.Name}}}]}`,
		"in a fact":      `{"type":"AdaptiveCard","version":"1.4","body":[{"type":"FactSet","facts":[{"title":"Exam","value":{{json .Exam.Name}}}]}]}`,
		"without json":   `{"type":"AdaptiveCard","version":"1.4","body":[{"type":"RichTextBlock","inlines":[{"type":"TextRun","text":"{{.Student.Name}}"}]}]}`,
	} {
		dir := t.TempDir()
		write(t, dir, StaffAlertTeams, tmpl)
		s := mustLoad(t, dir)
		err := s.Check()
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: Check = %v, want an error naming the file", name, err)
		}
	}
}
