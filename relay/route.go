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
	// Slack and Teams are where staff hear of the route's registrations;
	// either or both may be off.
	Slack Destination
	Teams Destination
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

// Channel is a kind of place staff are told, with messages of its own.
type Channel string

const (
	Slack Channel = "slack"
	Teams Channel = "teams"
)

// Destination is one place staff are told.
type Destination struct {
	Channel Channel
	// Name identifies it without its secrets (a webhook's URL is one): it
	// keys digest groups and rate limits.
	Name   string
	Mode   StaffMode
	Poster Poster
}

// Staff is where the route tells staff: its destinations that are not
// off.
func (r *Route) Staff() []Destination {
	var out []Destination
	for _, d := range []Destination{r.Slack, r.Teams} {
		if d.Mode != "" && d.Mode != ModeOff {
			out = append(out, d)
		}
	}
	return out
}

// Destination is the route's destination on channel.
func (r *Route) Destination(channel Channel) Destination {
	if channel == Teams {
		return r.Teams
	}
	return r.Slack
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
// Staff messages are written for a channel: Slack mrkdwn, or a Teams
// Adaptive Card.
type Templates interface {
	Confirmation(reg Registration, zone *time.Location) (Email, error)
	Reminder(rem Reminder, zone *time.Location, now time.Time) (Email, error)
	StaffAlert(channel Channel, reg Registration, zone *time.Location) (string, error)
	StaffDigest(channel Channel, d Digest, zone *time.Location) (string, error)
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

// StaffAlert is the staff message for one registration, on channel.
func (r *Route) StaffAlert(channel Channel, reg Registration) (string, error) {
	return r.Templates.StaffAlert(channel, reg, r.Zone(reg))
}

// StaffDigest is the staff message for a digest, on channel. Staff see
// the dates in the route's zone, not a student's.
func (r *Route) StaffDigest(channel Channel, d Digest) (string, error) {
	return r.Templates.StaffDigest(channel, d, r.Location)
}
