package email

import (
	"errors"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/relay"
)

// Throttle is a reply that means the server, not this message, wants the
// relay to come back later: every sender to that server should wait, and
// the email is retried without spending an attempt.
type Throttle struct {
	// Quota is true when a day's sending quota is used up, false for a
	// rate or connection limit: a quota takes longer to come back.
	Quota bool
	// Rule names the entry of the throttling table that matched.
	Rule string
	Err  error
}

func (t *Throttle) Error() string { return t.Err.Error() }
func (t *Throttle) Unwrap() error { return t.Err }

// Backoff is how long a throttled server is left alone before the first
// try again; the worker doubles it while the server keeps refusing.
func (t *Throttle) Backoff() time.Duration {
	if t.Quota {
		// A used-up daily quota frees slowly; one email tries again.
		return 30 * time.Second
	}
	return 5 * time.Second
}

// reply is an SMTP server's answer.
type reply struct {
	code     int
	enhanced string // "4.7.0", or "" when the server gave none
	text     string
}

// rateWords are what a 450, 451 or 452 says when it is about the sender's
// pace rather than the message.
var rateWords = regexp.MustCompile(`(?i)\b(rate|quota|throttl\w*|too many)\b`)

// throttles is the table of replies that mean "not now, and not only this
// message". Anything it does not match keeps its usual meaning: another
// 4xx is retried, spending an attempt; another 5xx is permanent.
var throttles = []struct {
	rule  string
	quota bool
	match func(reply) bool
}{
	{"421: the server is closing the connection (too busy, too many connections)", false,
		func(r reply) bool { return r.code == 421 }},
	{"454: temporary failure, such as Amazon SES's 454 4.7.0 Throttling failure", false,
		func(r reply) bool { return r.code == 454 }},
	{"432: Microsoft's 432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded", false,
		func(r reply) bool { return r.code == 432 }},
	{"450, 451 or 452 about the pace: 4.7.x, 4.5.3, or rate, quota, throttling, too many", false,
		func(r reply) bool {
			return r.code >= 450 && r.code <= 452 &&
				(strings.HasPrefix(r.enhanced, "4.7.") || r.enhanced == "4.5.3" || rateWords.MatchString(r.text))
		}},
	{"Microsoft 365's 554 5.2.0 SubmissionQuotaExceededException: the mailbox's daily limit", true,
		func(r reply) bool { return r.code == 554 && strings.Contains(r.text, "SubmissionQuotaExceeded") }},
	{"Google's 550 5.4.5 Daily user sending quota exceeded", true,
		func(r reply) bool {
			return r.code == 550 && (r.enhanced == "5.4.5" || strings.Contains(strings.ToLower(r.text), "sending quota exceeded"))
		}},
	{"a greeting that refuses the connection: too many connections", false,
		func(r reply) bool {
			return r.code >= 400 && strings.Contains(strings.ToLower(r.text), "too many connections")
		}},
}

var enhancedCode = regexp.MustCompile(`\b[245]\.\d{1,3}\.\d{1,3}\b`)

// replyOf is the server's answer inside err, if it holds one.
func replyOf(err error) (reply, bool) {
	var sendErr *mail.SendError
	var protoErr *textproto.Error
	switch {
	case errors.As(err, &sendErr) && sendErr.ErrorCode() != 0:
		r := reply{code: sendErr.ErrorCode(), enhanced: sendErr.EnhancedStatusCode(), text: sendErr.Error()}
		if r.enhanced == "" {
			r.enhanced = enhancedCode.FindString(r.text)
		}
		return r, true
	case errors.As(err, &protoErr):
		return reply{code: protoErr.Code, enhanced: enhancedCode.FindString(protoErr.Msg), text: protoErr.Msg}, true
	}
	return reply{}, false
}

// throttleOf is err as a Throttle when the table says it is one.
func throttleOf(err error) (*Throttle, bool) {
	r, ok := replyOf(err)
	if !ok {
		return nil, false
	}
	for _, t := range throttles {
		if t.match(r) {
			return &Throttle{Quota: t.quota, Rule: t.rule, Err: err}, true
		}
	}
	return nil, false
}

// classify says what a failed send or dial comes to: a throttling reply
// waits (see throttles), another 5xx reply is permanent, another 4xx or a
// lost connection temporary.
func classify(err error) error {
	if t, ok := throttleOf(err); ok {
		return relay.Limited(t.Backoff(), t)
	}
	var sendErr *mail.SendError
	if errors.As(err, &sendErr) {
		switch code := sendErr.ErrorCode(); {
		case code >= 500:
			return relay.Permanent(err)
		case code >= 400:
			return relay.Temporary(err)
		}
		switch sendErr.Reason {
		case mail.ErrGetSender, mail.ErrGetRcpts, mail.ErrNoUnencoded:
			return relay.Permanent(err)
		}
	}
	return relay.Temporary(err)
}
