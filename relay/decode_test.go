package relay

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

func TestDecodeRegistrationExamples(t *testing.T) {
	for _, name := range []string{"registration.json", "registration-dst.json", "registration-no-close.json"} {
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile("../examples/" + name)
			if err != nil {
				t.Fatal(err)
			}
			r, err := DecodeRegistration(body)
			if err != nil {
				t.Fatal(err)
			}
			if r.User.Email == "" || r.Exam.Schedule.OpenDate.IsZero() || r.Exam.URL == "" {
				t.Errorf("decoded %+v", r)
			}
		})
	}
}

func TestDecodeRegistrationIsLenient(t *testing.T) {
	body := `{"user":{"id":40917,"email":" a@example.org ","customAttributes":{"n":30,"list":[1,2]},"extra":true},
		"portal":{"id":7},"meta":{"timestamp":"not a date"},
		"exam":{"objectId":"e1","url":"javascript:alert(1)","name":"Line\r\nBreak","schedule":{"openDate":"2026-12-07T09:00:00.123+01:00","closeDate":""}},
		"userGroup":null,"somethingNew":{"deep":[1]}}`
	r, err := DecodeRegistration([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.User.ID != "40917" || r.Portal.ID != "7" {
		t.Errorf("numeric ids: user %q portal %q", r.User.ID, r.Portal.ID)
	}
	if r.User.Email != "a@example.org" {
		t.Errorf("email %q", r.User.Email)
	}
	if got := r.User.CustomAttributes["n"]; got != json.Number("30") {
		t.Errorf("custom attribute n = %#v", got)
	}
	if want := time.Date(2026, 12, 7, 8, 0, 0, 123e6, time.UTC); !r.Exam.Schedule.OpenDate.Equal(want) {
		t.Errorf("open %v, want %v", r.Exam.Schedule.OpenDate, want)
	}
	if r.Exam.Schedule.CloseDate != nil {
		t.Errorf("empty closeDate decoded as %v", r.Exam.Schedule.CloseDate)
	}
	if r.Exam.URL != "" {
		t.Errorf("unsafe link kept: %q", r.Exam.URL)
	}
	if r.Exam.Name != "Line  Break" {
		t.Errorf("name %q", r.Exam.Name)
	}
	if r.Meta.Timestamp != nil {
		t.Errorf("bad timestamp kept: %v", r.Meta.Timestamp)
	}
}

func TestCustomAttributesThatAreNoObjectAreDropped(t *testing.T) {
	for _, attrs := range []string{`"text"`, `[1,2]`, `12`, `null`} {
		body := `{"user":{"email":"a@example.org","customAttributes":` + attrs + `},"exam":{"schedule":{"openDate":"2026-12-07T09:00:00Z"}}}`
		r, err := DecodeRegistration([]byte(body))
		if err != nil || r.User.CustomAttributes != nil {
			t.Errorf("customAttributes %s: %v, %v; want accepted without them", attrs, r.User.CustomAttributes, err)
		}
	}
}

func TestDecodeRegistrationNamesTheField(t *testing.T) {
	ok := `"exam":{"schedule":{"openDate":"2026-12-07T09:00:00Z"}}`
	tests := []struct {
		name, body, field string
	}{
		{"empty", ``, "body"},
		{"not json", `hello`, "body"},
		{"array", `[1,2]`, "body"},
		{"truncated", `{"user":{"email":"a@example.org"`, "body"},
		{"two documents", `{"user":{"email":"a@example.org"},` + ok + `} {}`, "body"},
		{"no email", `{"user":{"name":"x"},` + ok + `}`, "user.email"},
		{"two addresses", `{"user":{"email":"a@example.org, b@example.org"},` + ok + `}`, "user.email"},
		{"display name", `{"user":{"email":"Eve <a@example.org>"},` + ok + `}`, "user.email"},
		{"header injection", `{"user":{"email":"a@example.org\r\nBcc: b@example.org"},` + ok + `}`, "user.email"},
		{"email is object", `{"user":{"email":{"x":1}},` + ok + `}`, "user.email"},
		{"user is string", `{"user":"a@example.org",` + ok + `}`, "user"},
		{"no open date", `{"user":{"email":"a@example.org"}}`, "exam.schedule.openDate"},
		{"bad open date", `{"user":{"email":"a@example.org"},"exam":{"schedule":{"openDate":"next tuesday"}}}`, "exam.schedule.openDate"},
		{"deep nesting", `{"user":{"email":"a@example.org","customAttributes":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `},` + ok + `}`, "body"},
		{"utf-16", "\xff\xfe{\x00}\x00", "body"},
		{"wrong type for exam", `{"user":{"email":"a@example.org"},"exam":[1]}`, "exam"},
		{"bad close date", `{"user":{"email":"a@example.org"},"exam":{"schedule":{"openDate":"2026-12-07T09:00:00Z","closeDate":"soon"}}}`, "exam.schedule.closeDate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRegistration([]byte(tt.body))
			p, ok := err.(Problems)
			if !ok {
				t.Fatalf("err = %v (%T), want Problems", err, err)
			}
			if _, ok := p[tt.field]; !ok {
				t.Errorf("problems %v do not name %s", p, tt.field)
			}
		})
	}
}

func TestRegistrationIDs(t *testing.T) {
	body, _ := os.ReadFile("../examples/registration.json")
	a, err := DecodeRegistration(body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DecodeRegistration(body)
	if a.ID() != b.ID() {
		t.Fatal("the same body made two ids")
	}
	moved := a
	moved.Exam.Schedule.OpenDate = a.Exam.Schedule.OpenDate.Add(time.Hour)
	if moved.ID() == a.ID() {
		t.Error("new dates kept the registration id: the student would not hear of the change")
	}
	if moved.SubjectID() != a.SubjectID() {
		t.Error("new dates changed the calendar UID")
	}
	// Same instant written with another offset is the same registration.
	sameInstant := a
	sameInstant.Exam.Schedule.OpenDate = a.Exam.Schedule.OpenDate.In(time.FixedZone("", 3600))
	if sameInstant.ID() != a.ID() {
		t.Error("the offset a date was written with changed the id")
	}
	other := a
	other.User.ID, other.User.Email = "", "someone.else@example.edu"
	a.User.ID = ""
	if other.ID() == a.ID() {
		t.Error("two students without user ids share an id")
	}
}

// TestHashIsStable pins ids made before: they are task ids, sent marks
// and history keys in Redis, so a change of Hash would forget every
// registration already seen and send it again.
func TestHashIsStable(t *testing.T) {
	for _, tt := range []struct {
		parts []string
		want  string
	}{
		{[]string{"portal_demo", "usr_5tR8wQ", "jonas.becker@example.edu", "exm_7Hq2Lm", "grp_chem_y2", "2026-12-14T09:00:00Z", "2026-12-14T11:30:00Z"}, "eabf069cbf3f21aeb2bb7b47e4144067"},
		{nil, "e3b0c44298fc1c149afbf4c8996fb924"},
		{[]string{strings.Repeat("x", 300), "y"}, "5ac167fe66950289bfb6fb5f91f67ad2"},
	} {
		if got := Hash(tt.parts...); got != tt.want {
			t.Errorf("Hash(%.40q) = %s, want %s", tt.parts, got, tt.want)
		}
	}
}

// TestRegistrationIDsAreStable pins the ids of the examples as they were
// made before, for the same reason as TestHashIsStable.
func TestRegistrationIDsAreStable(t *testing.T) {
	for _, tt := range []struct{ file, id, subject string }{
		{"registration.json", "eabf069cbf3f21aeb2bb7b47e4144067", "1088cd667bd55fb0dab9348e55865a5a"},
		{"registration-no-close.json", "67aea193f1c6cde72940eb9cf8bed6f7", "6994c2c51e822d1cc1c5c7f607da213e"},
		{"registration-dst.json", "e9cd1f372796ba69f3a54fc018cef8eb", "ec9190e882fd5563885ba1cf1677555d"},
	} {
		body, err := os.ReadFile("../examples/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeRegistration(body)
		if err != nil {
			t.Fatal(err)
		}
		if r.ID() != tt.id || r.SubjectID() != tt.subject {
			t.Errorf("%s: ID %s, SubjectID %s; want %s, %s", tt.file, r.ID(), r.SubjectID(), tt.id, tt.subject)
		}
	}
}

func TestDecodeRegistrationToleratesAByteOrderMark(t *testing.T) {
	body, _ := os.ReadFile("../examples/registration.json")
	if _, err := DecodeRegistration(append([]byte("\xef\xbb\xbf"), body...)); err != nil {
		t.Fatal(err)
	}
}

func TestFlexStringReadsEveryStringAsJSONDoes(t *testing.T) {
	for _, literal := range []string{`""`, `"plain"`, `"Inès Moreau"`, `"say \"hi\""`, `"tab\tand\u00e9"`, `"\ud83d\ude00 emoji"`, "\"bad \xff utf-8\"", `"back\\slash"`} {
		var want string
		if err := json.Unmarshal([]byte(literal), &want); err != nil {
			t.Fatalf("%s: %v", literal, err)
		}
		var got flexString
		if err := got.UnmarshalJSON([]byte(literal)); err != nil || string(got) != want {
			t.Errorf("%s: flexString %q, %v; encoding/json %q", literal, got, err, want)
		}
	}
}
