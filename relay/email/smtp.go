package email

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
)

// Pool keeps up to size connections open and reuses them: dialling,
// TLS and AUTH per message would cost more than the message.
//
// A message costs four exchanges with the server: MAIL, RCPT, DATA and
// the message. go-mail's NOOP before each message and RSET after it are
// left out (RFC 5321 ends a mail transaction with its data): a connection
// the server closed meanwhile is found out at MAIL, before anything was
// sent, and dialled afresh.
type Pool struct {
	server config.SMTPServer
	// tokens, with auth=xoauth2, gives what each connection logs in with.
	tokens *OAuthTokens
	// slots bounds the connections in use; idle holds open ones.
	slots chan struct{}
	idle  chan *mail.Client
}

// NewPool sends to server over up to size connections. tokens is needed
// when server.Auth is xoauth2, and nil otherwise.
func NewPool(server config.SMTPServer, size int, tokens *OAuthTokens) *Pool {
	return &Pool{server: server, tokens: tokens, slots: make(chan struct{}, size), idle: make(chan *mail.Client, size)}
}

// Send delivers m over a pooled connection. Failures come back classified:
// a 5xx reply is permanent, a 4xx or a lost connection temporary.
func (p *Pool) Send(ctx context.Context, m *mail.Msg) error {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return relay.Temporary(ctx.Err())
	}
	defer func() { <-p.slots }()

	c, reused, err := p.get(ctx)
	if err != nil {
		return classify(fmt.Errorf("smtp dial %s:%d: %w", p.server.Host, p.server.Port, err))
	}
	err = c.Send(m)
	if reused && closedBeforeSending(err) {
		// The idle connection died (server timeout) before anything was
		// sent on it: dial afresh, no risk of a double send.
		_ = c.Close()
		if c, err = p.dial(ctx); err != nil {
			return classify(fmt.Errorf("smtp dial %s:%d: %w", p.server.Host, p.server.Port, err))
		}
		err = c.Send(m)
	}
	if err != nil {
		// The connection's state after a failure is unknown: drop it.
		_ = c.Close()
		if m.IsDelivered() {
			// The server took the message and then would not reset the
			// session (it hung up): sending it again would be a
			// duplicate.
			return nil
		}
		return classify(err)
	}
	select {
	case p.idle <- c:
	default:
		_ = c.Close()
	}
	return nil
}

// closedBeforeSending is a failure of a reused connection before the
// message went out: the server had closed it and did not answer MAIL, or
// answered 421, closing it (as servers that cap a session's messages do).
func closedBeforeSending(err error) bool {
	var sendErr *mail.SendError
	if !errors.As(err, &sendErr) {
		return false
	}
	code := sendErr.ErrorCode()
	return sendErr.Reason == mail.ErrConnCheck || sendErr.Reason == mail.ErrSMTPMailFrom && (code == 0 || code == 421)
}

func (p *Pool) get(ctx context.Context) (*mail.Client, bool, error) {
	select {
	case c := <-p.idle:
		return c, true, nil
	default:
	}
	c, err := p.dial(ctx)
	return c, false, err
}

// dial opens a connection and logs in. With XOAUTH2 it logs in with a
// current token, and once more with a new one when that is refused.
func (p *Pool) dial(ctx context.Context) (*mail.Client, error) {
	if p.server.Auth != config.AuthXOAUTH2 {
		return p.connect(ctx, p.server.Password)
	}
	if p.tokens == nil {
		return nil, errors.New("auth=xoauth2 without RELAY_SMTP_OAUTH_* settings")
	}
	token, err := p.tokens.Token(ctx)
	if err != nil {
		return nil, err
	}
	c, err := p.connect(ctx, token)
	if loginRefused(err) {
		// The server may stop taking a token before its time: revoked,
		// or its clock ahead of ours. A new one is worth one try.
		p.tokens.Refused(token)
		if token, err = p.tokens.Token(ctx); err != nil {
			return nil, err
		}
		c, err = p.connect(ctx, token)
	}
	if loginRefused(err) {
		return nil, fmt.Errorf("XOAUTH2 login as %s refused with a new token: the mail service does not let the application send as this mailbox. Check the token is for it (RELAY_SMTP_OAUTH_SCOPES; Microsoft 365: %s) and, in Exchange Online, that the application is registered (New-ServicePrincipal), has the mailbox (Add-MailboxPermission) and that SMTP AUTH is on for the mailbox: %w",
			p.server.Username, config.DefaultOAuthScope, err)
	}
	return c, err
}

// loginRefused is a 535 reply to AUTH: the credentials are wrong.
func loginRefused(err error) bool {
	var reply *textproto.Error
	return errors.As(err, &reply) && reply.Code == 535
}

// connect opens a connection and, when the URL has a user, logs in with
// secret: the password, or with XOAUTH2 the access token.
func (p *Pool) connect(ctx context.Context, secret string) (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(p.server.Port), mail.WithTimeout(30 * time.Second), mail.WithoutNoop(), mail.WithoutRset()}
	switch p.server.TLS {
	case config.TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case config.TLSOpportunistic:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case config.TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case config.TLSImplicit:
		opts = append(opts, mail.WithSSL())
	}
	if p.server.Username != "" {
		auth := mail.SMTPAuthAutoDiscover
		switch {
		case p.server.Auth == config.AuthXOAUTH2:
			auth = mail.SMTPAuthXOAUTH2
		case p.server.TLS == config.TLSNone:
			// The operator chose no TLS; go-mail refuses PLAIN in clear
			// unless told.
			auth = mail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(p.server.Username), mail.WithPassword(secret))
	}
	c, err := mail.NewClient(p.server.Host, opts...)
	if err != nil {
		return nil, err
	}
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.DialWithContext(dialCtx); err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes the idle connections; in-flight sends close their own.
func (p *Pool) Close() error {
	for {
		select {
		case c := <-p.idle:
			_ = c.Close()
		default:
			return nil
		}
	}
}

// Ping dials the server and logs in once, for `relay check`.
func (p *Pool) Ping(ctx context.Context) error {
	c, err := p.dial(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}
