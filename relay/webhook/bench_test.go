package webhook

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// acceptingQueue takes every task and keeps nothing: the benchmark is
// about what the receiver does around the Redis round trip.
type acceptingQueue struct{}

func (acceptingQueue) EnqueueContext(context.Context, *asynq.Task, ...asynq.Option) (*asynq.TaskInfo, error) {
	return &asynq.TaskInfo{Queue: "registrations"}, nil
}

// BenchmarkReceiver is one webhook through the whole route as relay serve
// mounts it (Basic auth, the Content-Type check, reading, decoding and
// checking the body, the task, the metric, the JSON log line and the
// answer), with a queue that takes everything and a log that goes nowhere:
// what the relay itself spends per registration, without the sockets.
func BenchmarkReceiver(b *testing.B) {
	spool, err := OpenSpool(b.TempDir(), 10, quietLog())
	if err != nil {
		b.Fatal(err)
	}
	defer spool.Close()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	m := NewMetrics(prometheus.NewRegistry())
	receiver, err := NewReceiver(ReceiverDeps{Queue: acceptingQueue{}, Spool: spool, Metrics: m, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	h := NewServer(ServerDeps{Receiver: receiver, Credentials: Credentials{Username: user, Password: password}, Metrics: m, Log: log})
	body := example(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		withBasic(req)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
