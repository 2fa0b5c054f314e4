package deploy

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// A selector is a series a PromQL expression reads: a metric name and
// its label matchers.
type selector struct {
	name     string
	matchers []matcher
}

type matcher struct {
	label, op, value string
}

func (s selector) String() string {
	var b strings.Builder
	b.WriteString(s.name)
	if len(s.matchers) > 0 {
		b.WriteByte('{')
		for i, m := range s.matchers {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s%s%q", m.label, m.op, m.value)
		}
		b.WriteByte('}')
	}
	return b.String()
}

// promqlKeywords are the words of PromQL that are not metric names when
// no parenthesis follows them: operators and modifiers.
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "atan2": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
	// Aggregations, which may take "by (…)" before their parenthesis.
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
}

// promqlLabelLists are the words followed by a list of label names.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// selectors finds the series selectors of a PromQL expression, as written
// in alert rules and Grafana panels (Grafana's $variables allowed). It is
// no full PromQL parser (that is Prometheus itself); it knows enough to
// tell metric names from function names, keywords, label lists, strings,
// numbers and durations, and errs on what it does not understand.
func selectors(expr string) ([]selector, error) {
	var out []selector
	i := 0
	skipSpace := func() {
		for i < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[i])) {
			i++
		}
	}
	// until returns the index just past the closing byte that matches the
	// opening one at i, skipping strings.
	until := func(closing byte) (int, error) {
		for j := i + 1; j < len(expr); j++ {
			switch expr[j] {
			case closing:
				return j + 1, nil
			case '"', '\'', '`':
				end, err := stringEnd(expr, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			}
		}
		return 0, fmt.Errorf("%q: no %q closes the %q at %d", expr, closing, expr[i], i)
	}
	for skipSpace(); i < len(expr); skipSpace() {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := stringEnd(expr, i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '#':
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '$': // a Grafana variable: $name or ${name}
			i++
			if i < len(expr) && expr[i] == '{' {
				end, err := until('}')
				if err != nil {
					return nil, err
				}
				i = end
			}
			for i < len(expr) && isNameByte(expr[i]) {
				i++
			}
		case c == '[': // a range or subquery: durations only
			end, err := until(']')
			if err != nil {
				return nil, err
			}
			i = end
		case c == '{':
			return nil, fmt.Errorf("%q: a selector without a metric name at %d", expr, i)
		case c >= '0' && c <= '9' || c == '.': // a number or a duration
			for i < len(expr) && (isNameByte(expr[i]) || expr[i] == '.' || expr[i] == '+' && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isNameStart(c):
			start := i
			for i < len(expr) && isNameByte(expr[i]) {
				i++
			}
			word := expr[start:i]
			skipSpace()
			next := byte(0)
			if i < len(expr) {
				next = expr[i]
			}
			switch {
			case promqlLabelLists[word]:
				if next == '(' {
					end, err := until(')')
					if err != nil {
						return nil, err
					}
					i = end
				}
			case promqlKeywords[word], next == '(':
				// An operator, or a function or aggregation: its
				// arguments are read next.
			default:
				s := selector{name: word}
				if next == '{' {
					end, err := until('}')
					if err != nil {
						return nil, err
					}
					if s.matchers, err = parseMatchers(expr[i+1 : end-1]); err != nil {
						return nil, fmt.Errorf("%q: %w", expr, err)
					}
					i = end
				}
				out = append(out, s)
			}
		default: // operators, commas, parentheses
			i++
		}
	}
	return out, nil
}

func isNameStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isNameByte(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

// stringEnd is the index just past the string literal that opens at i.
func stringEnd(s string, i int) (int, error) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("%q: the string at %d does not end", s, i)
}

// parseMatchers reads the inside of {…}: label op "value", comma-separated.
func parseMatchers(s string) ([]matcher, error) {
	var out []matcher
	for rest := strings.TrimSpace(s); rest != ""; {
		j := 0
		for j < len(rest) && isNameByte(rest[j]) {
			j++
		}
		label := rest[:j]
		rest = strings.TrimSpace(rest[j:])
		var op string
		for _, candidate := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(rest, candidate) {
				op = candidate
				break
			}
		}
		if label == "" || op == "" {
			return nil, fmt.Errorf("matcher %q: want label, an operator and a quoted value", rest)
		}
		rest = strings.TrimSpace(rest[len(op):])
		if rest == "" || !strings.ContainsRune(`"'`+"`", rune(rest[0])) {
			return nil, fmt.Errorf("matcher %s%s: the value is not quoted", label, op)
		}
		end, err := stringEnd(rest, 0)
		if err != nil {
			return nil, err
		}
		value := rest[1 : end-1]
		if rest[0] != '`' {
			value = strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\'`, `'`).Replace(value)
		}
		out = append(out, matcher{label: label, op: op, value: value})
		rest = strings.TrimSpace(rest[end:])
		rest = strings.TrimSpace(strings.TrimPrefix(rest, ","))
	}
	return out, nil
}

func TestSelectorsTellMetricNamesFromTheRestOfPromQL(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{`up`}},
		{`up{job="exam-relay"} == 0`, []string{`up{job="exam-relay"}`}},
		{`sum by (channel) (increase(relay_deliveries_total{job="exam-relay", outcome="failed"}[15m])) > 0`,
			[]string{`relay_deliveries_total{job="exam-relay", outcome="failed"}`}},
		{`sum(rate(a_total[5m])) by (queue) / on(instance) group_left(pod) b unless c offset 1h`,
			[]string{`a_total`, `b`, `c`}},
		{`histogram_quantile(0.99, sum by (le, channel) (rate(relay_send_duration_seconds_bucket{job="$job", namespace=~"$namespace"}[$__rate_interval])))`,
			[]string{`relay_send_duration_seconds_bucket{job="$job", namespace=~"$namespace"}`}},
		{`label_replace(x{a!~"b|c"}, "dst", "$1", "src", "(.*)") and on () count(present_over_time(y[7d])) > 1e3`,
			[]string{`x{a!~"b|c"}`, `y`}},
		{"max(z{q=\"a,b}\"}) # a comment with a word\n + 2", []string{`z{q="a,b}"}`}},
		{`sum(increase(w{s="x"}[${__range}]))`, []string{`w{s="x"}`}},
	} {
		got, err := selectors(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		var names []string
		for _, s := range got {
			names = append(names, s.String())
		}
		if !reflect.DeepEqual(names, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.expr, names, tc.want)
		}
	}
	for _, bad := range []string{`x{a="b"`, `x{a}`, `{__name__="x"}`, `x{a="b}`} {
		if got, err := selectors(bad); err == nil {
			t.Errorf("%s: %v and no error", bad, got)
		}
	}
}
