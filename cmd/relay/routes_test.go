package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay/relaytest"
)

// relayOutput runs a relay command in process and returns what it printed.
func relayOutput(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"relay"}, args...), func(k string) string { return env[k] }, nil, &out, io.Discard)
	return out.String(), err
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRenderShowsEachEndOfADSTWindowInItsOwnOffset(t *testing.T) {
	html := filepath.Join(t.TempDir(), "email.html")
	out, err := relayOutput(t, map[string]string{"RELAY_TIMEZONE": "Europe/Paris"}, "render", "-payload", "../../examples/registration-dst.json", "-html", html)
	if err != nil {
		t.Fatal(err)
	}
	// Europe leaves summer time on 25 October 2026, inside the window.
	for _, want := range []string{"Opens:  Saturday, 24 October 2026, 18:00 CEST", "Closes: Monday, 26 October 2026, 18:00 CET", "--- Slack, digest"} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
	if b, _ := os.ReadFile(html); !bytes.Contains(b, []byte("18:00 CEST")) {
		t.Errorf("HTML file:\n%s", b)
	}

	out, err = relayOutput(t, map[string]string{"RELAY_TIMEZONE": "Asia/Tokyo", "RELAY_LANGUAGE": "fr"}, "render", "-payload", "../../examples/registration-no-close.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Fermeture : pas de date de fermeture") || !strings.Contains(out, " JST") || strings.Contains(out, "0001") {
		t.Errorf("render without a close date:\n%s", out)
	}
}

func TestRenderWarnsWhenAnExamClosesBeforeItOpens(t *testing.T) {
	payload := filepath.Join(t.TempDir(), "backwards.json")
	writeFile(t, payload, `{"user":{"email":"a@example.edu"},"exam":{"name":"Backwards","schedule":{"openDate":"2026-12-14T09:00:00Z","closeDate":"2026-12-13T09:00:00Z"}}}`)
	out, err := relayOutput(t, nil, "render", "-payload", payload)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Warning:   the exam closes before it opens") || !strings.Contains(out, "Closes: Sunday, 13 December 2026, 09:00 UTC") {
		t.Errorf("render:\n%s", out)
	}
}

func TestExportedTemplatesEditedAndPickedUpThroughTemplatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "templates")
	if _, err := relayOutput(t, nil, "templates", "export", dir); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "confirmation.subject.tmpl"), "Booked: {{.Exam.Name}} ({{relative .Exam.Opens}})\n")
	// A file the school deletes falls back to the default.
	if err := os.Remove(filepath.Join(dir, "confirmation.text.tmpl")); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"RELAY_TEMPLATES_DIR": dir}
	out, err := relayOutput(t, env, "render", "-payload", "../../examples/registration.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Subject:   Booked: Organic Chemistry II — Final (") || !strings.Contains(out, "You are registered for Organic Chemistry II — Final.") {
		t.Errorf("render with the edited folder:\n%s", out)
	}
	out, err = relayOutput(t, env, "check")
	if err != nil || !strings.Contains(out, dir+" (9), default (en) (1)") {
		t.Errorf("check = %v:\n%s", err, out)
	}
}

const routesYAML = `
timezone: Europe/London
routes:
  - name: law-fr
    match:
      portal: portal_fr_droit
    language: fr
    timezone: Europe/Paris
    from: "Faculté de droit <droit@example.fr>"
  - name: practice
    match:
      exam_name: "*Practice*"
    email: false
    slack: {mode: digest, webhook_url: "https://hooks.slack.example/ops"}
`

func TestRoutesSendEachPayloadToItsTemplateLanguageAndSlack(t *testing.T) {
	config := filepath.Join(t.TempDir(), "relay.yaml")
	writeFile(t, config, routesYAML)

	out, err := relayOutput(t, nil, "route", "-config", config, "-payload", "../../examples/registration-no-close.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`law-fr: no: portal "portal_fr_droit" does not match "portal_demo"`,
		`practice: matches: exam_name "*Practice*" matches "Academic Integrity Practice Quiz"`,
		"→ practice: email off, language en, zone Europe/London",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("route lacks %q:\n%s", want, out)
		}
	}

	out, err = relayOutput(t, nil, "render", "-config", config, "-payload", "../../examples/registration-dst.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Route:     law-fr (language fr, zone Europe/Paris)", "From:      Faculté de droit <droit@example.fr>", "Ouverture : samedi 24 octobre 2026, 18:00 CEST", "*1 étudiant(e) inscrit(e)*"} {
		if !strings.Contains(out, want) {
			t.Errorf("render lacks %q:\n%s", want, out)
		}
	}
	// Forcing a route shows another's wording for the same payload.
	out, err = relayOutput(t, nil, "render", "-config", config, "-route", "default", "-payload", "../../examples/registration-dst.json")
	if err != nil || !strings.Contains(out, "Subject:   You are registered for") {
		t.Errorf("render -route default = %v:\n%s", err, out)
	}
	if _, err := relayOutput(t, nil, "render", "-config", config, "-route", "nope", "-payload", "../../examples/registration-dst.json"); err == nil || !strings.Contains(err.Error(), "have default, law-fr, practice") {
		t.Errorf("render -route nope = %v", err)
	}
}

func TestCheckFailsOnABrokenRouteNamingFileLineAndKey(t *testing.T) {
	config := filepath.Join(t.TempDir(), "relay.yaml")
	writeFile(t, config, strings.Replace(routesYAML, "timezone: Europe/Paris", "timezone: Europe/Pariss", 1))
	_, err := relayOutput(t, nil, "check", "-config", config)
	if err == nil || !strings.Contains(err.Error(), config) || !strings.Contains(err.Error(), `line 4: routes[0] (law-fr) timezone: "Europe/Pariss"`) {
		t.Errorf("check = %v", err)
	}
}

func TestSIGHUPReloadsRoutesAndKeepsThemWhenTheNewConfigFails(t *testing.T) {
	f := newFixture(t, relaytest.StartRedis(t))
	config := filepath.Join(t.TempDir(), "relay.yaml")
	writeFile(t, config, "email:\n  from: First <first@example.edu>\n")
	worker := startProcess(t, f.with("RELAY_CONFIG", config), "work")
	fromOf := func(i int) string {
		t.Helper()
		enqueueAll(t, f.redis, i, i+1)
		for _, m := range f.smtp.WaitFor(t, i+1, 20*time.Second) {
			if m.To[0] == address(i) {
				return m.From
			}
		}
		t.Fatalf("no email for %s", address(i))
		return ""
	}
	hangUp := func(logLine string, times int) {
		t.Helper()
		worker.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if b, _ := os.ReadFile(worker.log); strings.Count(string(b), logLine) >= times {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no %q in the log after SIGHUP", logLine)
	}

	if from := fromOf(0); from != "first@example.edu" {
		t.Errorf("before reload: from %s", from)
	}
	writeFile(t, config, "email:\n  from: Second <second@example.edu>\n")
	hangUp("reloaded routes and templates", 1)
	if from := fromOf(1); from != "second@example.edu" {
		t.Errorf("after reload: from %s", from)
	}
	writeFile(t, config, "email:\n  from: Third <third@example.edu>\ntimezone: Mars/Olympus\n")
	hangUp("reload failed; still running on the previous config", 1)
	if from := fromOf(2); from != "second@example.edu" {
		t.Errorf("after a failed reload: from %s, want the previous config's", from)
	}
	select {
	case <-worker.done:
		t.Fatal("the worker exited on SIGHUP")
	default:
	}
}
