package worker

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

// Forty digests due at once at one a second: the one that finds the slot
// posts, one worker sleeps for the next, and the rest come back spread
// over the forty seconds the queue takes, not all at the next slot, which
// had them read their payloads again every second.
func TestStaffPostsHandedBackComeBackSpreadOverTheQueue(t *testing.T) {
	rdb := relaytest.StartRedis(t).Client()
	queue := asynq.NewClientFromRedisClient(rdb)
	for range 40 {
		if _, err := queue.Enqueue(asynq.NewTask(tasks.TypeSlackDigest, []byte(`{}`), asynq.Queue(tasks.QueueSlack))); err != nil {
			t.Fatal(err)
		}
	}
	store := redisstore.New(rdb, time.Hour)
	w, err := NewWorker(Deps{
		Queue: queue, Inspector: asynq.NewInspectorFromRedisClient(rdb), Store: store, History: store.NewHistory(time.Hour),
		Mailer: unusedMailer{}, Routing: &relay.Routing{}, Today: time.UTC,
		Settings: Settings{Concurrency: 3, RetrySchedule: []time.Duration{time.Second}},
		Metrics:  NewMetrics(prometheus.NewRegistry()), Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 3)
	for range 3 {
		go func() { results <- w.staffLimits[relay.Slack].Wait(context.Background(), "slack-1") }()
	}
	var passed, handedBack int
	for range 3 {
		switch err := <-results; {
		case err == nil:
			passed++
		case relay.OutcomeOf(err) == relay.RateLimited:
			handedBack++
			// Less than a second is the next slot: where every busy
			// post came back before.
			if d := relay.RetryAfterOf(err); d < time.Second || d > 40*time.Second {
				t.Errorf("handed back for %v with 40 digests ahead at 1/s", d)
			}
		default:
			t.Errorf("Wait: %v", err)
		}
	}
	if passed != 2 || handedBack != 1 {
		t.Errorf("%d passed and %d handed back, want 2 and 1", passed, handedBack)
	}
}

// unusedMailer is a Mailer for a test that sends no email.
type unusedMailer struct{}

func (unusedMailer) Send(context.Context, *mail.Msg) error { panic("no email in this test") }
func (unusedMailer) Close() error                          { return nil }
