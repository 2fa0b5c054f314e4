package relaytest

import (
	"net/http"
	"sync"
	"time"
)

// standIn is what the HTTP stand-ins (Slack, Teams) share: the lock that
// guards them, how many requests came, and the refusals queued for the
// next ones.
type standIn struct {
	mu       sync.Mutex
	attempts int
	faults   faultQueue
}

// Attempts is how many requests reached the stand-in, refused ones
// included.
func (s *standIn) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// RateLimit makes the next n requests get 429 with a Retry-After of
// retryAfter.
func (s *standIn) RateLimit(n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.add(n, fault{status: http.StatusTooManyRequests, retryAfter: retryAfter})
}

// FailWith makes the next n requests get status. Refusals from RateLimit
// and FailWith queue up in the order they were set.
func (s *standIn) FailWith(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.add(n, fault{status: status})
}

// fault is a refusal a stand-in gives instead of its answer.
type fault struct {
	status     int
	retryAfter time.Duration // only for 429
}

// faultQueue is the refusals a stand-in gives its next requests, first
// first. Its owner's lock guards it.
type faultQueue []fault

func (q *faultQueue) add(n int, f fault) {
	for range n {
		*q = append(*q, f)
	}
}

func (q *faultQueue) next() (fault, bool) {
	if len(*q) == 0 {
		return fault{}, false
	}
	f := (*q)[0]
	*q = (*q)[1:]
	return f, true
}
