package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// WebhookPath is where Synap posts registrations.
const WebhookPath = "/webhooks/synap/user-registered-for-exam"

// Credentials are the Basic auth username and password Synap sends.
type Credentials struct {
	Username, Password string
}

// ServerDeps is everything the HTTP surface needs. A nil Receiver serves
// only the operational endpoints (relay work).
type ServerDeps struct {
	Receiver    *Receiver
	Credentials Credentials
	// Ready reports whether Redis answers.
	Ready func(context.Context) error
	// Spool, when not nil, is reported by /readyz.
	Spool   *Spool
	Metrics *Metrics
	Log     *slog.Logger
}

// NewServer mounts the whole HTTP API.
func NewServer(d ServerDeps) http.Handler {
	mux := http.NewServeMux()
	if d.Receiver != nil {
		var receiver http.Handler = d.Receiver
		// Basic auth, unless signatures alone were chosen: never open.
		if d.Credentials.Password != "" || d.Receiver.Signatures == nil {
			receiver = basicAuth(d.Credentials, d.Metrics, d.Log, receiver)
		}
		mux.Handle("POST "+WebhookPath, receiver)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		status := map[string]any{"status": "ok", "redis": "ok"}
		if d.Spool != nil {
			status["spool"] = d.Spool.Depth()
		}
		if err := d.Ready(r.Context()); err != nil {
			d.Log.Warn("not ready", "err", err)
			status["status"], status["redis"] = "unavailable", "unreachable"
			writeJSON(w, http.StatusServiceUnavailable, status)
			return
		}
		writeJSON(w, http.StatusOK, status)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{}))
	return recoverPanics(d.Log, mux)
}

// basicAuth compares both parts in constant time (hashing first so the
// lengths do not leak either) and never logs what was sent.
func basicAuth(c Credentials, m *Metrics, log *slog.Logger, next http.Handler) http.Handler {
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
			m.webhooks.WithLabelValues("unauthorized").Inc()
			log.Warn("webhook unauthorized", "remote", r.RemoteAddr, "credentials_sent", ok)
			w.Header().Set("WWW-Authenticate", `Basic realm="exam-relay", charset="UTF-8"`)
			writeJSON(w, http.StatusUnauthorized, receipt{Status: "unauthorized", Error: "missing or wrong Basic auth credentials"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a bug into a logged 500 instead of a dropped
// connection.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("panic in handler", "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, receipt{Status: "error", Error: "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
