package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/exam-relay/relay/relay"
)

// Credentials are a Basic auth username and password: the ones Synap
// sends, or the admin page's own.
type Credentials struct {
	Username, Password string
}

// basicAuth lets through requests that carry c, comparing both parts in
// constant time (hashing first so the lengths do not leak either). Any
// other request is logged, never with what was sent, and answered by
// refuse. realm names the part of the server in the browser's login
// prompt, so a browser keeps the admin's and the webhook's apart.
func basicAuth(c Credentials, realm string, log *slog.Logger, refuse func(http.ResponseWriter), next http.Handler) http.Handler {
	wantUser := sha256.Sum256([]byte(c.Username))
	wantPass := sha256.Sum256([]byte(c.Password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		gotUser := sha256.Sum256([]byte(user))
		gotPass := sha256.Sum256([]byte(pass))
		userOK := subtle.ConstantTimeCompare(gotUser[:], wantUser[:])
		passOK := subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		// An empty configured password matches nothing: never open.
		if !ok || userOK&passOK != 1 || c.Password == "" {
			log.Warn("unauthorized", "realm", realm, "path", r.URL.Path, "remote", r.RemoteAddr, "credentials_sent", ok)
			w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`", charset="UTF-8"`)
			refuse(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requireJSON refuses a body that says it is something else; one that says
// nothing is read as JSON.
func requireJSON(m *Metrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The exact type, as Synap sends it, needs no parsing.
		if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
				answerWith(w, m, relay.Rejected, http.StatusUnsupportedMediaType, receipt{Error: "Content-Type must be application/json (with curl: -H 'Content-Type: application/json')"})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// verifySignature lets through only requests signed as Standard Webhooks
// says, and hands the receiver the webhook-id, which a signing sender
// keeps when it retries.
func verifySignature(v *StandardWebhooks, m *Metrics, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := readBody(w, r, m)
		if !ok {
			return
		}
		id, err := v.Verify(r.Header, body, time.Now())
		if err != nil {
			log.Warn("webhook signature refused", "remote", r.RemoteAddr, "reason", err.Error())
			answer(w, m, relay.Unauthorized, receipt{Error: "webhook signature: " + err.Error()})
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), webhookIDKey{}, id))
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

type webhookIDKey struct{}

// webhookID is the verified webhook-id of the request, or "".
func webhookID(ctx context.Context) string {
	id, _ := ctx.Value(webhookIDKey{}).(string)
	return id
}

// MaxBodyBytes bounds a webhook body. Synap's are about 1 KiB.
const MaxBodyBytes = 1 << 20

// readBody reads at most MaxBodyBytes, answering the sender itself when it
// cannot.
func readBody(w http.ResponseWriter, r *http.Request, m *Metrics) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		answerWith(w, m, relay.Rejected, http.StatusRequestEntityTooLarge, receipt{Error: "body is larger than 1 MiB"})
		return nil, false
	case err != nil:
		answer(w, m, relay.Rejected, receipt{Error: "could not read the body"})
		return nil, false
	}
	return body, true
}
