package templates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/exam-relay/relay/relay"
)

// StaffAlert renders the staff message for one registration on channel,
// with dates in zone: Slack mrkdwn, or a Teams Adaptive Card as JSON.
func (s *Set) StaffAlert(channel relay.Channel, reg relay.Registration, zone *time.Location) (string, error) {
	d := newData(reg, zone)
	if channel == relay.Teams {
		return s.card(s.teamsAlert, d.teamsSafe())
	}
	return s.mrkdwn(s.slackAlert, d.slackSafe())
}

// StaffDigest renders the staff message for the registrations of a
// digest, all for one exam, on channel, with dates in zone.
func (s *Set) StaffDigest(channel relay.Channel, d relay.Digest, zone *time.Location) (string, error) {
	if len(d.Items) == 0 {
		return "", errors.New("staff digest: no registrations")
	}
	return s.staffDigest(channel, newDigestData(d, zone, s.digestList))
}

func (s *Set) staffDigest(channel relay.Channel, v DigestData) (string, error) {
	if channel == relay.Teams {
		return s.card(s.teamsDigest, v.teamsSafe())
	}
	return s.mrkdwn(s.slackDigest, v.slackSafe())
}

func (s *Set) mrkdwn(t *texttemplate.Template, data any) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", s.execError(err)
	}
	return strings.TrimSpace(b.String()), nil
}

// card runs a Teams template, which writes an Adaptive Card, and checks
// that it wrote one: a school's template that forgets json around a value
// with a quote in it fails here, naming the file, not at Teams.
func (s *Set) card(t *texttemplate.Template, data any) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", s.execError(err)
	}
	var card struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b.Bytes(), &card); err != nil || card.Type != "AdaptiveCard" {
		return "", fmt.Errorf("%s: did not write an Adaptive Card as JSON (write each value with json, as in {{json .Student.Name}}): %v",
			s.Source[t.Name()], cmpErr(err, `"type" is not "AdaptiveCard"`))
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, b.Bytes())
	return compact.String(), nil
}

func cmpErr(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// hostileName is what Check puts in a student's and an exam's name to see
// where a Teams template writes them.
const hostileName = `**[click](https://evil.example)** <at>All</at> "quoted" \ {{DATE(2026-12-07T09:00:00Z)}}`

// checkCardsKeepPayloadPlain renders the Teams templates with a hostile
// name and exam and refuses a template that writes them where Teams reads
// Markdown (a TextBlock's text, a fact): there a name could become a link,
// formatting or a mention. A TextRun shows text as typed.
func (s *Set) checkCardsKeepPayloadPlain() error {
	reg := sampleRegistrations()[0]
	reg.User.Name, reg.Exam.Name, reg.UserGroup.Name = hostileName, hostileName, hostileName
	alert, err := s.StaffAlert(relay.Teams, reg, time.UTC)
	if err != nil {
		return err
	}
	digest, err := s.staffDigest(relay.Teams, newDigestData(relay.Digest{Items: []relay.DigestItem{{Registration: reg}}}, time.UTC, 2))
	if err != nil {
		return err
	}
	var errs []error
	for name, card := range map[string]string{StaffAlertTeams: alert, StaffDigestTeams: digest} {
		var v any
		_ = json.Unmarshal([]byte(card), &v)
		for _, text := range markdownTexts(v) {
			if strings.Contains(text, "evil.example") || strings.Contains(text, "<at>") {
				errs = append(errs, fmt.Errorf("%s: writes text from the payload where Teams reads Markdown (%q): put it in a TextRun of a RichTextBlock, which Teams shows as typed", s.Source[name], text))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// markdownTexts are the strings of a card that Teams reads as Markdown:
// the text of a TextBlock, the title and value of a fact.
func markdownTexts(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if v["type"] == "TextBlock" {
			if text, ok := v["text"].(string); ok {
				out = append(out, text)
			}
		}
		if facts, ok := v["facts"].([]any); ok {
			for _, f := range facts {
				if f, ok := f.(map[string]any); ok {
					for _, k := range []string{"title", "value"} {
						if text, ok := f[k].(string); ok {
							out = append(out, text)
						}
					}
				}
			}
		}
		for _, child := range v {
			out = append(out, markdownTexts(child)...)
		}
	case []any:
		for _, child := range v {
			out = append(out, markdownTexts(child)...)
		}
	}
	return out
}
