package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/tasks"
)

func TestNewWorkerNamesEveryMissingPart(t *testing.T) {
	_, err := NewWorker(Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(prometheus.NewRegistry())})
	want := "worker: missing Queue, Inspector, Store, History, Mailer, Routing, Today, Settings.Concurrency, Settings.RetrySchedule"
	if err == nil || err.Error() != want {
		t.Errorf("NewWorker with two parts: %v, want %q", err, want)
	}
}

func TestRetriesFollowTheScheduleUnlessAskedToWait(t *testing.T) {
	delay := retryDelay([]time.Duration{5 * time.Second, time.Minute})
	cause := errors.New("451 try later")
	tests := []struct {
		n        int
		err      error
		min, max time.Duration
	}{
		{0, relay.Temporary(cause), 5 * time.Second, 6 * time.Second},
		{1, relay.Temporary(cause), time.Minute, 72 * time.Second},
		{9, relay.Temporary(cause), time.Minute, 72 * time.Second}, // the last repeats
		{9, relay.Limited(3*time.Second, cause), 3 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		if d := delay(tt.n, tt.err, nil); d < tt.min || d > tt.max {
			t.Errorf("retry %d after %v: %v, want %v to %v", tt.n, tt.err, d, tt.min, tt.max)
		}
	}
	if isFailure(relay.Limited(time.Second, cause)) || !isFailure(relay.Temporary(cause)) || !isFailure(cause) {
		t.Error("isFailure: waiting out a rate limit must spend no attempt, and anything else must")
	}
}

func TestOnlyFailuresThatNeverWorkAreArchived(t *testing.T) {
	cause := errors.New("no")
	for _, tt := range []struct {
		err     error
		archive bool
	}{
		{relay.Permanent(cause), true},
		{relay.Temporary(cause), false},
		{relay.Limited(time.Second, cause), false},
		{cause, false},
		{nil, false},
	} {
		w := &Worker{options: tasks.Options{MaxRetry: 3}}
		h := w.archiveFailed(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return tt.err }))
		err := h.ProcessTask(context.Background(), asynq.NewTask("t", nil))
		if got := errors.Is(err, asynq.SkipRetry); got != tt.archive {
			t.Errorf("%v: archived %v, want %v", tt.err, got, tt.archive)
		}
		if tt.err != nil && !errors.Is(err, cause) || !strings.Contains(errString(err), errString(tt.err)) {
			t.Errorf("%v became %v", tt.err, err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
