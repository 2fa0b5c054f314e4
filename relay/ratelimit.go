package relay

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// SlackLimiter keeps the relay under Slack's limit of about one message
// per second per channel, counted in Redis so that every worker shares it.
type SlackLimiter struct {
	rdb     redis.UniversalClient
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	// waiting marks the destinations a worker of this process is already
	// sleeping for: one is enough to take the next slot.
	waiting sync.Map // destination → struct{}
}

func NewSlackLimiter(rdb redis.UniversalClient) *SlackLimiter {
	return &SlackLimiter{
		rdb:     rdb,
		limiter: redis_rate.NewLimiter(rdb),
		limit:   redis_rate.Limit{Rate: 1, Burst: 1, Period: time.Second},
	}
}

func blockKey(destination string) string { return "exam-relay:slack-blocked:" + destination }

// Block holds every worker's posts to destination for d, after Slack
// answered 429 with Retry-After d.
func (l *SlackLimiter) Block(ctx context.Context, destination string, d time.Duration) {
	_ = l.rdb.Set(ctx, blockKey(destination), "429", d).Err()
}

// maxLimiterWait is how long a worker sleeps for its turn; past it the
// task is handed back to the queue rather than holding a worker.
const maxLimiterWait = 3 * time.Second

// Wait returns once destination may be posted to, or a rate-limited
// error for asynq to retry after (without spending an attempt).
func (l *SlackLimiter) Wait(ctx context.Context, destination string) error {
	deadline := time.Now().Add(maxLimiterWait)
	for {
		// Slack's own 429 holds every post to the destination, not only
		// the one that got it.
		if ttl, err := l.rdb.PTTL(ctx, blockKey(destination)).Result(); err == nil && ttl > 0 {
			return rateLimited(ttl, fmt.Errorf("slack asked to wait %v", ttl))
		}
		res, err := l.limiter.Allow(ctx, "exam-relay:slack-rate:"+destination, l.limit)
		if err != nil {
			return temporary(fmt.Errorf("slack rate limiter: %w", err))
		}
		if res.Allowed > 0 {
			return nil
		}
		// A burst makes a digest per exam due at once. Were each to sleep
		// for its turn, they would hold every worker and stall the emails
		// behind them; all but one go back to the queue instead.
		if time.Now().Add(res.RetryAfter).After(deadline) || !l.startWaiting(destination) {
			return rateLimited(res.RetryAfter, fmt.Errorf("slack destination busy: next post in %v", res.RetryAfter))
		}
		select {
		case <-time.After(res.RetryAfter):
			l.waiting.Delete(destination)
		case <-ctx.Done():
			l.waiting.Delete(destination)
			return temporary(ctx.Err())
		}
	}
}

func (l *SlackLimiter) startWaiting(destination string) bool {
	_, taken := l.waiting.LoadOrStore(destination, struct{}{})
	return !taken
}
