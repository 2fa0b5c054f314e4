package relay

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentLog remembers which deliveries a mail server or Slack has accepted.
// asynq re-runs a task whose worker died mid-way; if it died after the
// send, the mark stops a second email.
type SentLog struct {
	Redis redis.UniversalClient
	// TTL matches the tasks' retention: as long as a repeat is recognised.
	TTL time.Duration
}

func sentKey(taskID string) string { return "exam-relay:sent:" + taskID }

// Sent reports whether taskID was delivered before.
func (l SentLog) Sent(ctx context.Context, taskID string) (bool, error) {
	n, err := l.Redis.Exists(ctx, sentKey(taskID)).Result()
	return n > 0, err
}

// Mark records taskID as delivered. A lost mark is a duplicate email if
// the task then runs again, and the task will run again if Redis was away
// when it finished: so Mark keeps trying while Redis comes back, for most
// of the task's 30 s lease.
func (l SentLog) Mark(ctx context.Context, taskID string) error {
	deadline := time.Now().Add(markPatience)
	wait := 100 * time.Millisecond
	for {
		// A fresh context: the task's own may be ending with the worker.
		markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err := l.Redis.Set(markCtx, sentKey(taskID), time.Now().UTC().Format(time.RFC3339), l.TTL).Err()
		cancel()
		if err == nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

// markPatience stays inside asynq's 30 s lease, after which the task
// would be handed to another worker anyway.
const markPatience = 20 * time.Second
