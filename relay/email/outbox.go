package email

import (
	"context"
	"fmt"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"

	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/relay"
)

// Outbox writes each message as an .eml file instead of sending it: the
// embedded default, so a newcomer sees what students would get.
type Outbox struct{ Dir string }

func (o Outbox) Send(_ context.Context, m *mail.Msg) error {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return relay.Temporary(err)
	}
	name := strings.Trim(m.GetMessageID(), "<>")
	name = strings.NewReplacer("/", "_", "\\", "_", "@", "_").Replace(name) + ".eml"
	tmp, err := os.CreateTemp(o.Dir, ".*.eml.tmp")
	if err != nil {
		return relay.Temporary(err)
	}
	defer os.Remove(tmp.Name())
	if _, err := m.WriteTo(tmp); err != nil {
		tmp.Close()
		return relay.Temporary(fmt.Errorf("write %s: %w", tmp.Name(), err))
	}
	if err := tmp.Close(); err != nil {
		return relay.Temporary(err)
	}
	// A whole file or none: a reader never sees half a message.
	return os.Rename(tmp.Name(), filepath.Join(o.Dir, name))
}

func (Outbox) Close() error { return nil }

// Forget removes the emails written to address, and says how many.
func (o Outbox) Forget(address string) (int, error) {
	files, err := filepath.Glob(filepath.Join(o.Dir, "*.eml"))
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, path := range files {
		to, err := recipients(path)
		if err != nil {
			continue // not an email the relay wrote
		}
		for _, a := range to {
			if strings.EqualFold(a.Address, address) {
				if err := os.Remove(path); err != nil {
					return removed, err
				}
				removed++
				break
			}
		}
	}
	return removed, nil
}

func recipients(path string) ([]*netmail.Address, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	msg, err := netmail.ReadMessage(f)
	if err != nil {
		return nil, err
	}
	return msg.Header.AddressList("To")
}
