package relay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Problems maps a field of the webhook body ("user.email") to what is wrong
// with it. It is the error DecodeRegistration returns for input that cannot
// work, and the receiver's 400 answer lists it.
type Problems map[string]string

func (p Problems) Error() string {
	fields := make([]string, 0, len(p))
	for f := range p {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %s", f, p[f])
	}
	return b.String()
}

// wire is the body as Synap sends it, typed loosely: ids may be numbers,
// dates are text until checked, custom attributes may be any JSON.
type wire struct {
	User struct {
		ID    flexString `json:"id"`
		Name  flexString `json:"name"`
		Email flexString `json:"email"`
		// CustomAttributes is read in the same pass as the rest, with the
		// decoder's UseNumber; a second decoder just for them cost a sixth
		// of decoding a webhook.
		CustomAttributes any `json:"customAttributes"`
	} `json:"user"`
	Portal struct {
		ID flexString `json:"id"`
	} `json:"portal"`
	Meta struct {
		Timestamp flexString `json:"timestamp"`
	} `json:"meta"`
	Exam struct {
		ObjectID flexString `json:"objectId"`
		URL      flexString `json:"url"`
		Name     flexString `json:"name"`
		Schedule struct {
			OpenDate  flexString `json:"openDate"`
			CloseDate flexString `json:"closeDate"`
		} `json:"schedule"`
	} `json:"exam"`
	UserGroup struct {
		ObjectID flexString `json:"objectId"`
		Name     flexString `json:"name"`
	} `json:"userGroup"`
}

// DecodeRegistration reads a webhook body. Unknown fields are ignored; what
// cannot make a confirmation (no valid email address, no open date, not
// JSON) is a Problems error naming the field.
func DecodeRegistration(body []byte) (Registration, error) {
	// Some senders start UTF-8 with a byte order mark; JSON forbids it.
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	var w wire
	dec := json.NewDecoder(bytes.NewReader(body))
	// Numbers in custom attributes stay json.Number, so they print as
	// Synap sent them; the other fields are flexString, which UseNumber
	// does not touch.
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return Registration{}, decodeProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Registration{}, Problems{"body": "must hold one JSON object, found more after it"}
	}

	problems := Problems{}
	r := Registration{
		User: User{
			ID:    clean(w.User.ID),
			Name:  clean(w.User.Name),
			Email: strings.TrimSpace(string(w.User.Email)),
		},
		Portal: Portal{ID: clean(w.Portal.ID)},
		Exam: Exam{
			ObjectID: clean(w.Exam.ObjectID),
			Name:     clean(w.Exam.Name),
		},
		UserGroup: UserGroup{ObjectID: clean(w.UserGroup.ObjectID), Name: clean(w.UserGroup.Name)},
	}

	switch addr, err := mail.ParseAddress(r.User.Email); {
	case r.User.Email == "":
		problems["user.email"] = "is required"
	case strings.ContainsAny(r.User.Email, "\r\n"):
		problems["user.email"] = "must not contain a line break"
	case err != nil || addr.Address != r.User.Email || addr.Name != "":
		problems["user.email"] = "must be one email address such as student@example.edu"
	}

	if open, ok := parseDate(string(w.Exam.Schedule.OpenDate)); !ok {
		problems["exam.schedule.openDate"] = dateProblem(w.Exam.Schedule.OpenDate)
	} else {
		r.Exam.Schedule.OpenDate = open
	}
	if s := strings.TrimSpace(string(w.Exam.Schedule.CloseDate)); s != "" {
		if closes, ok := parseDate(s); ok {
			r.Exam.Schedule.CloseDate = &closes
		} else {
			problems["exam.schedule.closeDate"] = dateProblem(w.Exam.Schedule.CloseDate)
		}
	}
	// meta.timestamp is informational: a bad one is dropped, not refused.
	if ts, ok := parseDate(string(w.Meta.Timestamp)); ok {
		r.Meta.Timestamp = &ts
	}
	// A link that could not be opened safely from an email or Slack is
	// dropped, not refused: the rest of the registration is good.
	if u, err := ParseWebURL(strings.TrimSpace(string(w.Exam.URL))); err == nil {
		r.Exam.URL = u.String()
	}
	// Custom attributes are optional extras: anything but an object is
	// dropped, not refused.
	r.User.CustomAttributes, _ = w.User.CustomAttributes.(map[string]any)

	if len(problems) > 0 {
		return Registration{}, problems
	}
	return r, nil
}

func decodeProblem(err error) Problems {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return Problems{"body": "is empty, want a JSON object"}
	case errors.As(err, &syntax):
		return Problems{"body": fmt.Sprintf("is not valid JSON: %v (at byte %d)", syntax, syntax.Offset)}
	case errors.As(err, &typ) && typ.Field == "":
		return Problems{"body": fmt.Sprintf("must be a JSON object, not %s", typ.Value)}
	case errors.As(err, &typ):
		return Problems{typ.Field: fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type), typ.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Problems{"body": "is not valid JSON: it ends too early"}
	default:
		return Problems{"body": "is not valid JSON: " + err.Error()}
	}
}

var reflectString = reflect.TypeFor[string]()

func jsonKind(t reflect.Type) string {
	if t == reflectString || t == reflect.TypeFor[flexString]() {
		return "a string"
	}
	return "an object"
}

// dateLayouts are tried in order. Synap does not document its format; RFC
// 3339 is the likely one, and time.Parse accepts fractional seconds in it.
// A date without an offset is read as UTC.
var dateLayouts = []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05"}

func parseDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

func dateProblem(s flexString) string {
	if strings.TrimSpace(string(s)) == "" {
		return "is required"
	}
	return fmt.Sprintf("%q is not a date such as 2026-12-07T09:00:00Z", truncate(string(s), 40))
}

// clean drops control characters (a name never needs a line break) and
// surrounding space.
func clean(s flexString) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(s)))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// flexString accepts a JSON string, a number (ids sometimes arrive as
// numbers) or null.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0 || string(b) == "null":
		*f = ""
	case b[0] == '"':
		// Most strings have nothing to unescape: take them as they are,
		// which spares a JSON decoder per field (a fifth of the receiver's
		// CPU in a profile).
		if inner := b[1 : len(b)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			*f = flexString(inner)
			return nil
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case b[0] == '-' || (b[0] >= '0' && b[0] <= '9'):
		*f = flexString(b)
	case b[0] == 't' || b[0] == 'f':
		return &json.UnmarshalTypeError{Value: "boolean", Type: reflectString}
	case b[0] == '[':
		return &json.UnmarshalTypeError{Value: "array", Type: reflectString}
	default:
		return &json.UnmarshalTypeError{Value: "object", Type: reflectString}
	}
	return nil
}
