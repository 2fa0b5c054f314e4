// Package redisstore keeps what the relay itself remembers in Redis, beside
// asynq's queue: the marks of deliveries made, the dates each student was
// told, the staff digests' items until they are due, today's digest
// message per exam, the delivery history, and the rate limits shared by
// every worker. keys.go names every key.
package redisstore

import (
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
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

// studentTag stands for an address in the values of the relay's own keys:
// erasure finds a student's keys by it, and the address itself is not
// stored. "" for none.
func studentTag(address string) string {
	if address == "" {
		return ""
	}
	return relay.Hash(strings.ToLower(address))[:16]
}
