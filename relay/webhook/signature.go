package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StandardWebhooks verifies the signature headers of the Standard Webhooks
// specification (webhook-id, webhook-timestamp, webhook-signature), for
// senders that sign or a signing gateway in front of the relay. Several
// secrets are accepted at once so that one can be rotated without a gap.
type StandardWebhooks struct {
	keys [][]byte
	// Tolerance bounds how far webhook-timestamp may be from now, which
	// limits replay of a captured request.
	Tolerance time.Duration
}

// NewStandardWebhooks verifies with any of keys (config.Webhook.SigningKeys).
func NewStandardWebhooks(keys [][]byte) *StandardWebhooks {
	return &StandardWebhooks{keys: keys, Tolerance: 5 * time.Minute}
}

var errBadSignature = errors.New("no valid webhook-signature")

// Verify checks the request's signature over id.timestamp.body and
// returns the webhook-id. The error says what was wrong, never a secret.
func (v *StandardWebhooks) Verify(h http.Header, body []byte, now time.Time) (string, error) {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return "", errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "", errors.New("webhook-timestamp is not a Unix time")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > v.Tolerance || d < -v.Tolerance {
		return "", fmt.Errorf("webhook-timestamp is %v away from now, more than %v", d.Round(time.Second), v.Tolerance)
	}
	signed := make([]byte, 0, len(id)+len(ts)+len(body)+2)
	signed = append(append(append(append(append(signed, id...), '.'), ts...), '.'), body...)
	for _, key := range v.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write(signed)
		want := mac.Sum(nil)
		for _, sig := range strings.Fields(sigs) {
			version, value, ok := strings.Cut(sig, ",")
			if !ok || version != "v1" {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(value)
			if err == nil && hmac.Equal(got, want) {
				return id, nil
			}
		}
	}
	return "", errBadSignature
}

// Sign makes a webhook-signature value, for tests and for senders written
// against the relay.
func (v *StandardWebhooks) Sign(id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, v.keys[0])
	fmt.Fprintf(mac, "%s.%d.", id, ts.Unix())
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
