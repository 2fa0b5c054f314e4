package email

import (
	"context"
	"errors"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
)

// TestEveryThrottlingReplyWaitsAndOthersKeepTheirMeaning sends through a
// real SMTP server that answers as each provider does, one case per entry
// of the throttling table, and a few that must not match.
func TestEveryThrottlingReplyWaitsAndOthersKeepTheirMeaning(t *testing.T) {
	sink := relaytest.StartSMTP(t)
	server, _ := config.ParseSMTPURL(sink.URL())
	pool := NewPool(server, 1, nil)
	defer pool.Close()
	code := func(c, a, b, d int, msg string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: c, EnhancedCode: smtp.EnhancedCode{a, b, d}, Message: msg}
	}
	tests := []struct {
		name    string
		at      string // "rcpt", "data" or "connect"
		reply   *smtp.SMTPError
		outcome relay.Outcome
		rule    int // the entry of throttles that must match; -1: none
	}{
		{"421 at RCPT", "rcpt", code(421, 4, 7, 0, "Temporary System Problem. Try again later"), relay.RateLimited, 0},
		{"Amazon SES", "data", code(454, 4, 7, 0, "Throttling failure: Maximum sending rate exceeded."), relay.RateLimited, 1},
		{"454 of any text", "rcpt", code(454, 4, 3, 0, "Temporary authentication failure"), relay.RateLimited, 1},
		{"432", "data", code(432, 4, 3, 2, "STOREDRV.ClientSubmit; sender thread limit exceeded"), relay.RateLimited, 2},
		{"451 4.7.x", "rcpt", code(451, 4, 7, 500, "Server busy. Please try again later"), relay.RateLimited, 3},
		{"452 4.5.3", "rcpt", code(452, 4, 5, 3, "Too many recipients"), relay.RateLimited, 3},
		{"450 that says rate", "rcpt", code(450, 4, 2, 1, "The user you are trying to contact is receiving mail at a rate that prevents additional messages"), relay.RateLimited, 3},
		{"Microsoft 365 quota", "data", code(554, 5, 2, 0, "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception"), relay.RateLimited, 4},
		{"Google quota", "data", code(550, 5, 4, 5, "Daily user sending quota exceeded."), relay.RateLimited, 5},
		{"421 at the greeting", "connect", code(421, 4, 7, 0, "Too many connections from your host"), relay.RateLimited, 0},
		{"too many connections at the greeting", "connect", code(554, 5, 7, 0, "Too many connections, try later"), relay.RateLimited, 6},
		{"another 451", "rcpt", code(451, 4, 3, 0, "Mail server temporarily rejected message"), relay.Retry, -1},
		{"another 550", "rcpt", code(550, 5, 1, 1, "No such user"), relay.Failed, -1},
		{"554 that is not a quota", "data", code(554, 5, 7, 1, "Message rejected as spam"), relay.Failed, -1},
	}
	for i, tt := range tests {
		sink.SetRcptHook(nil)
		sink.SetDataHook(nil)
		sink.SetConnectHook(nil)
		switch tt.at {
		case "rcpt":
			sink.SetRcptHook(func(string) *smtp.SMTPError { return tt.reply })
		case "data":
			sink.SetDataHook(func(string, []string) *smtp.SMTPError { return tt.reply })
		case "connect":
			pool.Close() // a new connection must be dialled
			sink.SetConnectHook(func() *smtp.SMTPError { return tt.reply })
		}
		err := pool.Send(context.Background(), testMessage(t, i))
		if got := relay.OutcomeOf(err); err == nil || got != tt.outcome {
			t.Errorf("%s: %v comes to %s, want %s", tt.name, err, got, tt.outcome)
			continue
		}
		var throttle *Throttle
		switch isThrottle := errors.As(err, &throttle); {
		case tt.rule < 0 && isThrottle:
			t.Errorf("%s: taken for a throttle by %q", tt.name, throttle.Rule)
		case tt.rule >= 0 && (!isThrottle || throttle.Rule != throttles[tt.rule].rule || throttle.Quota != throttles[tt.rule].quota):
			t.Errorf("%s: throttle %+v, want the entry %q", tt.name, throttle, throttles[tt.rule].rule)
		}
		if tt.outcome == relay.RateLimited && relay.RetryAfterOf(err) <= 0 {
			t.Errorf("%s: no wait asked", tt.name)
		}
	}
	sink.SetRcptHook(nil)
	sink.SetDataHook(nil)
	sink.SetConnectHook(nil)
	if err := pool.Send(context.Background(), testMessage(t, 99)); err != nil {
		t.Errorf("after the refusals the pool cannot send: %v", err)
	}
	covered := map[int]bool{}
	for _, tt := range tests {
		covered[tt.rule] = true
	}
	for i, entry := range throttles {
		if !covered[i] {
			t.Errorf("no case for the entry %q", entry.rule)
		}
	}
}
