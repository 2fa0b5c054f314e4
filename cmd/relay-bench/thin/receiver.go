package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

const (
	webhookPath = "/webhooks/synap/user-registered-for-exam"
	maxBody     = 1 << 20
	// taskType is the one kind of task: a registration to email.
	taskType = "registration"
	// retention keeps a completed task, and so blocks its id, for the
	// dedup window, as the relay does by default.
	retention = 7 * 24 * time.Hour
)

// registration is the part of Synap's webhook body the email needs, and
// the task payload. Unknown fields (custom attributes, meta) are skipped.
type registration struct {
	User struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"user"`
	Portal struct {
		ID string `json:"id"`
	} `json:"portal"`
	Exam struct {
		ObjectID string `json:"objectId"`
		Name     string `json:"name"`
		URL      string `json:"url"`
		Schedule struct {
			OpenDate  string `json:"openDate"`
			CloseDate string `json:"closeDate"`
		} `json:"schedule"`
	} `json:"exam"`
	UserGroup struct {
		ObjectID string `json:"objectId"`
	} `json:"userGroup"`
}

// decodeRegistration reads a webhook body and checks what an email cannot
// go without: one address, and an open date (and a close date, when there
// is one, that the calendar file can hold). It returns the task id too.
func decodeRegistration(body []byte) (registration, string, error) {
	var reg registration
	if err := json.Unmarshal(body, &reg); err != nil {
		return reg, "", err
	}
	email := reg.User.Email
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email || a.Name != "" {
		return reg, "", errors.New("user.email must be one email address")
	}
	open, err := time.Parse(time.RFC3339, reg.Exam.Schedule.OpenDate)
	if err != nil {
		return reg, "", errors.New("exam.schedule.openDate must be an RFC 3339 date")
	}
	closes := ""
	if c := reg.Exam.Schedule.CloseDate; c != "" {
		t, err := time.Parse(time.RFC3339, c)
		if err != nil {
			return reg, "", errors.New("exam.schedule.closeDate must be empty or an RFC 3339 date")
		}
		closes = t.UTC().Format(time.RFC3339)
	}
	// The same registration has the same id whatever offset its dates are
	// written with, and new dates make a new one: a repeat sends nothing,
	// a move is news.
	sum := sha256.Sum256([]byte(strings.Join([]string{reg.Portal.ID, reg.User.ID, strings.ToLower(email),
		reg.Exam.ObjectID, reg.UserGroup.ObjectID, open.UTC().Format(time.RFC3339), closes}, "\x00")))
	return reg, taskType + ":" + hex.EncodeToString(sum[:16]), nil
}

// receiver answers 202 once the registration is in Redis, 200 for a
// repeat, and never logs per request.
type receiver struct {
	queue *asynq.Client
}

func (rc receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			answer(w, http.StatusRequestEntityTooLarge, receipt{Status: "rejected", Error: "body is larger than 1 MiB"})
			return
		}
		answer(w, http.StatusBadRequest, receipt{Status: "rejected", Error: "could not read the body"})
		return
	}
	reg, id, err := decodeRegistration(body)
	if err != nil {
		answer(w, http.StatusBadRequest, receipt{Status: "rejected", Error: err.Error()})
		return
	}
	payload, err := json.Marshal(reg)
	if err != nil {
		answer(w, http.StatusInternalServerError, receipt{Status: "unavailable", Error: err.Error()})
		return
	}
	_, err = rc.queue.EnqueueContext(r.Context(), asynq.NewTask(taskType, payload, asynq.TaskID(id), asynq.Retention(retention)))
	switch {
	case err == nil:
		answer(w, http.StatusAccepted, receipt{Status: "accepted", ID: id})
	case errors.Is(err, asynq.ErrTaskIDConflict):
		answer(w, http.StatusOK, receipt{Status: "duplicate", ID: id})
	default:
		answer(w, http.StatusServiceUnavailable, receipt{Status: "unavailable", Error: err.Error()})
	}
}

// receipt is every answer's body, as the relay's: what happened, and the
// task id for anyone tracing it.
type receipt struct {
	Status string `json:"status"`
	ID     string `json:"id,omitempty"`
	Error  string `json:"error,omitempty"`
}

func answer(w http.ResponseWriter, status int, body receipt) {
	data, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// basicAuth compares hashes of both parts in constant time, so neither the
// values nor their lengths leak.
func basicAuth(user, password string, next http.Handler) http.Handler {
	wantUser, wantPass := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		gotUser, gotPass := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		if !ok || subtle.ConstantTimeCompare(gotUser[:], wantUser[:])&subtle.ConstantTimeCompare(gotPass[:], wantPass[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="thin"`)
			answer(w, http.StatusUnauthorized, receipt{Status: "unauthorized"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serve takes webhooks on addr until ctx ends.
func serve(ctx context.Context, addr, redisAddr, user, password string) error {
	queue := asynq.NewClient(asynq.RedisClientOpt{Addr: redisAddr})
	defer queue.Close()
	mux := http.NewServeMux()
	mux.Handle("POST "+webhookPath, basicAuth(user, password, receiver{queue: queue}))
	mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
	srv := &http.Server{
		Addr:              addr,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	return serveUntil(ctx, srv)
}

// serveUntil runs srv until ctx ends, then lets requests in flight finish.
func serveUntil(ctx context.Context, srv *http.Server) error {
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
