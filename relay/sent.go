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

// Mark records taskID as delivered. It tries a few times: a lost mark is
// a possible duplicate if the task then runs again.
func (l SentLog) Mark(ctx context.Context, taskID string) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		// A fresh context: the task's own may be ending with the worker.
		markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err = l.Redis.Set(markCtx, sentKey(taskID), time.Now().UTC().Format(time.RFC3339), l.TTL).Err()
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}
