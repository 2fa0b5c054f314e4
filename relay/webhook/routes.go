// Package webhook is the relay's HTTP surface: the route Synap posts
// registrations to, with its Basic auth and optional Standard Webhooks
// signatures, the receiver that stores each registration before answering,
// the local spool that keeps them while Redis is away, and the operational
// endpoints; and the exams office's admin page.
package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/exam-relay/relay/relay"
)

// Path is where Synap posts registrations.
const Path = "/webhooks/synap/user-registered-for-exam"

// ServerDeps is everything the HTTP surface needs.
type ServerDeps struct {
	// Receiver takes the webhook; nil serves only the operational
	// endpoints, as `relay work` does.
	Receiver *Receiver
	// Credentials are the Basic auth Synap sends; they are required
	// unless Signatures alone are chosen.
	Credentials Credentials
	// Signatures, when set, must verify every webhook.
	Signatures *StandardWebhooks
	// Ready reports whether Redis answers.
	Ready func(context.Context) error
	// Spool and Unreplicated, when set, are reported by /readyz.
	Spool        *Spool
	Unreplicated *Spool
	Metrics      *Metrics
	// Gatherer serves /metrics.
	Gatherer prometheus.Gatherer
	// Admin, when set, serves the admin page under AdminPath; nil (no
	// RELAY_ADMIN_PASSWORD) leaves it out, a 404.
	Admin *Admin
	Log   *slog.Logger
}

// NewServer mounts the whole HTTP API.
func NewServer(d ServerDeps) http.Handler {
	mux := http.NewServeMux()
	if d.Receiver != nil {
		mux.Handle("POST "+Path, d.webhook())
	}
	mux.Handle("GET /healthz", healthz())
	mux.Handle("GET /readyz", readyz(d.Ready, d.Spool, d.Unreplicated, d.Log))
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{}))
	if d.Admin != nil {
		mux.Handle(AdminPath, d.Admin.handler())
	}
	return recoverPanics(d.Log, mux)
}

// webhook is the receiver behind its checks, in the order a sender learns
// of them: credentials, content type, signature, then the body.
func (d ServerDeps) webhook() http.Handler {
	h := http.Handler(d.Receiver)
	if d.Signatures != nil {
		h = verifySignature(d.Signatures, d.Metrics, d.Log, h)
	}
	h = requireJSON(d.Metrics, h)
	// Basic auth, unless signatures alone were chosen: never open.
	if d.Credentials.Password != "" || d.Signatures == nil {
		h = basicAuth(d.Credentials, "exam-relay", d.Log, func(w http.ResponseWriter) {
			answer(w, d.Metrics, relay.Unauthorized, receipt{Error: "missing or wrong Basic auth credentials"})
		}, h)
	}
	return h
}

func healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func readyz(ready func(context.Context) error, spool, unreplicated *Spool, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := map[string]any{"status": "ok", "redis": "ok"}
		if spool != nil {
			status["spool"] = spool.Depth()
		}
		if unreplicated != nil {
			status["unreplicated"] = unreplicated.Depth()
		}
		if err := ready(r.Context()); err != nil {
			log.Warn("not ready", "err", err)
			status["status"], status["redis"] = "unavailable", "unreachable"
			writeJSON(w, http.StatusServiceUnavailable, status)
			return
		}
		writeJSON(w, http.StatusOK, status)
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
