// Package relay is the behaviour: the webhook receiver, the worker that
// turns a registration into an email and a Slack message, and the senders.
package relay

import (
	"errors"
	"time"
)

// Kind says what should happen after a failure. The receiver and the
// worker both decide from it.
type Kind int

const (
	// KindInternal is anything unclassified: retried by the worker, a 5xx
	// with the detail logged by the receiver.
	KindInternal Kind = iota
	// KindInvalid is bad input: a 4xx, never retried.
	KindInvalid
	// KindTemporary may work later: retried with backoff.
	KindTemporary
	// KindRateLimited is retried after the time the other side asked for,
	// without spending an attempt.
	KindRateLimited
	// KindPermanent will never work as it is: archived with the reason.
	KindPermanent
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindTemporary:
		return "temporary"
	case KindRateLimited:
		return "rate_limited"
	case KindPermanent:
		return "permanent"
	default:
		return "internal"
	}
}

// Error is a failure with its Kind.
type Error struct {
	Kind       Kind
	RetryAfter time.Duration // for KindRateLimited
	Err        error
}

func (e *Error) Error() string { return e.Kind.String() + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func temporary(err error) error { return &Error{Kind: KindTemporary, Err: err} }
func permanent(err error) error { return &Error{Kind: KindPermanent, Err: err} }
func rateLimited(after time.Duration, err error) error {
	return &Error{Kind: KindRateLimited, RetryAfter: after, Err: err}
}

// KindOf is the Kind of the first *Error in err's chain, KindInternal if
// there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// retryAfterOf is how long a rate-limited err asks to wait.
func retryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) && e.Kind == KindRateLimited {
		return e.RetryAfter
	}
	return 0
}
