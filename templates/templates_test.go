package templates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
)

func TestDefaultsPassCheck(t *testing.T) {
	for _, tag := range Languages() {
		s, err := Load(Options{Language: mustLanguage(t, tag)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Check(); err != nil {
			t.Errorf("%s: %v", tag, err)
		}
	}
}

func TestConfirmationShowsDatesInZoneWithAbbreviation(t *testing.T) {
	s := mustLoad(t, "")
	london, _ := time.LoadLocation("Europe/London")
	e, err := s.Confirmation(sampleRegistrations()[0], london)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "You are registered for Year 2 Pharmacology Summative" {
		t.Errorf("subject = %q", e.Subject)
	}
	for _, want := range []string{"Opens:  Monday, 7 December 2026, 09:00 GMT", "Closes: Monday, 7 December 2026, 12:00 GMT", "https://med.example.edu/exams/exm_3Jd9xK"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, e.Text)
		}
	}
	if !strings.Contains(e.HTML, `<a href="https://med.example.edu/exams/exm_3Jd9xK"`) || !strings.Contains(e.HTML, "Monday, 7 December 2026, 09:00 GMT") {
		t.Errorf("html lacks link or date:\n%s", e.HTML)
	}
}

func TestConfirmationAcrossDSTShowsEachEndInItsOwnOffset(t *testing.T) {
	body, err := os.ReadFile("../examples/registration-dst.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.DecodeRegistration(body)
	if err != nil {
		t.Fatal(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	e, err := mustLoad(t, "").Confirmation(r, paris)
	if err != nil {
		t.Fatal(err)
	}
	// Europe leaves summer time on 25 October 2026.
	for _, want := range []string{"Saturday, 24 October 2026, 18:00 CEST", "Monday, 26 October 2026, 18:00 CET"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, e.Text)
		}
	}
}

func TestConfirmationWithoutCloseDateSaysSo(t *testing.T) {
	e, err := mustLoad(t, "").Confirmation(sampleRegistrations()[1], time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Text, "Closes: no closing date") || strings.Contains(e.Text, "0001") {
		t.Errorf("text:\n%s", e.Text)
	}
}

func TestHTMLEscapesPayloadAndDropsUnsafeLinks(t *testing.T) {
	r := sampleRegistrations()[0]
	r.User.Name = `<script>alert(1)</script>`
	r.Exam.URL = "javascript:alert(1)" // the decoder drops these; the template must too
	e, err := mustLoad(t, "").Confirmation(r, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.HTML, "<script>") || strings.Contains(e.HTML, "javascript:") {
		t.Errorf("html carries payload markup:\n%s", e.HTML)
	}
}

func TestSlackTemplatesEscapeMentionsAndLinks(t *testing.T) {
	s := mustLoad(t, "")
	r := sampleRegistrations()[0]
	r.User.Name = "<!channel> <@U123> <https://evil.example|click> & co"
	r.Exam.Name = "<!here>"
	alert, err := s.StaffAlert(relay.Slack, r, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	r.UserGroup.Name = "<!everyone>"
	digest, err := s.StaffDigest(relay.Slack, relay.Digest{Items: []relay.DigestItem{{Registration: r}}}, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{alert, digest} {
		for _, bad := range []string{"<!channel>", "<@U123>", "<https://evil.example|", "<!here>", "<!everyone>", " & co"} {
			if strings.Contains(msg, bad) {
				t.Errorf("message carries %q:\n%s", bad, msg)
			}
		}
		if !strings.Contains(msg, "<https://med.example.edu/exams/exm_3Jd9xK|&lt;!here&gt;>") {
			t.Errorf("message lacks the exam link:\n%s", msg)
		}
	}
}

func TestOverrideReplacesByNameAndNamesTheFileOnError(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, ConfirmationSubject, "Exam: {{.Exam.Name}}")
	s := mustLoad(t, dir)
	e, err := s.Confirmation(sampleRegistrations()[0], time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "Exam: Year 2 Pharmacology Summative" {
		t.Errorf("subject = %q", e.Subject)
	}
	if !strings.Contains(e.Text, "Opens:") {
		t.Errorf("text did not fall back to the default:\n%s", e.Text)
	}

	write(t, dir, ConfirmationText, "Hello {{.Student.Nmae}}")
	s = mustLoad(t, dir)
	err = s.Check()
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ConfirmationText)) || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("Check() = %v, want the file and line named", err)
	}

	write(t, dir, "confirmation.txt.tmpl", "typo in the name")
	if _, err := Load(Options{Dirs: []string{dir}}); err == nil || !strings.Contains(err.Error(), "confirmation.txt.tmpl") {
		t.Errorf("Load with an unknown file = %v", err)
	}
}

func TestParseErrorNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, StaffAlert, "{{if .Exam.Name}}")
	_, err := Load(Options{Dirs: []string{dir}})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, StaffAlert)) {
		t.Errorf("Load = %v", err)
	}
}

func mustLoad(t *testing.T, dir string) *Set {
	t.Helper()
	s, err := Load(Options{Dirs: []string{dir}, DigestList: 25})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustLanguage(t *testing.T, tag string) Language {
	t.Helper()
	l, err := ParseLanguage(tag)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestExportWritesDefaultsThatLoadBack(t *testing.T) {
	dir := t.TempDir()
	written, err := Export(dir, Language{})
	if err != nil || len(written) != len(Names) {
		t.Fatalf("Export = %v, %v", written, err)
	}
	s := mustLoad(t, dir)
	for _, name := range Names {
		if s.Source[name] != filepath.Join(dir, name) {
			t.Errorf("%s loaded from %s", name, s.Source[name])
		}
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
	write(t, dir, ConfirmationSubject, "edited")
	if _, err := Export(dir, Language{}); err == nil {
		t.Error("Export overwrote an existing folder")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ConfirmationSubject)); string(b) != "edited" {
		t.Errorf("the edited file now holds %q", b)
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		59*time.Minute + 59*time.Second: "1 hour",
		24 * time.Hour:                  "1 day",
		50 * time.Hour:                  "2 days 2 hours",
		90 * time.Minute:                "1 hour 30 minutes",
		2 * time.Minute:                 "2 minutes",
		10 * time.Second:                "less than a minute",
	} {
		if got := (Language{}).Duration(d); got != want {
			t.Errorf("Duration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestReminderSaysWhatOpensWhenInTheStudentsZone(t *testing.T) {
	r := sampleRegistrations()[0]
	paris, _ := time.LoadLocation("Europe/Paris")
	sent := r.Exam.Schedule.OpenDate.Add(-time.Hour)
	e, err := mustLoad(t, "").Reminder(relay.Reminder{Registration: r, Event: relay.ExamOpens, Before: time.Hour}, paris, sent)
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "Reminder: Year 2 Pharmacology Summative opens in 1 hour" {
		t.Errorf("subject %q", e.Subject)
	}
	if !strings.Contains(e.Text, "opens in 1 hour, on Monday, 7 December 2026, 10:00 CET") || !strings.Contains(e.HTML, "10:00 CET") {
		t.Errorf("text:\n%s", e.Text)
	}
}

func TestConfirmationSaysTheDatesChanged(t *testing.T) {
	e, err := mustLoad(t, "").Confirmation(sampleRegistrations()[2], time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Text, "Its dates have changed: it used to open Monday, 30 November 2026, 09:00 UTC") || !strings.Contains(e.HTML, "The dates have changed") {
		t.Errorf("text:\n%s", e.Text)
	}
}

func TestFrenchDefaultsWriteFrenchDatesInParisTime(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	s, err := Load(Options{Language: mustLanguage(t, "fr")})
	if err != nil {
		t.Fatal(err)
	}
	e, err := s.Confirmation(sampleRegistrations()[0], paris)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Ouverture : lundi 7 décembre 2026, 10:00 CET", "Fermeture : lundi 7 décembre 2026, 13:00 CET", "Bonjour Amara Okafor,"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, e.Text)
		}
	}
	if e.Subject != "Inscription confirmée : Year 2 Pharmacology Summative" || !strings.Contains(e.HTML, `<html lang="fr">`) {
		t.Errorf("subject %q, html:\n%s", e.Subject, e.HTML)
	}
	if got := s.Untranslated(); len(got) != 0 {
		t.Errorf("French set has English files: %v", got)
	}
	de, _ := Load(Options{Language: mustLanguage(t, "de")})
	if got := de.Untranslated(); len(got) != len(Names) {
		t.Errorf("German set: untranslated %v, want every file", got)
	}
}

func TestDatesInEachLanguage(t *testing.T) {
	opens := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	now := opens.Add(-10 * 24 * time.Hour)
	for tag, want := range map[string][2]string{
		"en":    {"Monday, 7 December 2026, 09:00 UTC", "in 10 days"},
		"en-US": {"Monday, December 7, 2026, 9:00 AM UTC", "in 10 days"},
		"fr":    {"lundi 7 décembre 2026, 09:00 UTC", "dans 10 jours"},
		"de":    {"Montag, 7. Dezember 2026, 09:00 UTC", "in 10 Tagen"},
		"es":    {"lunes, 7 de diciembre de 2026, 09:00 UTC", "en 10 días"},
		"it":    {"lunedì 7 dicembre 2026, 09:00 UTC", "tra 10 giorni"},
		"nl":    {"maandag 7 december 2026, 09:00 UTC", "over 10 dagen"},
		"pl":    {"Poniedziałek, 7 grudnia 2026, 09:00 UTC", "za 10 dni"},
		"pt":    {"Segunda-feira, 7 de Dezembro de 2026, 09:00 UTC", "em 10 dias"},
		"pt-BR": {"segunda-feira, 7 de dezembro de 2026, 09:00 UTC", "em 10 dias"},
	} {
		l := mustLanguage(t, tag)
		if got := l.Date(opens); got != want[0] {
			t.Errorf("%s: Date = %q, want %q", tag, got, want[0])
		}
		if got := l.Relative(opens, now); got != want[1] {
			t.Errorf("%s: Relative = %q, want %q", tag, got, want[1])
		}
	}
	pl := mustLanguage(t, "pl")
	for d, want := range map[time.Duration]string{time.Minute: "za 1 minutę", 3 * time.Minute: "za 3 minuty", 5 * time.Minute: "za 5 minut", 22 * time.Hour: "za 22 godziny", 12 * time.Hour: "za 12 godzin"} {
		if got := pl.Relative(now.Add(d), now); got != want {
			t.Errorf("pl: Relative(%v) = %q, want %q", d, got, want)
		}
	}
	en := mustLanguage(t, "en")
	for d, want := range map[time.Duration]string{
		-10 * 24 * time.Hour:            "10 days ago",
		17*24*time.Hour + 3*time.Hour:   "in 17 days",
		2*24*time.Hour + 18*time.Hour:   "in 3 days",
		3*time.Hour + 20*time.Minute:    "in 3 hours",
		45*time.Minute + 10*time.Second: "in 45 minutes",
		20 * time.Second:                "now",
	} {
		if got := en.Relative(now.Add(d), now); got != want {
			t.Errorf("en: Relative(%v) = %q, want %q", d, got, want)
		}
	}
	for _, bad := range []string{"xx", "fr-ZZ", ""} {
		if _, err := ParseLanguage(bad); err == nil {
			t.Errorf("ParseLanguage(%q) accepted", bad)
		}
	}
}

func TestWithQueryAddsParametersToWebLinksOnly(t *testing.T) {
	got, err := withQuery("https://exams.example.edu/x?a=1", "utm_source", "email")
	if err != nil || got != "https://exams.example.edu/x?a=1&utm_source=email" {
		t.Errorf("withQuery = %q, %v", got, err)
	}
	if got, _ := withQuery("javascript:alert(1)", "a", "b"); got != "" {
		t.Errorf("withQuery kept %q", got)
	}
	if _, err := withQuery("https://x.example", "odd"); err == nil {
		t.Error("withQuery took an odd number of values")
	}
}
