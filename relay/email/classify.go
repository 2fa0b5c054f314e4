package email

import (
	"errors"

	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/relay"
)

// classifySMTP says what a failed send comes to: a 5xx reply is
// permanent, a 4xx or a lost connection temporary.
func classifySMTP(err error) error {
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
