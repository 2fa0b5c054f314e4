package templates

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/exam-relay/relay/relay"
)

// funcsFor are the functions every template may call, writing in lang;
// now is the clock of relative (nil: time.Now). templates/README.md
// documents each.
func funcsFor(lang Language, now func() time.Time) map[string]any {
	if now == nil {
		now = time.Now
	}
	return map[string]any{
		"date":     lang.Date,
		"day":      lang.Day,
		"clock":    lang.Clock,
		"duration": lang.Duration,
		"relative": func(t time.Time) string { return lang.Relative(t, now()) },
		"join":     strings.Join,
		// attr reads a custom attribute, "" when absent, so a template can
		// use one that only some students have.
		"attr": func(s Student, name string) string {
			v, ok := s.Attributes[name]
			if !ok || v == nil {
				return ""
			}
			return fmt.Sprint(v)
		},
		"withQuery": withQuery,
	}
}

// withQuery adds key, value pairs to the query of an http(s) URL, such as
// tracking parameters for the exam link; any other URL comes back "" so a
// template's {{with}} drops the link.
func withQuery(rawURL string, pairs ...string) (string, error) {
	if len(pairs)%2 != 0 {
		return "", fmt.Errorf("withQuery: want key, value pairs, have %d values", len(pairs))
	}
	u, err := relay.ParseWebURL(rawURL)
	if err != nil {
		return "", nil
	}
	q := u.Query()
	for i := 0; i < len(pairs); i += 2 {
		q.Set(pairs[i], pairs[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// slackFuncs are added for the Slack templates.
var slackFuncs = map[string]any{
	// link makes a Slack link to an http(s) URL, or just the label when
	// there is no such URL. The label is already escaped by slackSafe.
	"link": func(rawURL, label string) string {
		u, err := relay.ParseWebURL(rawURL)
		if err != nil {
			return label
		}
		if label == "" {
			label = escape(u.Host)
		}
		// Inside <…|…> Slack wants & < > as entities and | ends the URL.
		href := strings.NewReplacer("&", "&amp;", "<", "%3C", ">", "%3E", "|", "%7C").Replace(u.String())
		return "<" + href + "|" + label + ">"
	},
}

// teamsFuncs are added for the Teams templates, which write JSON.
var teamsFuncs = map[string]any{
	// json writes a value as JSON: a string in quotes, escaped.
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	// webURL is an http(s) URL with a host, or "" for anything else, so
	// that a card's link opens only a web page.
	"webURL": func(rawURL string) string {
		u, err := relay.ParseWebURL(rawURL)
		if err != nil {
			return ""
		}
		return u.String()
	},
}
