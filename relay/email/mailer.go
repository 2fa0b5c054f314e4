package email

import (
	"context"

	"github.com/wneessen/go-mail"
)

// Mailer hands a message to whatever delivers mail.
type Mailer interface {
	Send(ctx context.Context, m *mail.Msg) error
	Close() error
}
