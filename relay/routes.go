package relay

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/tasks"
	"github.com/exam-relay/relay/templates"
)

// DefaultRoute names the top-level settings, for registrations no route
// matches.
const DefaultRoute = config.DefaultRoute

// Route is how the registrations it matches are told: resolved from the
// config, with what a config route leaves out taken from the top level.
type Route struct {
	Name      string
	Email     bool
	Templates *templates.Set
	Location  *time.Location
	Sender    Sender
	Slack     Slack
	SlackMode string
	// SlackDestination names Slack without its secrets: it keys digest
	// groups and the rate limit.
	SlackDestination string

	match config.Match
}

// Routing picks a Route for a registration. It is built whole from one
// config and never changed, so a reload swaps it for another at once.
type Routing struct {
	Default *Route
	Routes  []*Route
	// DigestList is how many students a digest names.
	DigestList int

	zoneAttribute string
	destinations  map[string]Slack
	zones         sync.Map // zone name → *time.Location
}

// SlackFor makes the client for an incoming webhook URL, or for a channel
// with the bot token when webhookURL is empty.
type SlackFor func(webhookURL, channel string) Slack

// NewRouting resolves every route of cfg: its templates parsed and
// checked, its zone loaded, its Slack client made.
func NewRouting(cfg config.Config, slackFor SlackFor) (*Routing, error) {
	r := &Routing{DigestList: cfg.Slack.Digest.List, zoneAttribute: cfg.TimeZoneAttribute, destinations: map[string]Slack{}}
	sets := map[string]*templates.Set{}
	var errs []error
	resolve := func(name string, c config.Route) *Route {
		lang, err := templates.ParseLanguage(cmp.Or(c.Language, cfg.Language))
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", name, err))
			return nil
		}
		loc, err := time.LoadLocation(cmp.Or(c.TimeZone, cfg.TimeZone))
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", name, err))
			return nil
		}
		opts := templates.Options{Dirs: []string{c.Templates, cfg.TemplatesDir}, Language: lang}
		key := strings.Join(opts.Dirs, "\x00") + "\x00" + lang.Tag
		set, ok := sets[key]
		if !ok {
			if set, err = templates.Load(opts); err == nil {
				err = set.Check()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("route %s (language %s): %w", name, lang.Tag, err))
				return nil
			}
			sets[key] = set
		}
		webhook, channel := cfg.Slack.WebhookURL, cfg.Slack.Channel
		if c.Slack.WebhookURL != "" || c.Slack.Channel != "" {
			webhook, channel = c.Slack.WebhookURL, c.Slack.Channel
		}
		destination := "console"
		if webhook != "" || channel != "" {
			// Not the URL: for an incoming webhook the URL is the secret.
			destination = "slack-" + tasks.Digest(webhook, channel)[:12]
		}
		if _, ok := r.destinations[destination]; !ok && slackFor != nil {
			r.destinations[destination] = slackFor(webhook, channel)
		}
		return &Route{
			Name:             name,
			Email:            c.EmailOn(),
			Templates:        set,
			Location:         loc,
			Sender:           Sender{From: cmp.Or(c.From, cfg.Email.From), ReplyTo: cmp.Or(c.ReplyTo, cfg.Email.ReplyTo)},
			Slack:            r.destinations[destination],
			SlackMode:        cmp.Or(c.Slack.Mode, cfg.Slack.Mode),
			SlackDestination: destination,
			match:            c.Match,
		}
	}
	r.Default = resolve(DefaultRoute, config.Route{})
	for _, c := range cfg.Routes {
		if route := resolve(c.Name, c); route != nil {
			r.Routes = append(r.Routes, route)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// MatchSummary is the route's conditions as the config gives them.
func (r *Route) MatchSummary() string {
	if r.Name == DefaultRoute {
		return "(anything no route matches)"
	}
	var parts []string
	add := func(key string, ps config.Patterns) {
		if len(ps) > 0 {
			parts = append(parts, key+"="+ps.String())
		}
	}
	add("portal", r.match.Portal)
	add("exam_id", r.match.ExamID)
	add("exam_name", r.match.ExamName)
	add("group", r.match.Group)
	for _, name := range slices.Sorted(maps.Keys(r.match.Attributes)) {
		add("attributes."+name, r.match.Attributes[name])
	}
	return strings.Join(parts, " ")
}

// Match is the first route that matches reg, or the default.
func (r *Routing) Match(reg tasks.Registration) *Route {
	for _, route := range r.Routes {
		if _, ok := matches(route.match, reg); ok {
			return route
		}
	}
	return r.Default
}

// Named is the route called name, for `relay render -route`.
func (r *Routing) Named(name string) (*Route, bool) {
	if name == DefaultRoute {
		return r.Default, true
	}
	for _, route := range r.Routes {
		if route.Name == name {
			return route, true
		}
	}
	return nil, false
}

// Explain says, route by route, why reg does or does not match, ending
// with the route it gets: what `relay route` prints.
func (r *Routing) Explain(reg tasks.Registration) (*Route, []string) {
	var lines []string
	for _, route := range r.Routes {
		why, ok := matches(route.match, reg)
		if ok {
			return route, append(lines, fmt.Sprintf("%s: matches: %s", route.Name, why))
		}
		lines = append(lines, fmt.Sprintf("%s: no: %s", route.Name, why))
	}
	return r.Default, append(lines, DefaultRoute+": no route matched, so the top-level settings apply")
}

// matches checks every condition of m, saying which held, or the first
// that did not.
func matches(m config.Match, reg tasks.Registration) (string, bool) {
	var held []string
	check := func(key string, ps config.Patterns, values ...string) bool {
		if len(ps) == 0 {
			return true
		}
		if p, ok := ps.Match(values...); ok {
			held = append(held, fmt.Sprintf("%s %q matches %q", key, p.Text, strings.Join(values, " / ")))
			return true
		}
		held = []string{fmt.Sprintf("%s %q does not match %s", key, ps.String(), quoteAll(values))}
		return false
	}
	if !check("portal", m.Portal, reg.Portal.ID) ||
		!check("exam_id", m.ExamID, reg.Exam.ObjectID) ||
		!check("exam_name", m.ExamName, reg.Exam.Name) ||
		!check("group", m.Group, reg.UserGroup.ObjectID, reg.UserGroup.Name) {
		return held[0], false
	}
	for _, name := range slices.Sorted(maps.Keys(m.Attributes)) {
		value, ok := reg.User.CustomAttributes[name]
		if !ok || value == nil {
			return fmt.Sprintf("attributes.%s: the student has no such attribute", name), false
		}
		if !check("attributes."+name, m.Attributes[name], fmt.Sprint(value)) {
			return held[0], false
		}
	}
	return strings.Join(held, "; "), true
}

func quoteAll(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(quoted, " or ")
}

// Location is the zone reg's dates are shown in: the student's own when
// their zone attribute names a valid IANA zone, else the route's.
func (r *Routing) Location(route *Route, reg tasks.Registration) *time.Location {
	if r.zoneAttribute == "" {
		return route.Location
	}
	name, ok := reg.User.CustomAttributes[r.zoneAttribute].(string)
	if !ok || name == "" {
		return route.Location
	}
	if loc, ok := r.zones.Load(name); ok {
		return loc.(*time.Location)
	}
	// LoadLocation reads the zone database each time: remember valid
	// zones, of which there are a few hundred. Not the invalid names:
	// they come from the payload and are endless.
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return route.Location
	}
	r.zones.Store(name, loc)
	return loc
}

// Data is what reg's templates see on route.
func (r *Routing) Data(route *Route, reg tasks.Registration) templates.Data {
	return templates.NewData(reg, r.Location(route, reg))
}

// Digest is what the digest template sees: the exam, every user group,
// how many, and the first DigestList students (the batch is sorted).
// Staff see the dates in the route's zone, not a student's.
func (r *Routing) Digest(route *Route, b tasks.DigestBatch) templates.Digest {
	first := templates.NewData(b.Items[0].Registration, route.Location)
	d := templates.Digest{Exam: first.Exam, Count: len(b.Items), Zone: first.Zone}
	seen := map[string]bool{}
	for i, item := range b.Items {
		if g := item.Registration.UserGroup.Name; g != "" && !seen[g] {
			seen[g] = true
			d.Groups = append(d.Groups, g)
		}
		if i < r.DigestList {
			d.Students = append(d.Students, templates.NewData(item.Registration, route.Location).Student)
		}
	}
	d.More = d.Count - len(d.Students)
	return d
}

// Destination is the Slack client of a destination name, for digests
// gathered before a reload.
func (r *Routing) Destination(name string) (Slack, bool) {
	s, ok := r.destinations[name]
	return s, ok
}

// UsesSlackMode says whether any route posts in mode.
func (r *Routing) UsesSlackMode(mode string) bool {
	if r.Default.SlackMode == mode {
		return true
	}
	for _, route := range r.Routes {
		if route.SlackMode == mode {
			return true
		}
	}
	return false
}

// All is the default route and then the config's, in order.
func (r *Routing) All() []*Route {
	return append([]*Route{r.Default}, r.Routes...)
}

// ScheduleProblem is what is odd about reg's dates, or "": it is still
// sent as the data says, and logged.
func ScheduleProblem(reg tasks.Registration) string {
	s := reg.Exam.Schedule
	if s.CloseDate != nil && s.CloseDate.Before(s.OpenDate) {
		return "the exam closes before it opens; sending the dates as given"
	}
	return ""
}
