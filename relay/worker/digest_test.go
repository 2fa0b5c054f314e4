package worker

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

// The digest loop queues a due digest as one task, counts what waits,
// and says once, not each second, that Redis is away, and once that it
// is back.
func TestDigestLoopQueuesDueDigestsAndLogsAnOutageOnce(t *testing.T) {
	redis := relaytest.StartRedis(t)
	rdb := redis.Client()
	store := redisstore.New(rdb, time.Hour)
	queue := asynq.NewClientFromRedisClient(rdb)
	var logs relaytest.SyncBuffer
	w := &Worker{
		store: store, queue: queue, metrics: NewMetrics(prometheus.NewRegistry()), now: time.Now,
		log:      slog.New(slog.NewTextHandler(&logs, nil)),
		settings: Settings{Digest: redisstore.DigestWindow{Grace: time.Second, MaxDelay: time.Minute, MaxSize: 100}},
	}
	ctx := context.Background()
	for _, address := range []string{"a@example.edu", "b@example.edu"} {
		reg := relay.Registration{
			User:   relay.User{ID: "usr_" + address, Email: address},
			Exam:   relay.Exam{ObjectID: "exm_1", Schedule: relay.Schedule{OpenDate: time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour)}},
			Portal: relay.Portal{ID: "p"},
		}
		if _, err := store.SwapSchedule(ctx, reg, "task-"+address); err != nil {
			t.Fatal(err)
		}
		item, err := newDigestItem(relay.Destination{Channel: relay.Slack, Name: "slack-1"}, reg, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := store.MarkFannedOut(ctx, reg, []redisstore.DigestItem{item}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.handOverDigests(ctx); err != nil {
		t.Fatal(err)
	}
	if n := gaugeValue(t, w.metrics.digestWaiting); n != 2 {
		t.Errorf("relay_digest_waiting %v, want 2 within the grace", n)
	}

	loopCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.RunDigests(loopCtx); close(done) }()
	defer func() { stop(); <-done }()

	in := asynq.NewInspectorFromRedisClient(rdb)
	var digests []*asynq.TaskInfo
	waitFor(t, "the digest task", func() bool {
		digests, _ = in.ListPendingTasks(tasks.QueueSlack)
		return len(digests) == 1
	})
	d, err := tasks.ParseDigest(digests[0].Payload)
	if err != nil || len(d.Items) != 2 || digests[0].Type != tasks.TypeSlackDigest {
		t.Errorf("a %s of %d items (%v)", digests[0].Type, len(d.Items), err)
	}
	waitFor(t, "relay_digest_waiting at 0", func() bool { return gaugeValue(t, w.metrics.digestWaiting) == 0 })

	redis.Stop()
	time.Sleep(3500 * time.Millisecond)
	redis.Start()
	waitFor(t, "the loop to say the digests are handed over again", func() bool {
		return strings.Contains(logs.String(), "handed to the queue again")
	})
	if n := strings.Count(logs.String(), "cannot hand the due digests"); n != 1 {
		t.Errorf("%d warnings for one outage of 3.5 s, want 1:\n%s", n, logs.String())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 10 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
