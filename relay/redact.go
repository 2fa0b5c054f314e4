package relay

import "strings"

// Redact is err with every occurrence of secret in its text replaced by
// as: a webhook's URL is its credential, and errors reach the logs and
// the archived tasks. errors.Is and errors.As still see err.
func Redact(err error, secret, as string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return redacted{err: err, msg: strings.ReplaceAll(err.Error(), secret, as)}
}

type redacted struct {
	err error
	msg string
}

func (r redacted) Error() string { return r.msg }
func (r redacted) Unwrap() error { return r.err }
