package templates

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/exam-relay/relay/tasks"
)

func TestDefaultsPassCheck(t *testing.T) {
	s, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestConfirmationShowsDatesInZoneWithAbbreviation(t *testing.T) {
	s := mustLoad(t, "")
	london, _ := time.LoadLocation("Europe/London")
	e, err := s.Confirmation(NewData(sampleRegistrations()[0], london))
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "You are registered for Year 2 Pharmacology Summative" {
		t.Errorf("subject = %q", e.Subject)
	}
	for _, want := range []string{"Opens:  Monday 7 December 2026, 09:00 GMT", "Closes: Monday 7 December 2026, 12:00 GMT", "https://med.example.edu/exams/exm_3Jd9xK"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, e.Text)
		}
	}
	if !strings.Contains(e.HTML, `<a href="https://med.example.edu/exams/exm_3Jd9xK"`) || !strings.Contains(e.HTML, "Monday 7 December 2026, 09:00 GMT") {
		t.Errorf("html lacks link or date:\n%s", e.HTML)
	}
}

func TestConfirmationAcrossDSTShowsEachEndInItsOwnOffset(t *testing.T) {
	body, err := os.ReadFile("../examples/registration-dst.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := tasks.DecodeRegistration(body)
	if err != nil {
		t.Fatal(err)
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	e, err := mustLoad(t, "").Confirmation(NewData(r, paris))
	if err != nil {
		t.Fatal(err)
	}
	// Europe leaves summer time on 25 October 2026.
	for _, want := range []string{"Saturday 24 October 2026, 18:00 CEST", "Monday 26 October 2026, 18:00 CET"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, e.Text)
		}
	}
}

func TestConfirmationWithoutCloseDateSaysSo(t *testing.T) {
	e, err := mustLoad(t, "").Confirmation(NewData(sampleRegistrations()[1], time.UTC))
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
	e, err := mustLoad(t, "").Confirmation(NewData(r, time.UTC))
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
	d := NewData(r, time.UTC)
	alert, err := s.StaffAlert(d)
	if err != nil {
		t.Fatal(err)
	}
	digest, err := s.StaffDigest(Digest{Exam: d.Exam, Count: 1, Students: []Student{d.Student}, Groups: []string{"<!everyone>"}})
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
	e, err := s.Confirmation(NewData(sampleRegistrations()[0], time.UTC))
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
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "confirmation.txt.tmpl") {
		t.Errorf("Load with an unknown file = %v", err)
	}
}

func TestParseErrorNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, StaffAlert, "{{if .Exam.Name}}")
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, StaffAlert)) {
		t.Errorf("Load = %v", err)
	}
}

func mustLoad(t *testing.T, dir string) *Set {
	t.Helper()
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestExportWritesDefaultsThatLoadBack(t *testing.T) {
	dir := t.TempDir()
	written, err := Export(dir)
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
	if _, err := Export(dir); err == nil {
		t.Error("Export overwrote an existing folder")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ConfirmationSubject)); string(b) != "edited" {
		t.Errorf("the edited file now holds %q", b)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		59*time.Minute + 59*time.Second: "1 hour",
		24 * time.Hour:                  "1 day",
		50 * time.Hour:                  "2 days 2 hours",
		90 * time.Minute:                "1 hour 30 minutes",
		2 * time.Minute:                 "2 minutes",
		10 * time.Second:                "less than a minute",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestReminderSaysWhatOpensWhenInTheStudentsZone(t *testing.T) {
	r := sampleRegistrations()[0]
	paris, _ := time.LoadLocation("Europe/Paris")
	sent := r.Exam.Schedule.OpenDate.Add(-time.Hour)
	e, err := mustLoad(t, "").Reminder(NewReminder(tasks.Reminder{Registration: r, Event: tasks.BeforeOpen, Before: time.Hour}, paris, sent))
	if err != nil {
		t.Fatal(err)
	}
	if e.Subject != "Reminder: Year 2 Pharmacology Summative opens in 1 hour" {
		t.Errorf("subject %q", e.Subject)
	}
	if !strings.Contains(e.Text, "opens in 1 hour, on Monday 7 December 2026, 10:00 CET") || !strings.Contains(e.HTML, "10:00 CET") {
		t.Errorf("text:\n%s", e.Text)
	}
}

func TestConfirmationSaysTheDatesChanged(t *testing.T) {
	e, err := mustLoad(t, "").Confirmation(NewData(sampleRegistrations()[2], time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.Text, "Its dates have changed: it used to open Monday 30 November 2026, 09:00 UTC") || !strings.Contains(e.HTML, "The dates have changed") {
		t.Errorf("text:\n%s", e.Text)
	}
}
