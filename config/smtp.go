package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/exam-relay/relay/relay"
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

// Auth is how the relay logs in to its SMTP server.
type Auth string

const (
	// AuthPassword logs in with the URL's user and password, when it has
	// them, in the strongest way the server offers: what no auth= means.
	AuthPassword Auth = ""
	// AuthXOAUTH2 logs in as the URL's user with an OAuth2 access token
	// from RELAY_SMTP_OAUTH_*, as Microsoft 365 and Google Workspace want.
	AuthXOAUTH2 Auth = "xoauth2"
)

// SMTPServer is RELAY_SMTP_URL taken apart.
type SMTPServer struct {
	Host     string
	Port     int
	Username string
	Password string
	TLS      TLS
	Auth     Auth
}

// ParseSMTPURL reads smtp://user:pass@host:port?tls=none|starttls|tls.
// smtps:// means tls=tls. Without tls=, credentials require STARTTLS (so a
// password never crosses the network in clear by accident) and a URL
// without them uses STARTTLS when the server offers it. auth=xoauth2 logs
// in as the user with an OAuth2 token instead of a password.
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
		if k != "tls" && k != "auth" {
			return srv, fmt.Errorf("unknown parameter %q, the only ones are tls=none|starttls|tls and auth=xoauth2", k)
		}
	}
	switch a := Auth(strings.ToLower(q.Get("auth"))); a {
	case AuthPassword, AuthXOAUTH2:
		srv.Auth = a
	default:
		return srv, fmt.Errorf("auth=%s, want auth=xoauth2 (OAuth2: Microsoft 365, Google Workspace), or no auth= to log in with the URL's password", q.Get("auth"))
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
	if srv.Auth == AuthXOAUTH2 {
		if err := srv.checkXOAUTH2(); err != nil {
			return srv, err
		}
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

const xoauth2Example = "smtp://exams%40school.edu@smtp.office365.com:587?tls=starttls&auth=xoauth2"

// checkXOAUTH2 refuses the URLs with which an OAuth2 login cannot work or
// would give the token away.
func (srv SMTPServer) checkXOAUTH2() error {
	switch {
	case srv.Username == "":
		return fmt.Errorf("auth=xoauth2 needs the mailbox to send as, as the URL's user (@ written %%40): %s", xoauth2Example)
	case srv.Password != "":
		return fmt.Errorf("auth=xoauth2 logs in with a token from RELAY_SMTP_OAUTH_*, not a password: take the password out of the URL, as in %s", xoauth2Example)
	case srv.TLS == TLSNone:
		return fmt.Errorf("auth=xoauth2 with tls=none would send the access token in clear: use tls=starttls (port 587) or tls=tls (port 465), as in %s", xoauth2Example)
	}
	return nil
}

// OAuth is the application the relay is registered as with the mail
// provider's identity service, which gives it access tokens for
// auth=xoauth2 by the client-credentials grant.
type OAuth struct {
	TokenURL     string `yaml:"token_url"`
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	Scopes       Scopes `yaml:"scopes"`
}

// DefaultOAuthScope is what Microsoft 365 wants for SMTP with the
// client-credentials grant: the permissions granted to the application.
const DefaultOAuthScope = "https://outlook.office365.com/.default"

// set reports whether any of what identifies the application is given.
func (o OAuth) set() bool { return o.TokenURL != "" || o.ClientID != "" || o.ClientSecret != "" }

// validate names what auth=xoauth2 lacks.
func (o OAuth) validate() []error {
	var errs []error
	if o.TokenURL == "" {
		errs = append(errs, errors.New("RELAY_SMTP_OAUTH_TOKEN_URL (smtp.oauth.token_url) is required with auth=xoauth2, such as https://login.microsoftonline.com/TENANT/oauth2/v2.0/token"))
	} else if _, err := relay.ParseWebURL(o.TokenURL); err != nil {
		errs = append(errs, fmt.Errorf("RELAY_SMTP_OAUTH_TOKEN_URL (smtp.oauth.token_url): %w, such as https://login.microsoftonline.com/TENANT/oauth2/v2.0/token", err))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("RELAY_SMTP_OAUTH_CLIENT_ID (smtp.oauth.client_id) is required with auth=xoauth2: the application (client) id the relay is registered with"))
	}
	if o.ClientSecret == "" {
		errs = append(errs, errors.New("RELAY_SMTP_OAUTH_CLIENT_SECRET (smtp.oauth.client_secret) is required with auth=xoauth2: the value of the application's client secret"))
	}
	if len(o.Scopes) == 0 {
		errs = append(errs, fmt.Errorf("RELAY_SMTP_OAUTH_SCOPES (smtp.oauth.scopes): want at least one scope, such as %s", DefaultOAuthScope))
	}
	return errs
}

// Scopes reads "a,b" from the environment, and a list or that string from
// YAML: one scope is the usual case and is easiest written bare.
type Scopes []string

func (s Scopes) String() string { return strings.Join(s, ",") }

func (s *Scopes) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = parseScopes(n.Value)
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*s = list
	return nil
}

// parseScopes splits on commas and spaces: OAuth2 itself separates scopes
// with spaces.
func parseScopes(v string) Scopes {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
}
