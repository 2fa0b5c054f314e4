package email

import (
	"crypto"
	"fmt"
	"os"

	"github.com/wneessen/go-mail"
)

// DKIM signs emails for their From domain, so that schools sending from
// their own server pass DMARC. The zero DKIM signs nothing.
type DKIM struct {
	Selector string
	key      crypto.Signer
}

// LoadDKIM reads a PEM private key (RSA or Ed25519, PKCS#1 or PKCS#8).
func LoadDKIM(keyFile, selector string) (DKIM, error) {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return DKIM{}, fmt.Errorf("RELAY_DKIM_KEY_FILE (email.dkim.key_file): %w", err)
	}
	key, err := mail.PrivKeyFromPEM(pem)
	if err != nil {
		return DKIM{}, fmt.Errorf("RELAY_DKIM_KEY_FILE (email.dkim.key_file) %s: not an RSA or Ed25519 private key in PEM: %w", keyFile, err)
	}
	return DKIM{Selector: selector, key: key}, nil
}

// On reports whether emails are signed.
func (d DKIM) On() bool { return d.key != nil }

// sign has m signed when it is written, for the domain of from (routes may
// send from several).
func (d DKIM) sign(m *mail.Msg, from string) {
	if !d.On() {
		return // without parsing the sender for nothing, once per email
	}
	if domain := fromDomain(from); domain != "" {
		m.SetDKIM(mail.NewDKIMSigner(domain, d.Selector, d.key))
	}
}
