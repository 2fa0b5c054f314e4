package relay

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"
)

// Registration is Synap's "User Registered for Exam" webhook body, checked
// and normalised: dates parsed, ids as strings, the exam link kept only when
// it is http(s). It is the payload of every task a registration becomes,
// so its JSON names are stored in Redis and must not change.
type Registration struct {
	User      User      `json:"user"`
	Portal    Portal    `json:"portal"`
	Meta      Meta      `json:"meta"`
	Exam      Exam      `json:"exam"`
	UserGroup UserGroup `json:"userGroup"`
	// Previous is set by the worker when Synap sent this student and exam
	// before with other dates: the email then says the dates changed.
	Previous *Previous `json:"previous,omitempty"`
	// Sequence is set by the worker: the calendar event's SEQUENCE, higher
	// than any sent before for this student and exam. 0: not set.
	Sequence int `json:"sequence,omitempty"`
}

type User struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	// CustomAttributes holds any JSON; numbers stay json.Number so they
	// print as Synap sent them.
	CustomAttributes map[string]any `json:"customAttributes,omitempty"`
}

type Portal struct {
	ID string `json:"id"`
}

type Meta struct {
	Timestamp *time.Time `json:"timestamp,omitempty"`
}

type Exam struct {
	ObjectID string   `json:"objectId"`
	URL      string   `json:"url,omitempty"`
	Name     string   `json:"name"`
	Schedule Schedule `json:"schedule"`
}

type UserGroup struct {
	ObjectID string `json:"objectId"`
	Name     string `json:"name"`
}

// ID identifies a registration: portal, student, exam, user group and
// schedule. The same webhook twice has the same ID; new dates make a new
// one, because new dates are news for the student.
func (r Registration) ID() string {
	// Hash(identity, open date, close date or ""), with the dates appended
	// to the same buffer rather than formatted into strings of their own:
	// relay serve computes every webhook's id twice.
	b := r.appendIdentity(make([]byte, 0, 256))
	b = append(b, 0)
	b = r.Exam.Schedule.OpenDate.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, 0)
	if closes := r.Exam.Schedule.CloseDate; closes != nil {
		b = closes.UTC().AppendFormat(b, time.RFC3339Nano)
	}
	return hashJoined(b)
}

// SubjectID identifies who is registered for what, whatever the dates: a
// calendar event keeps it as its UID so a moved exam moves in the calendar.
func (r Registration) SubjectID() string {
	return hashJoined(r.appendIdentity(make([]byte, 0, 256)))
}

// appendIdentity appends portal, student, exam and user group to b, joined
// as Hash joins parts. The student is the id and the address, so that two
// students without a user id never share one.
func (r Registration) appendIdentity(b []byte) []byte {
	for i, part := range [...]string{r.Portal.ID, r.User.ID, strings.ToLower(r.User.Email), r.Exam.ObjectID, r.UserGroup.ObjectID} {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, part...)
	}
	return b
}

// Hash is what the relay's ids are made of: 32 hex digits of SHA-256 over
// the parts joined by NUL bytes.
func Hash(parts ...string) string {
	// Joined in a buffer that stays on the stack for ids of usual size.
	joined := make([]byte, 0, 256)
	for i, p := range parts {
		if i > 0 {
			joined = append(joined, 0)
		}
		joined = append(joined, p...)
	}
	return hashJoined(joined)
}

// hashJoined is Hash of parts already joined.
func hashJoined(joined []byte) string {
	sum := sha256.Sum256(joined)
	var digits [32]byte
	hex.Encode(digits[:], sum[:16])
	return string(digits[:])
}

// MaskEmail keeps enough of an address to tell a support ticket which
// student it was about, not enough to be personal data in a log.
func MaskEmail(addr string) string {
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" {
		return "***"
	}
	return local[:1] + "***@" + domain
}
