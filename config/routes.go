package config

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/exam-relay/relay/templates"
)

// DefaultRoute names the top-level settings, for registrations no route
// matches.
const DefaultRoute = "default"

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

// Patterns are what one condition accepts. A pattern is a glob (* any
// text, ? one character), compared without regard to case, or a regular
// expression between slashes: /^Final (Exam|Test)$/.
type Patterns []Pattern

type Pattern struct {
	Text string
	re   *regexp.Regexp
}

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
		p, err := NewPattern(text)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*ps = append(*ps, p)
	}
	return nil
}

// NewPattern compiles a glob or a /regular expression/.
func NewPattern(text string) (Pattern, error) {
	var expr string
	if inner, ok := strings.CutPrefix(text, "/"); ok && len(inner) > 0 && strings.HasSuffix(inner, "/") {
		expr = strings.TrimSuffix(inner, "/")
	} else {
		expr = globRegexp(text)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return Pattern{}, fmt.Errorf("%q is not a valid regular expression (%s); write a glob such as \"Practice *\" or a regular expression between slashes such as /^Practice/", text, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return Pattern{Text: text, re: re}, nil
}

// globRegexp anchors the glob and ignores case: people type exam names as
// they remember them.
func globRegexp(glob string) string {
	var b strings.Builder
	b.WriteString("(?is)^")
	for _, r := range glob {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return b.String()
}

func (p Pattern) Match(s string) bool { return p.re != nil && p.re.MatchString(s) }

// Match reports the first pattern that matches any of values.
func (ps Patterns) Match(values ...string) (Pattern, bool) {
	for _, p := range ps {
		for _, v := range values {
			if p.Match(v) {
				return p, true
			}
		}
	}
	return Pattern{}, false
}

func (ps Patterns) String() string {
	texts := make([]string, len(ps))
	for i, p := range ps {
		texts[i] = p.Text
	}
	return strings.Join(texts, ", ")
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
		case r.Name == DefaultRoute:
			bad("name", DefaultRoute+" names the top-level settings; choose another name")
		}
		names[r.Name] = true
		if r.Match.empty() {
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
		switch r.Slack.Mode {
		case "", SlackDigest, SlackEach, SlackOff:
		default:
			bad("slack.mode", "%q, want digest, each or off", r.Slack.Mode)
		}
		if r.Slack.WebhookURL != "" {
			if err := httpURL(r.Slack.WebhookURL); err != nil {
				bad("slack.webhook_url", "%v", err)
			}
		}
		if r.Slack.Channel != "" && c.Slack.Token == "" {
			bad("slack.channel", "a channel needs the bot token (RELAY_SLACK_TOKEN); with incoming webhooks give slack.webhook_url instead")
		}
	}
	return errs
}

func (m Match) empty() bool {
	return len(m.Portal) == 0 && len(m.ExamID) == 0 && len(m.ExamName) == 0 && len(m.Group) == 0 && len(m.Attributes) == 0
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
