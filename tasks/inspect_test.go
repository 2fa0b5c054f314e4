package tasks

import (
	"testing"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay/relaytest"
)

func TestRetryAllFailedSkipsQueuesNeverUsed(t *testing.T) {
	rdb := relaytest.StartRedis(t).Client()
	in := asynq.NewInspectorFromRedisClient(rdb)
	client := asynq.NewClientFromRedisClient(rdb)
	// Only the email queue was ever used, as with Teams off and every
	// email sent by the fan-out but this one.
	task, err := NewEmailTask(example(t, "registration.json"), Options{MaxRetry: 3}, 1, "550 no such user")
	if err != nil {
		t.Fatal(err)
	}
	info, err := client.Enqueue(task)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.ArchiveTask(info.Queue, info.ID); err != nil {
		t.Fatal(err)
	}
	for range 10 { // the queues are tried in map order, which varies
		n, err := RetryAllFailed(in)
		if err != nil || n != 1 {
			t.Fatalf("RetryAllFailed = %d, %v; want 1", n, err)
		}
		if err := in.ArchiveTask(info.Queue, info.ID); err != nil {
			t.Fatal(err)
		}
	}
}
