package relay

import (
	"slices"
	"strings"
	"time"
)

// A Digest is the registrations for one exam gathered into one staff
// message. Its JSON names are stored in Redis as a task payload.
type Digest struct {
	// Group is the queue's name for the gathering: one per destination
	// and exam.
	Group string       `json:"group"`
	Items []DigestItem `json:"items"`
}

// DigestItem is one registration waiting in its exam's digest.
type DigestItem struct {
	Registration Registration `json:"registration"`
	// Destination names where staff are told, as Destination.Name.
	Destination string `json:"destination,omitempty"`
	// ReceivedAt is when the relay took it, for the time-to-post metric.
	ReceivedAt time.Time `json:"receivedAt"`
}

// SortDigestItems orders items by student name, then address: the queue
// does not keep the order, and people read lists sorted.
func SortDigestItems(items []DigestItem) {
	slices.SortStableFunc(items, func(a, b DigestItem) int {
		x, y := a.Registration.User, b.Registration.User
		if c := strings.Compare(strings.ToLower(x.Name), strings.ToLower(y.Name)); c != 0 {
			return c
		}
		return strings.Compare(x.Email, y.Email)
	})
}

// MergeDigestItems adds later to earlier, once per registration, sorted:
// a message that is updated shows everyone told so far.
func MergeDigestItems(earlier, later []DigestItem) []DigestItem {
	seen := make(map[string]bool, len(earlier)+len(later))
	out := make([]DigestItem, 0, len(earlier)+len(later))
	for _, item := range slices.Concat(earlier, later) {
		if id := item.Registration.ID(); !seen[id] {
			seen[id] = true
			out = append(out, item)
		}
	}
	SortDigestItems(out)
	return out
}

// FirstReceived is when the digest's earliest registration arrived.
func (d Digest) FirstReceived() time.Time {
	var first time.Time
	for _, item := range d.Items {
		if first.IsZero() || item.ReceivedAt.Before(first) {
			first = item.ReceivedAt
		}
	}
	return first
}
