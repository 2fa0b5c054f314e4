package email

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
)

// Pool keeps up to size connections open and reuses them: dialling,
// TLS and AUTH per message would cost more than the message.
type Pool struct {
	server config.SMTPServer
	// slots bounds the connections in use; idle holds open ones.
	slots chan struct{}
	idle  chan *mail.Client
}

func NewPool(server config.SMTPServer, size int) *Pool {
	return &Pool{server: server, slots: make(chan struct{}, size), idle: make(chan *mail.Client, size)}
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
	var sendErr *mail.SendError
	if reused && errors.As(err, &sendErr) && sendErr.Reason == mail.ErrConnCheck {
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
		return classify(err)
	}
	select {
	case p.idle <- c:
	default:
		_ = c.Close()
	}
	return nil
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

func (p *Pool) dial(ctx context.Context) (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(p.server.Port), mail.WithTimeout(30 * time.Second)}
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
		if p.server.TLS == config.TLSNone {
			// The operator chose no TLS; go-mail refuses PLAIN in clear
			// unless told.
			auth = mail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(p.server.Username), mail.WithPassword(p.server.Password))
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

// Ping dials the server once, for `relay check`.
func (p *Pool) Ping(ctx context.Context) error {
	c, err := p.dial(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}
