package templates

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// funcs are available in every template.
var funcs = map[string]any{
	// date: "Monday 7 December 2026, 09:00 GMT".
	"date": func(t time.Time) string { return t.Format("Monday 2 January 2006, 15:04 MST") },
	// day: "Monday 7 December 2026"; clock: "09:00 GMT".
	"day":   func(t time.Time) string { return t.Format("Monday 2 January 2006") },
	"clock": func(t time.Time) string { return t.Format("15:04 MST") },
	"join":  strings.Join,
	// duration: "1 hour", "2 days", "1 hour 30 minutes", to the minute.
	"duration": humanDuration,
	// attr reads a custom attribute, "" when absent, so a template can
	// use one that only some students have.
	"attr": func(s Student, name string) string {
		v, ok := s.Attributes[name]
		if !ok || v == nil {
			return ""
		}
		return fmt.Sprint(v)
	},
}

// slackFuncs are added for the Slack templates.
var slackFuncs = map[string]any{
	// link makes a Slack link to an http(s) URL, or just the label when
	// there is no such URL. The label is already escaped by slackSafe.
	"link": func(rawURL, label string) string {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
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

func humanDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	if d < time.Minute {
		return "less than a minute"
	}
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	days, hours, minutes := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var parts []string
	if days > 0 {
		parts = append(parts, plural(days, "day"))
	}
	if hours > 0 {
		parts = append(parts, plural(hours, "hour"))
	}
	if minutes > 0 && days == 0 {
		parts = append(parts, plural(minutes, "minute"))
	}
	return strings.Join(parts, " ")
}
