package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := Load("", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TimeZone != "UTC" || time.Duration(cfg.Retention) != 7*24*time.Hour || cfg.RedisURL != "" {
		t.Errorf("defaults %+v", cfg)
	}
}

func TestEnvironmentOverridesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.yaml")
	os.WriteFile(path, []byte("timezone: Europe/Paris\nretention: 3d\nsmtp:\n  pool_size: 2\nworker:\n  concurrency: 4\n"), 0o644)
	cfg, err := Load(path, env(map[string]string{"RELAY_WORKER_CONCURRENCY": "16", "RELAY_RETENTION": "36h"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TimeZone != "Europe/Paris" || cfg.SMTP.PoolSize != 2 || cfg.Worker.Concurrency != 16 || time.Duration(cfg.Retention) != 36*time.Hour {
		t.Errorf("loaded %+v", cfg)
	}
}

func TestLoadNamesWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	unknown := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknown, []byte("timezon: UTC\n"), 0o644)
	tests := []struct {
		name, path string
		env        map[string]string
		want       []string
	}{
		{"unknown key", unknown, nil, []string{unknown, "timezon"}},
		{"bad zone", "", map[string]string{"RELAY_TIMEZONE": "Europe/Pariss"}, []string{"RELAY_TIMEZONE", "Europe/Pariss"}},
		{"bad number", "", map[string]string{"RELAY_SMTP_POOL_SIZE": "four"}, []string{"RELAY_SMTP_POOL_SIZE"}},
		{"bad duration", "", map[string]string{"RELAY_RETENTION": "a week"}, []string{"RELAY_RETENTION", "7d"}},
		{"bad from", "", map[string]string{"RELAY_EMAIL_FROM": "exams office"}, []string{"RELAY_EMAIL_FROM"}},
		{"two slack modes", "", map[string]string{"RELAY_SLACK_WEBHOOK_URL": "https://hooks.slack.com/x", "RELAY_SLACK_TOKEN": "xoxb-1", "RELAY_SLACK_CHANNEL": "C1"}, []string{"choose one"}},
		{"token without channel", "", map[string]string{"RELAY_SLACK_TOKEN": "xoxb-1"}, []string{"RELAY_SLACK_CHANNEL"}},
		{"secret not echoed", "", map[string]string{"RELAY_SLACK_WEBHOOK_URL": "ftp://hooks.slack.com/services/SECRETPATH"}, []string{"RELAY_SLACK_WEBHOOK_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.path, env(tt.env))
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%v does not mention %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "SECRETPATH") {
				t.Errorf("error shows a secret: %v", err)
			}
		})
	}
}

func TestParseSMTPURL(t *testing.T) {
	tests := []struct {
		url  string
		want SMTPServer
	}{
		{"smtp://mailpit:1025?tls=none", SMTPServer{Host: "mailpit", Port: 1025, TLS: TLSNone}},
		{"smtp://user:p%40ss@smtp.example.org:587?tls=starttls", SMTPServer{Host: "smtp.example.org", Port: 587, Username: "user", Password: "p@ss", TLS: TLSStartTLS}},
		{"smtps://user:pw@smtp.example.org", SMTPServer{Host: "smtp.example.org", Port: 465, Username: "user", Password: "pw", TLS: TLSImplicit}},
		{"smtp://smtp.example.org?tls=tls", SMTPServer{Host: "smtp.example.org", Port: 465, TLS: TLSImplicit}},
		// Without tls=: credentials demand STARTTLS, none take it if offered.
		{"smtp://user:pw@smtp.example.org", SMTPServer{Host: "smtp.example.org", Port: 587, Username: "user", Password: "pw", TLS: TLSStartTLS}},
		{"smtp://localhost:2525", SMTPServer{Host: "localhost", Port: 2525, TLS: TLSOpportunistic}},
	}
	for _, tt := range tests {
		got, err := ParseSMTPURL(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("ParseSMTPURL(%q) = %+v, %v; want %+v", tt.url, got, err, tt.want)
		}
	}
	for _, bad := range []string{"http://host", "smtp://", "smtp://host?tls=yes", "smtp://host:99999", "smtp://host?port=1", "smtps://host?tls=none"} {
		if _, err := ParseSMTPURL(bad); err == nil {
			t.Errorf("ParseSMTPURL(%q) accepted", bad)
		}
	}
}

func TestSettingsRedactSecrets(t *testing.T) {
	cfg, err := Load("", env(map[string]string{
		"RELAY_REDIS_URL":         "redis://:redis-pw@redis:6379/0",
		"RELAY_SMTP_URL":          "smtp://u:smtp-pw@mail:587",
		"RELAY_WEBHOOK_PASSWORD":  "hook-pw",
		"RELAY_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/slack-pw",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var shown strings.Builder
	for _, s := range Settings {
		shown.WriteString(s.Env + "=" + s.Value(cfg) + "\n")
	}
	for _, secret := range []string{"redis-pw", "smtp-pw", "hook-pw", "slack-pw"} {
		if strings.Contains(shown.String(), secret) {
			t.Errorf("%s shown:\n%s", secret, shown.String())
		}
	}
	for _, kept := range []string{"redis:6379", "mail:587", "hooks.slack.com"} {
		if !strings.Contains(shown.String(), kept) {
			t.Errorf("%s hidden too:\n%s", kept, shown.String())
		}
	}
}

func TestExampleFileLoads(t *testing.T) {
	cfg, err := Load("relay.example.yaml", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TimeZone != "Europe/London" || cfg.Email.From != "Exams Office <exams@example.edu>" {
		t.Errorf("loaded %+v", cfg)
	}
}

// The README's settings table is for people; Settings is for the code.
// This keeps them from drifting apart.
func TestREADMEListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings {
		if !strings.Contains(string(readme), "`"+s.Env+"`") {
			t.Errorf("README.md does not list %s", s.Env)
		}
	}
}

func TestDurationsReadBackWhatTheyPrint(t *testing.T) {
	for _, d := range []time.Duration{7 * 24 * time.Hour, 4 * time.Hour, 90 * time.Minute, time.Minute, 90 * time.Second, 1500 * time.Millisecond} {
		s := Duration(d).String()
		back, err := parseDuration(s)
		if err != nil || back != d {
			t.Errorf("%v prints %q, which reads back as %v (%v)", d, s, back, err)
		}
	}
	if s := Duration(time.Hour).String(); s != "1h" {
		t.Errorf("1h prints %q", s)
	}
}

func TestRoutesLoadAndMatch(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, `
language: en
routes:
  - name: law-fr
    match:
      portal: portal_fr_law
      exam_name: ["Droit *", "/^Examen (final|partiel)$/"]
    language: fr
    timezone: Europe/Paris
    from: "Faculté de droit <droit@example.fr>"
    templates: `+dir+`
  - name: practice
    match:
      exam_name: "practice*"
      attributes: {cohort: "2026*"}
    email: false
    slack: {mode: digest, webhook_url: "https://hooks.slack.com/services/T/B/x"}
`)
	cfg, err := Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[0].Language != "fr" || cfg.Routes[1].EmailOn() || !cfg.Routes[0].EmailOn() {
		t.Fatalf("routes = %+v", cfg.Routes)
	}
	law := relay.Patterns(cfg.Routes[0].Match.ExamName)
	if _, ok := law.Match("droit CIVIL 2"); !ok {
		t.Error(`"Droit *" does not match "droit CIVIL 2"`)
	}
	if _, ok := law.Match("Examen final"); !ok {
		t.Error("the regular expression does not match")
	}
	if _, ok := law.Match("Examen finale"); ok {
		t.Error("the regular expression is not anchored as written")
	}
	if _, ok := relay.Patterns(cfg.Routes[1].Match.Attributes["cohort"]).Match("2026-A"); !ok {
		t.Error("attribute glob does not match")
	}
}

func TestRouteErrorsNameFileLineKeyAndWhatIsValid(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key": {`
routes:
  - name: a
    match: {portal: p, exam: x}
`, `line 4: unknown key "exam" (valid here: portal, exam_id, exam_name, group, attributes)`},
		"bad regex": {`
routes:
  - name: a
    match: {exam_name: "/(unclosed/"}
`, `line 4: "/(unclosed/" is not a valid regular expression`},
		"bad zone": {`
routes:
  - name: a
    match: {portal: p}
    timezone: Europe/Pariss
`, `line 3: routes[0] (a) timezone: "Europe/Pariss" is not an IANA time zone`},
		"missing templates": {`
routes:
  - name: a
    match: {portal: p}
    templates: /nonexistent/templates
`, `routes[0] (a) templates: "/nonexistent/templates": no such folder`},
		"bad language": {`
routes:
  - name: a
    match: {portal: p}
    language: klingon
`, `language: "klingon" is not a language the relay writes dates in (have de, en, es, fr, it, nl, pl, pt`},
		"no condition": {`
routes:
  - name: a
    email: false
`, `routes[0] (a) match: no condition`},
		"no name": {`
routes:
  - match: {portal: p}
`, `routes[0]: name is required`},
		"channel without token": {`
routes:
  - name: a
    match: {portal: p}
    slack: {channel: "#exams-ops"}
`, `slack.channel: a channel needs the bot token`},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, tc.yaml)
			_, err := Load(path, noEnv)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v\nwant the file and %q", err, tc.want)
			}
		})
	}
}

var noEnv = env(nil)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
