package relay

import (
	"context"
	"sync"
	"time"
)

// DefaultRoute names the top-level settings, for registrations no route
// matches.
const DefaultRoute = "default"

// Route is how the registrations it matches are told: who the email comes
// from, in which language and zone, from which templates, and where staff
// hear of it.
type Route struct {
	Name  string
	Match Match
	// Email false means the student gets no email.
	Email  bool
	Sender Sender
	// Language is the templates' language tag, for people reading it.
	Language string
	// Location is the zone dates are shown in, unless the student's own
	// zone attribute names a valid one.
	Location *time.Location
	// ZoneAttribute names the custom attribute that holds a student's own
	// zone; empty: none.
	ZoneAttribute string
	Templates     Templates
	Slack         Destination
}

// Sender is who student emails come from.
type Sender struct {
	From    string
	ReplyTo string
}

// StaffMode is how a destination hears of registrations.
type StaffMode string

const (
	// ModeDigest posts one message per exam per burst.
	ModeDigest StaffMode = "digest"
	// ModeEach posts one message per registration.
	ModeEach StaffMode = "each"
	// ModeOff posts nothing.
	ModeOff StaffMode = "off"
)

// Destination is one place staff are told.
type Destination struct {
	// Name identifies it without its secrets (a webhook's URL is one): it
	// keys digest groups and rate limits.
	Name   string
	Mode   StaffMode
	Poster Poster
}

// Poster posts a staff message the templates wrote.
type Poster interface {
	Post(ctx context.Context, text string) error
}

// Email is a student's email as the templates write it.
type Email struct {
	Subject string
	Text    string
	HTML    string
}

// Templates write a route's messages in its language, with dates in zone.
type Templates interface {
	Confirmation(reg Registration, zone *time.Location) (Email, error)
	Reminder(rem Reminder, zone *time.Location, now time.Time) (Email, error)
	StaffAlert(reg Registration, zone *time.Location) (string, error)
	StaffDigest(d Digest, zone *time.Location) (string, error)
}

// Zone is the zone reg's dates are shown to the student in: their own when
// their zone attribute names a valid IANA zone, else the route's.
func (r *Route) Zone(reg Registration) *time.Location {
	if r.ZoneAttribute == "" {
		return r.Location
	}
	name, ok := reg.User.CustomAttributes[r.ZoneAttribute].(string)
	if !ok || name == "" || name == "Local" {
		return r.Location
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return r.Location
	}
	zones.Store(name, loc)
	return loc
}

// zones caches valid zones by name: LoadLocation reads the zone database
// each time, and there are a few hundred zones. Invalid names are not
// kept: they come from the payload and are endless.
var zones sync.Map

// Confirmation is the student's confirmation email.
func (r *Route) Confirmation(reg Registration) (Email, error) {
	return r.Templates.Confirmation(reg, r.Zone(reg))
}

// Reminder is a reminder email, as sent at now.
func (r *Route) Reminder(rem Reminder, now time.Time) (Email, error) {
	return r.Templates.Reminder(rem, r.Zone(rem.Registration), now)
}

// StaffAlert is the staff message for one registration.
func (r *Route) StaffAlert(reg Registration) (string, error) {
	return r.Templates.StaffAlert(reg, r.Zone(reg))
}

// StaffDigest is the staff message for a digest. Staff see the dates in
// the route's zone, not a student's.
func (r *Route) StaffDigest(d Digest) (string, error) {
	return r.Templates.StaffDigest(d, r.Location)
}
