package main

import (
	"context"
	"time"

	"github.com/wneessen/go-mail"
)

// pool is size go-mail connections, each opened when first needed and
// reused; one that fails is closed and opened afresh by the next send.
type pool struct {
	host string
	port int
	// clients holds each connection while it is free; nil is one not yet
	// opened.
	clients chan *mail.Client
}

func newPool(host string, port, size int) *pool {
	p := &pool{host: host, port: port, clients: make(chan *mail.Client, size)}
	for range size {
		p.clients <- nil
	}
	return p
}

func (p *pool) send(ctx context.Context, m *mail.Msg) error {
	var c *mail.Client
	select {
	case c = <-p.clients:
	case <-ctx.Done():
		return ctx.Err()
	}
	if c == nil {
		var err error
		if c, err = p.dial(ctx); err != nil {
			p.clients <- nil
			return err
		}
	}
	if err := c.Send(m); err != nil {
		_ = c.Close()
		p.clients <- nil
		return err
	}
	p.clients <- c
	return nil
}

func (p *pool) dial(ctx context.Context) (*mail.Client, error) {
	c, err := mail.NewClient(p.host, mail.WithPort(p.port), mail.WithTLSPolicy(mail.NoTLS), mail.WithTimeout(30*time.Second))
	if err != nil {
		return nil, err
	}
	if err := c.DialWithContext(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// close closes the connections that are free; the worker has stopped, so
// that is all of them.
func (p *pool) close() {
	for {
		select {
		case c := <-p.clients:
			if c != nil {
				_ = c.Close()
			}
		default:
			return
		}
	}
}
