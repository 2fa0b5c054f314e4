// Package redisstore keeps what the relay itself remembers in Redis, beside
// asynq's queue: the marks of deliveries made, the dates each student was
// told, today's digest message per exam, and the rate limits shared by
// every worker. keys.go names every key.
package redisstore

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// Store is the relay's own data in one Redis.
type Store struct {
	rdb redis.UniversalClient
	// retention is how long a delivery is remembered: as long as the
	// queue recognises a repeat.
	retention time.Duration
}

// New keeps the relay's data in rdb, remembering deliveries for retention.
func New(rdb redis.UniversalClient, retention time.Duration) *Store {
	return &Store{rdb: rdb, retention: retention}
}
