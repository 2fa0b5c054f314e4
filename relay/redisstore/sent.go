package redisstore

import (
	"context"
	"time"
)

// Sent reports whether delivery was accepted before. asynq re-runs a task
// whose worker died mid-way; if it died after the send, the mark stops a
// second email.
func (s *Store) Sent(ctx context.Context, delivery string) (bool, error) {
	n, err := s.rdb.Exists(ctx, sentKey(delivery)).Result()
	return n > 0, err
}

// MarkSent records delivery to student (an address, or "" for a digest) as
// accepted, for keep. A lost mark is a duplicate email
// if the task then runs again, and the task will run again if Redis was
// away when it finished: so MarkSent keeps trying while Redis comes back,
// for most of the task's 30 s lease.
func (s *Store) MarkSent(ctx context.Context, delivery, student string, keep time.Duration) error {
	// The value says when, and whom by a tag: erasure finds the marks of
	// one student by it.
	value := time.Now().UTC().Format(time.RFC3339) + " " + studentTag(student)
	deadline := time.Now().Add(markPatience)
	wait := 100 * time.Millisecond
	for {
		// A fresh context: the task's own may be ending with the worker.
		markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err := s.rdb.Set(markCtx, sentKey(delivery), value, keep).Err()
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
