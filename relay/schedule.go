package relay

import "time"

// Schedule is when an exam can be taken.
type Schedule struct {
	OpenDate time.Time `json:"openDate"`
	// CloseDate is nil for an exam that stays open indefinitely.
	CloseDate *time.Time `json:"closeDate,omitempty"`
}

// Previous is what the relay last told the student about the exam.
type Previous struct {
	Schedule Schedule `json:"schedule"`
}

// Equal reports whether both schedules name the same moments.
func (s Schedule) Equal(o Schedule) bool {
	if !s.OpenDate.Equal(o.OpenDate) || (s.CloseDate == nil) != (o.CloseDate == nil) {
		return false
	}
	return s.CloseDate == nil || s.CloseDate.Equal(*o.CloseDate)
}

// CalendarSequence is the SEQUENCE of a calendar event sent at t:
// seconds since 2026, which fit the 32 bits calendars expect until 2094.
// Calendars replace an event by its UID only when SEQUENCE grows, and the
// clock's seconds grow even if the relay has forgotten what it sent.
func CalendarSequence(t time.Time) int {
	return int(max(0, t.Sub(sequenceEpoch)/time.Second))
}

var sequenceEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// End is when the exam is over: its close date, or its open date when it
// has none.
func (s Schedule) End() time.Time {
	if s.CloseDate != nil && s.CloseDate.After(s.OpenDate) {
		return *s.CloseDate
	}
	return s.OpenDate
}

// Problem is what is odd about the dates, or "": the email still goes out
// with the dates as given, and the oddity is logged.
func (s Schedule) Problem() string {
	if s.CloseDate != nil && s.CloseDate.Before(s.OpenDate) {
		return "the exam closes before it opens; sending the dates as given"
	}
	return ""
}
