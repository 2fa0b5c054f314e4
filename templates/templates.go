// Package templates holds the default templates, embedded in the binary,
// the data they see and the functions they may call, and the loading of a
// school's override folder.
package templates

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"github.com/exam-relay/relay/relay"
)

// The English defaults are at the top; other languages in a folder each.
//
//go:embed *.tmpl fr/*.tmpl
var defaults embed.FS

// The template files, by the names a school's override uses.
const (
	ConfirmationSubject = "confirmation.subject.tmpl"
	ConfirmationText    = "confirmation.text.tmpl"
	ConfirmationHTML    = "confirmation.html.tmpl"
	StaffAlert          = "staff-alert.slack.tmpl"
	StaffDigest         = "staff-digest.slack.tmpl"
	StaffAlertTeams     = "staff-alert.teams.tmpl"
	StaffDigestTeams    = "staff-digest.teams.tmpl"
	ReminderSubject     = "reminder.subject.tmpl"
	ReminderText        = "reminder.text.tmpl"
	ReminderHTML        = "reminder.html.tmpl"
)

// Names lists every template file.
var Names = []string{ConfirmationSubject, ConfirmationText, ConfirmationHTML, StaffAlert, StaffDigest, StaffAlertTeams, StaffDigestTeams,
	ReminderSubject, ReminderText, ReminderHTML}

// Set is the parsed templates, ready to execute. It is parsed once and
// safe for concurrent use.
type Set struct {
	subject, text                 *texttemplate.Template
	slackAlert, slackDigest       *texttemplate.Template
	teamsAlert, teamsDigest       *texttemplate.Template
	html                          *htmltemplate.Template
	reminderSubject, reminderText *texttemplate.Template
	reminderHTML                  *htmltemplate.Template
	digestList                    int
	// Source says where each file came from, for `relay check`: a path,
	// or "default" and the language of the default.
	Source   map[string]string
	Language Language
}

// Set is the relay's Templates.
var _ relay.Templates = (*Set)(nil)

// Options say what a Set is made of.
type Options struct {
	// Dirs are override folders, the most specific first: each file comes
	// from the first folder that has it, else from the defaults.
	Dirs []string
	// Language writes the dates and picks the defaults: its own when the
	// relay ships them (en, fr), else English. Zero means English.
	Language Language
	// DigestList is how many students a staff digest names before "and N
	// more"; zero names none.
	DigestList int
	// Now is the clock of the relative function; nil means time.Now.
	Now func() time.Time
}

// Load parses the defaults, each replaced by the file of the same name in
// the first of o.Dirs that has one.
func Load(o Options) (*Set, error) {
	o.Language = o.Language.orEnglish()
	s := &Set{Source: map[string]string{}, Language: o.Language, digestList: o.DigestList}
	files := map[string][]byte{}
	for _, name := range Names {
		b, source, err := defaultFile(o.Language, name)
		if err != nil {
			return nil, err
		}
		files[name] = b
		s.Source[name] = source
	}
	// The least specific first, so that the more specific replace it.
	for i := len(o.Dirs) - 1; i >= 0; i-- {
		if o.Dirs[i] == "" {
			continue
		}
		if err := override(o.Dirs[i], files, s.Source); err != nil {
			return nil, err
		}
	}
	funcs := funcsFor(o.Language, o.Now)

	var errs []error
	parseText := func(name string, extra map[string]any) *texttemplate.Template {
		t, err := texttemplate.New(name).Option("missingkey=error").Funcs(funcs).Funcs(extra).Parse(string(files[name]))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Source[name], err))
		}
		return t
	}
	s.subject = parseText(ConfirmationSubject, nil)
	s.text = parseText(ConfirmationText, nil)
	s.slackAlert = parseText(StaffAlert, slackFuncs)
	s.slackDigest = parseText(StaffDigest, slackFuncs)
	s.teamsAlert = parseText(StaffAlertTeams, teamsFuncs)
	s.teamsDigest = parseText(StaffDigestTeams, teamsFuncs)
	s.reminderSubject = parseText(ReminderSubject, nil)
	s.reminderText = parseText(ReminderText, nil)
	parseHTML := func(name string) *htmltemplate.Template {
		t, err := htmltemplate.New(name).Option("missingkey=error").Funcs(funcs).Parse(string(files[name]))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Source[name], err))
		}
		return t
	}
	s.html = parseHTML(ConfirmationHTML)
	s.reminderHTML = parseHTML(ReminderHTML)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// defaultFile is the language's own default when the relay ships one,
// else the English.
func defaultFile(lang Language, name string) ([]byte, string, error) {
	if base := lang.Base(); base != "en" {
		if b, err := defaults.ReadFile(base + "/" + name); err == nil {
			return b, "default (" + base + ")", nil
		}
	}
	b, err := defaults.ReadFile(name)
	return b, "default (en)", err
}

// Untranslated lists the files that are English defaults in a Set of
// another language: the wording will be English around dates that are not.
func (s *Set) Untranslated() []string {
	if s.Language.Base() == "en" {
		return nil
	}
	var names []string
	for _, name := range Names {
		if s.Source[name] == "default (en)" {
			names = append(names, name)
		}
	}
	return names
}

func override(dir string, files map[string][]byte, source map[string]string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("templates folder: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".tmpl") {
			continue
		}
		if _, known := files[e.Name()]; !known {
			return fmt.Errorf("templates folder %s: %s is not a template the relay uses (known: %s)", dir, e.Name(), strings.Join(Names, ", "))
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("templates folder: %w", err)
		}
		files[e.Name()] = b
		source[e.Name()] = path
	}
	return nil
}

// Confirmation renders the student's email, with dates in zone.
func (s *Set) Confirmation(reg relay.Registration, zone *time.Location) (relay.Email, error) {
	return s.email(s.subject, s.text, s.html, newData(reg, zone))
}

// Reminder renders a reminder email as sent at now, with dates in zone.
func (s *Set) Reminder(rem relay.Reminder, zone *time.Location, now time.Time) (relay.Email, error) {
	return s.email(s.reminderSubject, s.reminderText, s.reminderHTML, newReminder(rem, zone, now))
}

// buffers are where emails are rendered: one grown to an email's size
// serves every email after it, where a new one grew through six sizes.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

type executor interface {
	Execute(w io.Writer, data any) error
}

func (s *Set) email(subject, text, html executor, data any) (relay.Email, error) {
	var e relay.Email
	b := buffers.Get().(*bytes.Buffer)
	defer func() {
		// As fmt does: a rare huge email does not stay in memory.
		if b.Cap() <= 64<<10 {
			buffers.Put(b)
		}
	}()
	b.Reset()
	if err := subject.Execute(b, data); err != nil {
		return e, s.execError(err)
	}
	// A subject is one line, whatever the template or the data hold.
	e.Subject = strings.Join(strings.Fields(b.String()), " ")
	b.Reset()
	if err := text.Execute(b, data); err != nil {
		return e, s.execError(err)
	}
	e.Text = b.String()
	b.Reset()
	if err := html.Execute(b, data); err != nil {
		return e, s.execError(err)
	}
	e.HTML = b.String()
	return e, nil
}

// execError names the file a failing template came from: the error already
// names the template and line, which is enough for a default, but a school
// needs the path of its own file.
func (s *Set) execError(err error) error {
	var execErr texttemplate.ExecError
	if errors.As(err, &execErr) {
		if src := s.Source[execErr.Name]; !strings.HasPrefix(src, "default") && src != "" {
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	return err
}

// Check executes every template against sample registrations, so a typo
// in a field name fails at start-up or in `relay check`, not at 2 a.m.
func (s *Set) Check() error {
	var errs []error
	seen := map[string]bool{}
	add := func(err error) {
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	for _, reg := range sampleRegistrations() {
		for _, zone := range sampleZones() {
			_, err := s.Confirmation(reg, zone)
			add(err)
			for _, channel := range []relay.Channel{relay.Slack, relay.Teams} {
				_, err = s.StaffAlert(channel, reg, zone)
				add(err)
			}
			for _, event := range []relay.Event{relay.ExamOpens, relay.ExamCloses} {
				_, err = s.Reminder(relay.Reminder{Registration: reg, Event: event, Before: 24 * time.Hour}, zone, now)
				add(err)
			}
		}
	}
	// Two names listed and one more, whatever the configured list size,
	// so that every part of the template runs.
	for _, channel := range []relay.Channel{relay.Slack, relay.Teams} {
		_, err := s.staffDigest(channel, newDigestData(sampleDigest(), time.UTC, 2))
		add(err)
	}
	add(s.checkCardsKeepPayloadPlain())
	return errors.Join(errs...)
}

// Export writes the default templates of lang into dir, for a school to
// edit and then use with RELAY_TEMPLATES_DIR. It never overwrites an
// edited file.
func Export(dir string, lang Language) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written []string
	for _, name := range Names {
		b, _, err := defaultFile(lang, name)
		if err != nil {
			return written, err
		}
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return written, fmt.Errorf("%s exists: not overwriting it", path)
		}
		if err != nil {
			return written, err
		}
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}
