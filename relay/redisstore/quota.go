package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Quota counts sends to a destination over a rolling window, shared by
// every worker: a mail provider's daily limit. Each send is remembered
// with its time, so the window rolls exactly rather than in buckets.
type Quota struct {
	store  *Store
	scope  string
	limit  int
	window time.Duration
}

// NewQuota allows limit sends to each destination of scope in any window.
func (s *Store) NewQuota(scope string, limit int, window time.Duration) *Quota {
	return &Quota{store: s, scope: scope, limit: limit, window: window}
}

// takeScript forgets sends older than the window and takes a place when
// there is one, on Redis's clock so that every worker counts the same.
// It returns taken (1 or 0), the sends in the window, and when not taken
// the milliseconds until the oldest leaves it.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local used = redis.call('ZCARD', KEYS[1])
if used < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, used + 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, used, tonumber(oldest[2]) + window - now}
`)

// Take claims a place in destination's window. When there is none, it
// returns ok false and how long until one frees. used is the sends in the
// window, this one included; release gives the place back for a send that
// did not happen.
func (q *Quota) Take(ctx context.Context, destination string) (ok bool, used int, wait time.Duration, release func(), err error) {
	member := make([]byte, 8)
	_, _ = rand.Read(member)
	id := hex.EncodeToString(member)
	key := quotaKey(q.scope, destination)
	res, err := takeScript.Run(ctx, q.store.rdb, []string{key}, q.window.Milliseconds(), q.limit, id).Int64Slice()
	if err != nil {
		return false, 0, 0, nil, fmt.Errorf("%s quota: %w", q.scope, err)
	}
	release = func() { _ = q.store.rdb.ZRem(context.WithoutCancel(ctx), key, id).Err() }
	return res[0] == 1, int(res[1]), time.Duration(res[2]) * time.Millisecond, release, nil
}

// Limit is the most sends the window allows.
func (q *Quota) Limit() int { return q.limit }
