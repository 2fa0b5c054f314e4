package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/exam-relay/relay/relay"
)

// Limiter keeps posts to each destination under a rate, counted in Redis
// so that every worker shares it, and holds them all while the
// destination asked to wait.
type Limiter struct {
	store   *Store
	scope   string
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	// waiting marks the destinations a worker of this process is already
	// sleeping for: one is enough to take the next slot.
	waiting sync.Map // destination → struct{}
}

// NewLimiter allows n posts per period to each destination of scope
// ("slack"), spread evenly: no burst.
func (s *Store) NewLimiter(scope string, n int, period time.Duration) *Limiter {
	return &Limiter{
		store:   s,
		scope:   scope,
		limiter: redis_rate.NewLimiter(s.rdb),
		limit:   redis_rate.Limit{Rate: n, Burst: 1, Period: period},
	}
}

// Block holds every worker's posts to destination for d, after it
// answered "too many requests, retry after d".
func (l *Limiter) Block(ctx context.Context, destination string, d time.Duration) {
	_ = l.store.rdb.Set(ctx, blockedKey(l.scope, destination), "429", d).Err()
}

// maxLimiterWait is how long a worker sleeps for its turn; past it the
// task is handed back to the queue rather than holding a worker.
const maxLimiterWait = 3 * time.Second

// Wait returns once destination may be posted to, or a rate-limited
// error for the queue to retry after (without spending an attempt).
func (l *Limiter) Wait(ctx context.Context, destination string) error {
	deadline := time.Now().Add(maxLimiterWait)
	for {
		// A 429 holds every post to the destination, not only the one
		// that got it.
		if ttl, err := l.store.rdb.PTTL(ctx, blockedKey(l.scope, destination)).Result(); err == nil && ttl > 0 {
			return relay.Limited(ttl, fmt.Errorf("%s asked to wait %v", l.scope, ttl))
		}
		res, err := l.limiter.Allow(ctx, rateKey(l.scope, destination), l.limit)
		if err != nil {
			return relay.Temporary(fmt.Errorf("%s rate limiter: %w", l.scope, err))
		}
		if res.Allowed > 0 {
			return nil
		}
		// A burst makes a digest per exam due at once. Were each to sleep
		// for its turn, they would hold every worker and stall the emails
		// behind them; all but one go back to the queue instead.
		if time.Now().Add(res.RetryAfter).After(deadline) || !l.startWaiting(destination) {
			return relay.Limited(res.RetryAfter, fmt.Errorf("%s destination busy: next post in %v", l.scope, res.RetryAfter))
		}
		select {
		case <-time.After(res.RetryAfter):
			l.waiting.Delete(destination)
		case <-ctx.Done():
			l.waiting.Delete(destination)
			return relay.Temporary(ctx.Err())
		}
	}
}

func (l *Limiter) startWaiting(destination string) bool {
	_, taken := l.waiting.LoadOrStore(destination, struct{}{})
	return !taken
}
