package relay

import (
	"fmt"
	"regexp"
	"strings"
)

// Pattern is what one condition of a route accepts: a glob (* any text,
// ? one character), compared without regard to case, or a regular
// expression between slashes: /^Final (Exam|Test)$/.
type Pattern struct {
	Text string
	re   *regexp.Regexp
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

// Patterns are the alternatives of one condition: any may match.
type Patterns []Pattern

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

// What a condition can look at, by the names the config file uses.
const (
	OnPortal   = "portal"
	OnExamID   = "exam_id"
	OnExamName = "exam_name"
	// OnGroup looks at the user group's id and its name.
	OnGroup = "group"
	// OnAttribute prefixes the name of a custom attribute.
	OnAttribute = "attributes."
)

// A Condition is one thing a route asks of a registration: that one of
// Patterns matches the value On names.
type Condition struct {
	On       string
	Patterns Patterns
}

// Match is every condition a route asks; all must hold. No condition
// matches everything.
type Match []Condition

// Check says whether reg meets every condition, and why: the conditions
// that held, or the first that did not.
func (m Match) Check(reg Registration) (why string, ok bool) {
	var held []string
	for _, c := range m {
		values, ok := reg.valuesOn(c.On)
		if !ok {
			return fmt.Sprintf("%s: the student has no such attribute", c.On), false
		}
		p, ok := c.Patterns.Match(values...)
		if !ok {
			return fmt.Sprintf("%s %q does not match %s", c.On, c.Patterns.String(), quoteAll(values)), false
		}
		held = append(held, fmt.Sprintf("%s %q matches %q", c.On, p.Text, strings.Join(values, " / ")))
	}
	return strings.Join(held, "; "), true
}

// String is the conditions as the config gives them.
func (m Match) String() string {
	parts := make([]string, len(m))
	for i, c := range m {
		parts[i] = c.On + "=" + c.Patterns.String()
	}
	return strings.Join(parts, " ")
}

// valuesOn is what a condition on key sees of r; false for an attribute
// the student does not have.
func (r Registration) valuesOn(key string) ([]string, bool) {
	switch key {
	case OnPortal:
		return []string{r.Portal.ID}, true
	case OnExamID:
		return []string{r.Exam.ObjectID}, true
	case OnExamName:
		return []string{r.Exam.Name}, true
	case OnGroup:
		return []string{r.UserGroup.ObjectID, r.UserGroup.Name}, true
	}
	name, _ := strings.CutPrefix(key, OnAttribute)
	v, ok := r.User.CustomAttributes[name]
	if !ok || v == nil {
		return nil, false
	}
	return []string{fmt.Sprint(v)}, true
}

func quoteAll(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(quoted, " or ")
}
