package templates

import (
	"strings"
	"time"

	"github.com/slack-go/slack/slackutilsx"

	"github.com/exam-relay/relay/relay"
)

// Data is what the email and staff-alert templates see. Times are already
// in the zone the student sees them in.
type Data struct {
	Student Student
	Exam    Exam
	Group   Group
	Portal  Portal
	// Zone is the IANA name of the zone the dates are shown in.
	Zone string
}

type Student struct {
	ID         string
	Name       string
	Email      string
	Attributes map[string]any
}

type Exam struct {
	ID   string
	Name string
	// URL is empty unless the payload's link was http or https.
	URL   string
	Opens time.Time
	// Closes is nil for an exam with no closing date.
	Closes *time.Time
	// Rescheduled is true when the student was told other dates before;
	// PreviousOpens and PreviousCloses are those dates.
	Rescheduled    bool
	PreviousOpens  time.Time
	PreviousCloses *time.Time
}

// Reminder is what the reminder templates see.
type Reminder struct {
	Data
	// Event is "open" or "close"; When is that moment, in the zone.
	Event string
	When  time.Time
	// Remaining is the time from sending to When.
	Remaining time.Duration
}

type Group struct {
	ID   string
	Name string
}

type Portal struct {
	ID string
}

// DigestData is what the staff digest template sees: one exam, many
// students.
type DigestData struct {
	Exam Exam
	// Groups are the names of the user groups the students came in with.
	Groups []string
	Count  int
	// Students are the first of them, up to a limit; More counts the rest.
	Students []Student
	More     int
	Zone     string
}

// newData shows r in loc.
func newData(r relay.Registration, loc *time.Location) Data {
	d := Data{
		Student: Student{ID: r.User.ID, Name: r.User.Name, Email: r.User.Email, Attributes: r.User.CustomAttributes},
		Exam: Exam{
			ID:    r.Exam.ObjectID,
			Name:  r.Exam.Name,
			URL:   r.Exam.URL,
			Opens: r.Exam.Schedule.OpenDate.In(loc),
		},
		Group:  Group{ID: r.UserGroup.ObjectID, Name: r.UserGroup.Name},
		Portal: Portal{ID: r.Portal.ID},
		Zone:   loc.String(),
	}
	d.Exam.Closes = inZone(r.Exam.Schedule.CloseDate, loc)
	if p := r.Previous; p != nil {
		d.Exam.Rescheduled = true
		d.Exam.PreviousOpens = p.Schedule.OpenDate.In(loc)
		d.Exam.PreviousCloses = inZone(p.Schedule.CloseDate, loc)
	}
	return d
}

// newReminder shows rem in loc as sent at now.
func newReminder(rem relay.Reminder, loc *time.Location, now time.Time) Reminder {
	when := rem.EventTime()
	return Reminder{Data: newData(rem.Registration, loc), Event: string(rem.Event), When: when.In(loc), Remaining: when.Sub(now)}
}

// newDigestData shows d in loc: the exam, every user group, how many, and
// the first list students (d is sorted).
func newDigestData(d relay.Digest, loc *time.Location, list int) DigestData {
	first := newData(d.Items[0].Registration, loc)
	v := DigestData{Exam: first.Exam, Count: len(d.Items), Zone: first.Zone}
	seen := map[string]bool{}
	for i, item := range d.Items {
		if g := item.Registration.UserGroup.Name; g != "" && !seen[g] {
			seen[g] = true
			v.Groups = append(v.Groups, g)
		}
		if i < list {
			v.Students = append(v.Students, newData(item.Registration, loc).Student)
		}
	}
	v.More = v.Count - len(v.Students)
	return v
}

func inZone(t *time.Time, loc *time.Location) *time.Time {
	if t == nil {
		return nil
	}
	in := t.In(loc)
	return &in
}

// slackSafe returns d with every text that came from the payload escaped
// for Slack's mrkdwn, so that a template cannot turn a student's name into
// a mention or a link, whatever the school writes in it.
func (d Data) slackSafe() Data { return d.mapText(escape) }

func (d DigestData) slackSafe() DigestData { return d.mapText(escape) }

// teamsSafe returns d with every text that came from the payload unable
// to call an Adaptive Card's date functions ({{DATE(…)}}), which Teams
// runs even in a TextRun. Markdown is kept out by the templates putting
// payload text in TextRuns only, which Check enforces.
func (d Data) teamsSafe() Data { return d.mapText(noCardFunctions) }

func (d DigestData) teamsSafe() DigestData { return d.mapText(noCardFunctions) }

// mapText is d with f applied to every text that came from the payload.
// The exam's URL is left alone: only the link functions put it in a
// message, and they check it.
func (d Data) mapText(f func(string) string) Data {
	d.Student = d.Student.mapText(f)
	d.Exam = d.Exam.mapText(f)
	d.Group = Group{ID: f(d.Group.ID), Name: f(d.Group.Name)}
	d.Portal = Portal{ID: f(d.Portal.ID)}
	return d
}

func (d DigestData) mapText(f func(string) string) DigestData {
	d.Exam = d.Exam.mapText(f)
	groups := make([]string, len(d.Groups))
	for i, g := range d.Groups {
		groups[i] = f(g)
	}
	d.Groups = groups
	students := make([]Student, len(d.Students))
	for i, s := range d.Students {
		students[i] = s.mapText(f)
	}
	d.Students = students
	return d
}

func (s Student) mapText(f func(string) string) Student {
	attrs := make(map[string]any, len(s.Attributes))
	for k, v := range s.Attributes {
		if str, ok := v.(string); ok {
			v = f(str)
		}
		attrs[k] = v
	}
	return Student{ID: f(s.ID), Name: f(s.Name), Email: f(s.Email), Attributes: attrs}
}

func (e Exam) mapText(f func(string) string) Exam {
	e.ID = f(e.ID)
	e.Name = f(e.Name)
	return e
}

// escape turns & < > into entities, Slack's own rule: no <!channel>, no
// <@U…>, no <url|label>. Bare URLs, emails and @here stay text because the
// Slack sender marks the text verbatim.
func escape(s string) string { return slackutilsx.EscapeMessage(s) }

// noCardFunctions parts every "{{" with a zero-width space, which shows as
// nothing.
func noCardFunctions(s string) string { return strings.ReplaceAll(s, "{{", "{\u200b{") }
