package relay

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func pattern(t *testing.T, texts ...string) Patterns {
	t.Helper()
	var ps Patterns
	for _, text := range texts {
		p, err := NewPattern(text)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

func TestPatternsAreGlobsWithoutCaseOrAnchoredExpressions(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{"Practice *", "practice QUIZ 1", true},
		{"Practice *", "Mock practice", false},
		{"Exam ?", "Exam 7", true},
		{"Exam ?", "Exam 17", false},
		{"a.b", "axb", false}, // a dot in a glob is a dot
		{"/^Mock (exam|test)/", "Mock test 3", true},
		{"/^Mock (exam|test)/", "mock test", false}, // an expression means what it says
		{"/final$/", "Semester final", true},
		{"*", "", true},
	}
	for _, tt := range tests {
		if _, got := pattern(t, tt.pattern).Match(tt.value); got != tt.want {
			t.Errorf("%q matches %q: %v, want %v", tt.pattern, tt.value, got, tt.want)
		}
	}
	if _, err := NewPattern("/(unclosed/"); err == nil || !strings.Contains(err.Error(), "not a valid regular expression") {
		t.Errorf("a broken expression: %v", err)
	}
}

func registrationWith(portal, exam, group string, attrs map[string]any) Registration {
	return Registration{
		User:      User{ID: "usr_1", Email: "a@example.edu", CustomAttributes: attrs},
		Portal:    Portal{ID: portal},
		Exam:      Exam{ObjectID: "exm_" + exam, Name: exam},
		UserGroup: UserGroup{ObjectID: "grp_1", Name: group},
	}
}

func TestRoutingTakesTheFirstRouteWhoseEveryConditionHolds(t *testing.T) {
	law := &Route{Name: "law", Match: Match{
		{On: OnPortal, Patterns: pattern(t, "portal_fr_law")},
		{On: OnGroup, Patterns: pattern(t, "Droit*")},
	}}
	cohort := &Route{Name: "cohort", Match: Match{{On: OnAttribute + "cohort", Patterns: pattern(t, "/^2026-[AB]$/")}}}
	practice := &Route{Name: "practice", Match: Match{{On: OnExamName, Patterns: pattern(t, "Practice *", "Mock *")}}}
	routing := &Routing{Default: &Route{Name: DefaultRoute}, Routes: []*Route{law, cohort, practice}}
	tests := []struct {
		name string
		reg  Registration
		want string
	}{
		{"every condition of law", registrationWith("portal_fr_law", "Civil", "Droit L1", nil), "law"},
		{"the group id matches too", registrationWith("portal_fr_law", "Civil", "grp_1", nil), "default"},
		{"one condition of law only", registrationWith("portal_fr_law", "Civil", "Médecine", nil), "default"},
		{"an attribute", registrationWith("p", "Civil", "", map[string]any{"cohort": "2026-B"}), "cohort"},
		{"a number attribute as text", registrationWith("p", "Civil", "", map[string]any{"cohort": json.Number("2026")}), "default"},
		{"the first that matches wins", registrationWith("p", "Practice 1", "", map[string]any{"cohort": "2026-A"}), "cohort"},
		{"any pattern of a list", registrationWith("p", "Mock 2", "", nil), "practice"},
		{"no such attribute", registrationWith("p", "Civil", "", map[string]any{"campus": "Dubai"}), "default"},
	}
	for _, tt := range tests {
		if got := routing.Match(tt.reg).Name; got != tt.want {
			t.Errorf("%s: route %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestExplainSaysWhyEachRouteDidOrDidNotMatch(t *testing.T) {
	law := &Route{Name: "law", Match: Match{{On: OnPortal, Patterns: pattern(t, "portal_fr_law")}, {On: OnGroup, Patterns: pattern(t, "Droit*")}}}
	cohort := &Route{Name: "cohort", Match: Match{{On: OnAttribute + "cohort", Patterns: pattern(t, "/^2026-[AB]$/")}}}
	routing := &Routing{Default: &Route{Name: DefaultRoute}, Routes: []*Route{law, cohort}}

	route, lines := routing.Explain(registrationWith("portal_fr_law", "Civil", "Cohort", map[string]any{"cohort": "2026-B"}))
	want := []string{
		`law: no: group "Droit*" does not match "grp_1" or "Cohort"`,
		`cohort: matches: attributes.cohort "/^2026-[AB]$/" matches "2026-B"`,
	}
	if route != cohort || strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("route %s, lines:\n%s\nwant:\n%s", route.Name, strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	route, lines = routing.Explain(registrationWith("p", "Civil", "", nil))
	if route != routing.Default || !strings.Contains(lines[1], "cohort: no: attributes.cohort: the student has no such attribute") ||
		!strings.Contains(lines[2], "no route matched") {
		t.Errorf("route %s, lines %q", route.Name, lines)
	}
	if s := law.Match.String(); s != "portal=portal_fr_law group=Droit*" {
		t.Errorf("law's match reads %q", s)
	}
}

func TestStudentsZoneWinsOnlyWhenItIsAValidZone(t *testing.T) {
	london, _ := time.LoadLocation("Europe/London")
	route := &Route{Location: london, ZoneAttribute: "timezone"}
	for value, want := range map[any]string{
		"America/New_York":  "America/New_York",
		"Mars/Olympus_Mons": "Europe/London",
		"Local":             "Europe/London", // the server's zone, not the student's
		"":                  "Europe/London",
		json.Number("42"):   "Europe/London",
	} {
		reg := registrationWith("p", "e", "g", map[string]any{"timezone": value})
		if got := route.Zone(reg).String(); got != want {
			t.Errorf("attribute %v: zone %s, want %s", value, got, want)
		}
	}
	route.ZoneAttribute = ""
	if got := route.Zone(registrationWith("p", "e", "g", map[string]any{"timezone": "Asia/Tokyo"})); got != london {
		t.Errorf("with no zone attribute configured: %s", got)
	}
}

func TestDestinationIsFoundByNameAcrossRoutes(t *testing.T) {
	ops := Destination{Name: "slack-ops", Mode: ModeDigest}
	routing := &Routing{Default: &Route{Name: DefaultRoute, Slack: Destination{Name: "console"}}, Routes: []*Route{{Name: "practice", Slack: ops}}}
	if d, ok := routing.Destination("slack-ops"); !ok || d != ops {
		t.Errorf("slack-ops: %+v %v", d, ok)
	}
	if _, ok := routing.Destination("slack-gone"); ok {
		t.Error("a destination no route has was found")
	}
	if r, ok := routing.Named(DefaultRoute); !ok || r != routing.Default {
		t.Error("the default route is not found by its name")
	}
}
