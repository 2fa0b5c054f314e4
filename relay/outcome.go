package relay

import (
	"errors"
	"net/http"
	"time"
)

// Outcome is what became of a webhook or of a delivery attempt. It is the
// metric label and the word in the logs; one table gives each its HTTP
// answer and what the queue does next.
type Outcome string

// What the receiver answers.
const (
	// Accepted: stored in Redis.
	Accepted Outcome = "accepted"
	// Spooled: stored in the local spool while Redis is away.
	Spooled Outcome = "spooled"
	// Duplicate: stored before; nothing new for the student.
	Duplicate Outcome = "duplicate"
	// Rejected: the body can never work; the answer names the field.
	Rejected Outcome = "rejected"
	// Unauthorized: missing or wrong credentials or signature.
	Unauthorized Outcome = "unauthorized"
	// Unavailable: neither Redis nor the spool could keep it.
	Unavailable Outcome = "unavailable"
)

// What a delivery attempt comes to.
const (
	// Sent: the mail server or staff channel took it.
	Sent Outcome = "sent"
	// AlreadySent: a re-run of a delivery that was made; nothing is sent.
	AlreadySent Outcome = "already_sent"
	// Outdated: about dates the student has since been told otherwise;
	// nothing is sent.
	Outdated Outcome = "outdated"
	// Retry: it may work later; retried with backoff, spending an attempt.
	Retry Outcome = "retry"
	// RateLimited: the other side asked to wait; retried after that
	// time, spending no attempt.
	RateLimited Outcome = "rate_limited"
	// Failed: it will never work as it is; archived with the reason for
	// an operator to re-run after a fix.
	Failed Outcome = "failed"
)

// Next is what the queue does with a task after an attempt.
type Next int

const (
	Done Next = iota
	// RetryLater backs off and spends an attempt.
	RetryLater
	// RetryAfter waits the time asked for and spends nothing.
	RetryAfter
	// Archive keeps the task with its reason and does not retry it.
	Archive
)

// String is the word a failure's text starts with.
func (n Next) String() string {
	switch n {
	case RetryLater:
		return "temporary"
	case RetryAfter:
		return "rate_limited"
	case Archive:
		return "permanent"
	default:
		return "done"
	}
}

var outcomes = map[Outcome]struct {
	status int // the receiver's answer; 0 for a delivery
	next   Next
}{
	Accepted:     {http.StatusAccepted, Done},
	Spooled:      {http.StatusAccepted, Done},
	Duplicate:    {http.StatusOK, Done},
	Rejected:     {http.StatusBadRequest, Archive},
	Unauthorized: {http.StatusUnauthorized, Archive},
	Unavailable:  {http.StatusServiceUnavailable, RetryLater},
	Sent:         {0, Done},
	AlreadySent:  {0, Done},
	Outdated:     {0, Done},
	Retry:        {0, RetryLater},
	RateLimited:  {0, RetryAfter},
	Failed:       {0, Archive},
}

// HTTPStatus is the receiver's answer for o.
func (o Outcome) HTTPStatus() int { return outcomes[o].status }

// Next is what the queue does after o.
func (o Outcome) Next() Next { return outcomes[o].next }

// Error is a failure with the outcome it comes to.
type Error struct {
	Outcome Outcome
	// RetryAfter is how long a RateLimited failure asks to wait.
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string { return e.Outcome.Next().String() + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Temporary is a failure that may go away: retried with backoff.
func Temporary(err error) error { return &Error{Outcome: Retry, Err: err} }

// Permanent is a failure that will not go away by waiting: archived.
func Permanent(err error) error { return &Error{Outcome: Failed, Err: err} }

// Limited is a failure because the other side asked to wait after: it is
// retried then, spending no attempt.
func Limited(after time.Duration, err error) error {
	return &Error{Outcome: RateLimited, RetryAfter: after, Err: err}
}

// OutcomeOf is what a failed attempt comes to: the outcome of the first
// *Error in err's chain. A failure nobody classified may go away, so it is
// retried.
func OutcomeOf(err error) Outcome {
	var e *Error
	if errors.As(err, &e) {
		return e.Outcome
	}
	return Retry
}

// RetryAfterOf is how long a rate-limited err asks to wait, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) && e.Outcome == RateLimited {
		return e.RetryAfter
	}
	return 0
}
