package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
)

// loadRoutes reads routes from YAML the way the relay does.
func loadRoutes(t *testing.T, yaml string) []config.Route {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Routes
}

// routed is a registration for portal and exam, with custom attributes.
func routed(student int, portal, exam string, attrs string) []byte {
	return []byte(fmt.Sprintf(`{"user":{"id":"usr_%d","name":"Student %d","email":"student%d@example.edu","customAttributes":{%s}},
		"portal":{"id":%q},
		"exam":{"objectId":"exm_%s","name":%q,"url":"https://exams.example.edu/%d",
			"schedule":{"openDate":"2026-12-14T09:00:00Z","closeDate":"2026-12-14T11:00:00Z"}},
		"userGroup":{"objectId":"grp_1","name":"Cohort"}}`, student, student, student, attrs, portal, strings.ReplaceAll(exam, " ", "_"), exam, student))
}

func TestRoutesPickLanguageZoneSenderAndSlackDestination(t *testing.T) {
	t.Parallel()
	ops := relaytest.StartSlack(t)
	routes := loadRoutes(t, `
routes:
  - name: law-fr
    match: {portal: portal_fr_law}
    language: fr
    timezone: Europe/Paris
    from: "Faculté de droit <droit@example.fr>"
  - name: practice
    match: {exam_name: "Practice *"}
    email: false
    slack: {mode: digest, webhook_url: "`+ops.WebhookURL()+`"}
`)
	h := newHarness(t, withConfig(func(c *config.Config) { c.Routes = routes }))
	for i, body := range [][]byte{
		routed(1, "portal_fr_law", "Droit civil", ""),
		routed(2, "portal_uk_med", "Practice quiz 1", ""),
		routed(3, "portal_uk_med", "Practice quiz 1", ""),
		routed(4, "portal_uk_med", "Pharmacology", ""),
	} {
		if code, resp := h.post(body); code != http.StatusAccepted {
			t.Fatalf("POST %d = %d %s", i, code, resp)
		}
	}

	// Two emails: the practice route sends none.
	msgs := h.smtp.WaitFor(t, 2, 10*time.Second)
	byRecipient := map[string]relaytest.Email{}
	for _, m := range msgs {
		byRecipient[m.To[0]] = relaytest.ParseEmail(t, m.Data)
	}
	law, ok := byRecipient["student1@example.edu"]
	if !ok || law.Subject != "Inscription confirmée : Droit civil" || !strings.Contains(law.Text, "lundi 14 décembre 2026, 10:00 CET") || !strings.Contains(law.Header.Get("From"), "droit@example.fr") {
		t.Errorf("law email: from %q subject %q\n%s", law.Header.Get("From"), law.Subject, law.Text)
	}
	med, ok := byRecipient["student4@example.edu"]
	if !ok || !strings.HasPrefix(med.Subject, "You are registered") || !strings.Contains(med.Text, "Monday, 14 December 2026, 09:00 GMT") || !strings.Contains(med.Header.Get("From"), "exams@example.edu") {
		t.Errorf("default email: from %q subject %q\n%s", med.Header.Get("From"), med.Subject, med.Text)
	}

	// One digest of two in #exams-ops; one alert each for the others.
	digests := ops.WaitFor(t, 1, 10*time.Second)
	if !strings.Contains(digests[0].Text, "2 students") || !strings.Contains(digests[0].Text, "Practice quiz 1") {
		t.Errorf("ops digest:\n%s", digests[0].Text)
	}
	alerts := h.slack.WaitFor(t, 2, 10*time.Second)
	var french, english int
	for _, p := range alerts {
		if strings.Contains(p.Text, "inscrit(e) à *<https://exams.example.edu/1|Droit civil>*") {
			french++
		}
		if strings.Contains(p.Text, "registered for *<https://exams.example.edu/4|Pharmacology>*") {
			english++
		}
	}
	// Wait out the digest window: nothing more may arrive anywhere.
	time.Sleep(2 * time.Second)
	if french != 1 || english != 1 || len(h.slack.Posts()) != 2 || len(ops.Posts()) != 1 || len(h.smtp.Messages()) != 2 {
		t.Errorf("french %d english %d alerts %d ops %d emails %d", french, english, len(h.slack.Posts()), len(ops.Posts()), len(h.smtp.Messages()))
	}
}

func TestStudentsZoneAttributeWinsWhenValid(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i, attrs := range []string{`"timezone":"America/New_York"`, `"timezone":"Mars/Olympus_Mons"`, `"timezone":42`} {
		if code, resp := h.post(routed(i, "portal_uk_med", "Pharmacology", attrs)); code != http.StatusAccepted {
			t.Fatalf("POST = %d %s", code, resp)
		}
	}
	want := map[string]string{
		"student0@example.edu": "Monday, 14 December 2026, 04:00 EST", // the student's zone
		"student1@example.edu": "Monday, 14 December 2026, 09:00 GMT", // not a zone: the route's
		"student2@example.edu": "Monday, 14 December 2026, 09:00 GMT", // not text: the route's
	}
	for _, m := range h.smtp.WaitFor(t, 3, 10*time.Second) {
		e := relaytest.ParseEmail(t, m.Data)
		if !strings.Contains(e.Text, want[m.To[0]]) {
			t.Errorf("%s: text lacks %q:\n%s", m.To[0], want[m.To[0]], e.Text)
		}
	}
}

func TestExplainSaysWhyEachRouteMatchesOrNot(t *testing.T) {
	t.Parallel()
	routes := loadRoutes(t, `
routes:
  - name: law
    match: {portal: portal_fr_law, group: ["Droit*"]}
  - name: cohort
    match: {attributes: {cohort: "/^2026-[AB]$/"}}
`)
	cfg := config.Default()
	cfg.Routes = routes
	routing, err := newRouting(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := decodeBody(t, routed(1, "portal_fr_law", "Droit civil", `"cohort":"2026-B"`))
	route, lines := routing.Explain(reg)
	if route.Name != "cohort" || len(lines) != 2 {
		t.Fatalf("route %s, lines %q", route.Name, lines)
	}
	if !strings.Contains(lines[0], `law: no: group "Droit*" does not match "grp_1" or "Cohort"`) {
		t.Errorf("line 0: %s", lines[0])
	}
	if !strings.Contains(lines[1], `cohort: matches: attributes.cohort "/^2026-[AB]$/" matches "2026-B"`) {
		t.Errorf("line 1: %s", lines[1])
	}
	reg.User.CustomAttributes = nil
	if route, lines := routing.Explain(reg); route.Name != relay.DefaultRoute || !strings.Contains(lines[1], "no such attribute") {
		t.Errorf("without the attribute: %s %q", route.Name, lines)
	}
}
