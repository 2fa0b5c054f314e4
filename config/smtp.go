package config

import (
	"fmt"
	"net/url"
	"strconv"
)

// TLS is how the relay secures its SMTP connection.
type TLS string

const (
	TLSNone     TLS = "none"     // plain text, for local sinks such as Mailpit
	TLSStartTLS TLS = "starttls" // upgrade a plain connection, required
	TLSImplicit TLS = "tls"      // TLS from the first byte (port 465)
	// TLSOpportunistic is used only when tls= is not given and the URL
	// carries no credentials: upgrade if the server offers it.
	TLSOpportunistic TLS = "opportunistic"
)

// SMTPServer is RELAY_SMTP_URL taken apart.
type SMTPServer struct {
	Host     string
	Port     int
	Username string
	Password string
	TLS      TLS
}

// ParseSMTPURL reads smtp://user:pass@host:port?tls=none|starttls|tls.
// smtps:// means tls=tls. Without tls=, credentials require STARTTLS (so a
// password never crosses the network in clear by accident) and a URL
// without them uses STARTTLS when the server offers it.
func ParseSMTPURL(s string) (SMTPServer, error) {
	u, err := url.Parse(s)
	if err != nil {
		return SMTPServer{}, fmt.Errorf("not a URL such as smtp://user:pass@host:587?tls=starttls")
	}
	var srv SMTPServer
	switch u.Scheme {
	case "smtp":
	case "smtps":
		srv.TLS = TLSImplicit
	default:
		return srv, fmt.Errorf("scheme %q, want smtp or smtps", u.Scheme)
	}
	srv.Host = u.Hostname()
	if srv.Host == "" {
		return srv, fmt.Errorf("no host, want smtp://host:port")
	}
	if u.User != nil {
		srv.Username = u.User.Username()
		srv.Password, _ = u.User.Password()
	}
	q := u.Query()
	for k := range q {
		if k != "tls" {
			return srv, fmt.Errorf("unknown parameter %q, the only one is tls=none|starttls|tls", k)
		}
	}
	switch t := TLS(q.Get("tls")); t {
	case TLSNone, TLSStartTLS, TLSImplicit:
		if srv.TLS == TLSImplicit && t != TLSImplicit {
			return srv, fmt.Errorf("smtps:// with tls=%s: choose one", t)
		}
		srv.TLS = t
	case "":
		if srv.TLS == "" {
			srv.TLS = TLSOpportunistic
			if srv.Username != "" {
				srv.TLS = TLSStartTLS
			}
		}
	default:
		return srv, fmt.Errorf("tls=%s, want none, starttls or tls", t)
	}
	switch port := u.Port(); {
	case port != "":
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return srv, fmt.Errorf("port %q is not a port number", port)
		}
		srv.Port = n
	case srv.TLS == TLSImplicit:
		srv.Port = 465
	case srv.TLS == TLSNone:
		srv.Port = 25
	default:
		srv.Port = 587
	}
	return srv, nil
}
