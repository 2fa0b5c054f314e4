package relay

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestEveryOutcomeHasItsAnswerAndNextStep(t *testing.T) {
	tests := []struct {
		outcome Outcome
		status  int
		next    Next
	}{
		{Accepted, http.StatusAccepted, Done},
		{Spooled, http.StatusAccepted, Done},
		{Duplicate, http.StatusOK, Done},
		{Rejected, http.StatusBadRequest, Archive},
		{Unauthorized, http.StatusUnauthorized, Archive},
		{Unavailable, http.StatusServiceUnavailable, RetryLater},
		{Sent, 0, Done},
		{AlreadySent, 0, Done},
		{Outdated, 0, Done},
		{Retry, 0, RetryLater},
		{RateLimited, 0, RetryAfter},
		{Failed, 0, Archive},
	}
	if len(tests) != len(outcomes) {
		t.Errorf("the table has %d outcomes, this test %d", len(outcomes), len(tests))
	}
	for _, tt := range tests {
		if got := tt.outcome.HTTPStatus(); got != tt.status {
			t.Errorf("%s answers %d, want %d", tt.outcome, got, tt.status)
		}
		if got := tt.outcome.Next(); got != tt.next {
			t.Errorf("%s is followed by %v, want %v", tt.outcome, got, tt.next)
		}
	}
}

func TestFailuresSayWhatTheyComeTo(t *testing.T) {
	cause := errors.New("550 no such user")
	tests := []struct {
		err        error
		outcome    Outcome
		retryAfter time.Duration
		text       string
	}{
		{Permanent(cause), Failed, 0, "permanent: 550 no such user"},
		{Temporary(cause), Retry, 0, "temporary: 550 no such user"},
		{Limited(3*time.Second, cause), RateLimited, 3 * time.Second, "rate_limited: 550 no such user"},
		{fmt.Errorf("send: %w", Permanent(cause)), Failed, 0, "send: permanent: 550 no such user"},
		{cause, Retry, 0, "550 no such user"}, // nobody classified it: it may go away
	}
	for _, tt := range tests {
		if got := OutcomeOf(tt.err); got != tt.outcome {
			t.Errorf("%v comes to %s, want %s", tt.err, got, tt.outcome)
		}
		if got := RetryAfterOf(tt.err); got != tt.retryAfter {
			t.Errorf("%v asks to wait %v, want %v", tt.err, got, tt.retryAfter)
		}
		if tt.err.Error() != tt.text || !errors.Is(tt.err, cause) {
			t.Errorf("%q does not read %q or lost its cause", tt.err.Error(), tt.text)
		}
	}
}
