package relay

import (
	"errors"
	"fmt"
	"net/url"
)

// ParseWebURL parses an http(s) URL with a host: the only kind of link the
// relay puts in an email or a staff message, and the only kind of webhook
// it posts to. The error never quotes the URL, which may be a secret.
func ParseWebURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("want an http(s) URL with a host, have scheme %q", u.Scheme)
	}
	return u, nil
}
