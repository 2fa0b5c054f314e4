package config

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/templates"
)

// Route sends the registrations it matches somewhere other than the
// defaults: another language, zone, sender, template folder or Slack
// channel, or no email at all. Routes are tried in order; the first that
// matches wins; a registration no route matches gets the defaults.
type Route struct {
	Name  string `yaml:"name"`
	Match Match  `yaml:"match"`
	// Email false sends no email to the student; nil means send.
	Email *bool `yaml:"email"`
	// Templates is a folder whose files replace the defaults of the same
	// name for this route; files it lacks come from RELAY_TEMPLATES_DIR,
	// then from the defaults of the route's language.
	Templates string     `yaml:"templates"`
	Language  string     `yaml:"language"`
	TimeZone  string     `yaml:"timezone"`
	From      string     `yaml:"from"`
	ReplyTo   string     `yaml:"reply_to"`
	Slack     RouteSlack `yaml:"slack"`
	Teams     RouteTeams `yaml:"teams"`

	// line is where the route starts in the config file, for errors.
	line int
}

// Match is what a route matches; every condition given must hold. Each
// condition is one pattern or a list of them, any of which may match.
type Match struct {
	Portal   Patterns `yaml:"portal"`
	ExamID   Patterns `yaml:"exam_id"`
	ExamName Patterns `yaml:"exam_name"`
	// Group matches the user group's id or its name.
	Group Patterns `yaml:"group"`
	// Attributes match custom attributes by name.
	Attributes map[string]Patterns `yaml:"attributes"`
}

// RouteSlack is where a route's staff messages go. Empty fields keep the
// top-level slack settings.
type RouteSlack struct {
	// WebhookURL is another incoming webhook (it is a secret).
	WebhookURL string `yaml:"webhook_url"`
	// Channel is another channel for the bot token.
	Channel string `yaml:"channel"`
	Mode    string `yaml:"mode"`
}

// RouteTeams is where a route's staff messages go in Microsoft Teams.
// Empty fields keep the top-level teams settings.
type RouteTeams struct {
	// WebhookURL is another workflow's URL (it is a secret).
	WebhookURL string `yaml:"webhook_url"`
	Mode       string `yaml:"mode"`
}

// Patterns are what one condition accepts: one pattern or a list in the
// file. A pattern is a glob (* any text, ? one character), compared
// without regard to case, or a regular expression between slashes:
// /^Final (Exam|Test)$/.
type Patterns []relay.Pattern

func (ps *Patterns) UnmarshalYAML(n *yaml.Node) error {
	var texts []string
	switch n.Kind {
	case yaml.ScalarNode:
		texts = []string{n.Value}
	case yaml.SequenceNode:
		if err := n.Decode(&texts); err != nil {
			return err
		}
	default:
		return fmt.Errorf("line %d: want a pattern or a list of patterns", n.Line)
	}
	for _, text := range texts {
		p, err := relay.NewPattern(text)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*ps = append(*ps, p)
	}
	return nil
}

// Conditions are m as the domain checks them, in the order they are
// checked and shown: portal, exam, group, then attributes by name.
func (m Match) Conditions() relay.Match {
	var out relay.Match
	add := func(on string, ps Patterns) {
		if len(ps) > 0 {
			out = append(out, relay.Condition{On: on, Patterns: relay.Patterns(ps)})
		}
	}
	add(relay.OnPortal, m.Portal)
	add(relay.OnExamID, m.ExamID)
	add(relay.OnExamName, m.ExamName)
	add(relay.OnGroup, m.Group)
	for _, name := range slices.Sorted(maps.Keys(m.Attributes)) {
		add(relay.OnAttribute+name, m.Attributes[name])
	}
	return out
}

// EmailOn says whether the route emails the student.
func (r Route) EmailOn() bool { return r.Email == nil || *r.Email }

// validateRoutes checks each route with what the defaults leave to it.
func (c Config) validateRoutes() []error {
	var errs []error
	names := map[string]bool{}
	for i, r := range c.Routes {
		where := fmt.Sprintf("routes[%d]", i)
		if r.line > 0 {
			where = fmt.Sprintf("line %d: %s", r.line, where)
		}
		bad := func(key, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s (%s) %s: %s", where, r.Name, key, fmt.Sprintf(format, args...)))
		}
		switch {
		case r.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is required: relay route and the logs name the route by it", where))
		case names[r.Name]:
			bad("name", "another route has this name; names must differ")
		case r.Name == relay.DefaultRoute:
			bad("name", relay.DefaultRoute+" names the top-level settings; choose another name")
		}
		names[r.Name] = true
		if len(r.Match.Conditions()) == 0 {
			bad("match", "no condition: give portal, exam_id, exam_name, group or attributes (a route for everything is the top-level settings)")
		}
		if r.TimeZone != "" {
			if _, err := time.LoadLocation(r.TimeZone); err != nil {
				bad("timezone", "%q is not an IANA time zone such as Europe/Paris or America/New_York", r.TimeZone)
			}
		}
		if r.Language != "" {
			if _, err := templates.ParseLanguage(r.Language); err != nil {
				bad("language", "%v", err)
			}
		}
		if r.Templates != "" {
			if err := isDir(r.Templates); err != nil {
				bad("templates", "%v", err)
			}
		}
		if r.From != "" {
			if _, err := mailAddress(r.From); err != nil {
				bad("from", "%v", err)
			}
		}
		if r.ReplyTo != "" {
			if _, err := mailAddress(r.ReplyTo); err != nil {
				bad("reply_to", "%v", err)
			}
		}
		switch relay.StaffMode(r.Slack.Mode) {
		case "", relay.ModeDigest, relay.ModeEach, relay.ModeOff:
		default:
			bad("slack.mode", "%q, want digest, each or off", r.Slack.Mode)
		}
		if r.Slack.WebhookURL != "" {
			if _, err := relay.ParseWebURL(r.Slack.WebhookURL); err != nil {
				bad("slack.webhook_url", "%v", err)
			}
		}
		switch relay.StaffMode(r.Teams.Mode) {
		case "", relay.ModeDigest, relay.ModeEach, relay.ModeOff:
		default:
			bad("teams.mode", "%q, want digest, each or off", r.Teams.Mode)
		}
		if r.Teams.WebhookURL != "" {
			if _, err := relay.ParseWebURL(r.Teams.WebhookURL); err != nil {
				bad("teams.webhook_url", "%v", err)
			}
		}
		if r.Slack.Channel != "" && c.Slack.Token == "" {
			bad("slack.channel", "a channel needs the bot token (RELAY_SLACK_TOKEN); with incoming webhooks give slack.webhook_url instead")
		}
	}
	return errs
}

// routeLines finds where each route starts in the YAML document b.
func routeLines(b []byte) []int {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	top := doc.Content[0]
	var lines []int
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "routes" {
			for _, r := range top.Content[i+1].Content {
				lines = append(lines, r.Line)
			}
		}
	}
	return lines
}
