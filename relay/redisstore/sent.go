package redisstore

import (
	"context"
	"time"
)

// Sent reports whether delivery, one about no single student (a staff
// digest), was accepted before; the ledger keeps the rest. asynq re-runs a
// task whose worker died mid-way; if it died after the send, the mark
// stops a second post.
func (s *Store) Sent(ctx context.Context, delivery string) (bool, error) {
	n, err := s.rdb.Exists(ctx, sentKey(delivery)).Result()
	return n > 0, err
}

// MarkSent records delivery as accepted, for the retention, as patiently
// as MarkDelivered.
func (s *Store) MarkSent(ctx context.Context, delivery string) error {
	value := time.Now().UTC().Format(time.RFC3339)
	return patiently(ctx, func(ctx context.Context) error {
		return s.rdb.Set(ctx, sentKey(delivery), value, s.retention).Err()
	})
}
