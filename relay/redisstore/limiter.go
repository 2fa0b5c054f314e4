package redisstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

// Limiter keeps sends to each destination under a rate, counted in Redis
// so that every worker of every process shares it, spread evenly (no
// burst on top), and holds them all while the destination asked to wait.
type Limiter struct {
	store   *Store
	scope   string
	limiter *redis_rate.Limiter
	limit   redis_rate.Limit
	opts    LimiterOptions

	mu      sync.Mutex
	waiting map[string]int // destination → workers of this process sleeping for a slot
}

// LimiterOptions say how a process waits for its turn.
type LimiterOptions struct {
	// Sleepers is how many workers of this process may sleep for a slot
	// of one destination; another send goes back to the queue, so that
	// not every worker waits while other work is due.
	Sleepers int
	// MaxSleep bounds one worker's sleep; past it the send goes back to
	// the queue.
	MaxSleep time.Duration
	// Backlog, when set, estimates how many sends wait for the scope's
	// destinations: a send handed back to the queue then comes back about
	// when its turn may come, instead of every one at the next slot.
	Backlog func() int
}

// NewLimiter allows n sends per period to each destination of scope
// ("slack", "smtp"), spread evenly: one every period/n.
func (s *Store) NewLimiter(scope string, n int, period time.Duration, opts LimiterOptions) *Limiter {
	return &Limiter{
		store:   s,
		scope:   scope,
		limiter: redis_rate.NewLimiter(s.rdb),
		// Burst 1: the slots are spread evenly over the period.
		limit:   redis_rate.Limit{Rate: n, Burst: 1, Period: period},
		opts:    opts,
		waiting: map[string]int{},
	}
}

// Interval is the time between two sends to one destination.
func (l *Limiter) Interval() time.Duration { return l.limit.Period / time.Duration(l.limit.Rate) }

// Block holds every worker's sends to destination for d, after it asked
// to wait d.
func (l *Limiter) Block(ctx context.Context, destination string, d time.Duration) {
	_ = l.store.rdb.Set(ctx, blockedKey(l.scope, destination), "wait", d).Err()
}

// Blocked is how long sends to destination are still held, or 0.
func (l *Limiter) Blocked(ctx context.Context, destination string) time.Duration {
	ttl, err := l.store.rdb.PTTL(ctx, blockedKey(l.scope, destination)).Result()
	if err != nil || ttl < 0 {
		return 0
	}
	return ttl
}

// Wait returns once destination may be sent to, or a rate-limited error
// for the queue to retry after (which spends no attempt).
func (l *Limiter) Wait(ctx context.Context, destination string) error {
	deadline := time.Now().Add(l.opts.MaxSleep)
	sleeping := false
	defer func() {
		if sleeping {
			l.stopSleeping(destination)
		}
	}()
	for {
		// A "wait" from the destination holds every send to it, not only
		// the one that got it.
		if d := l.Blocked(ctx, destination); d > 0 {
			return relay.Limited(d, fmt.Errorf("%s asked to wait %v", l.scope, d.Round(time.Millisecond)))
		}
		res, err := l.limiter.Allow(ctx, rateKey(l.scope, destination), l.limit)
		if err != nil {
			return relay.Temporary(fmt.Errorf("%s rate limiter: %w", l.scope, err))
		}
		if res.Allowed > 0 {
			return nil
		}
		if !sleeping {
			sleeping = l.startSleeping(destination)
		}
		if !sleeping || time.Now().Add(res.RetryAfter).After(deadline) {
			return relay.Limited(l.handBack(res.RetryAfter), fmt.Errorf("%s destination busy: next slot in %v", l.scope, res.RetryAfter.Round(time.Millisecond)))
		}
		select {
		case <-time.After(res.RetryAfter):
		case <-ctx.Done():
			return relay.Temporary(ctx.Err())
		}
	}
}

// handBack is when a send handed back to the queue should come back: at
// the next slot, or, with a backlog, anywhere in the time the backlog
// takes to go out. Spread evenly over it, the sends come back about as
// fast as slots free, instead of all at once or all too late.
func (l *Limiter) handBack(nextSlot time.Duration) time.Duration {
	if l.opts.Backlog == nil {
		return nextSlot
	}
	drain := time.Duration(l.opts.Backlog()) * l.Interval()
	return max(nextSlot, time.Second, time.Duration(rand.Int64N(int64(min(drain, time.Hour))+1)))
}

func (l *Limiter) startSleeping(destination string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting[destination] >= l.opts.Sleepers {
		return false
	}
	l.waiting[destination]++
	return true
}

func (l *Limiter) stopSleeping(destination string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting[destination]--
}

// Sleeping is how many workers of this process wait for a slot.
func (l *Limiter) Sleeping() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, w := range l.waiting {
		n += w
	}
	return n
}

// throttleScript holds a destination after a refusal: if it is already
// held, the refusal came from a send that started before the hold and
// changes nothing; otherwise it counts a strike and holds for first,
// doubled for each strike before it, at most most. Strikes are forgotten
// once the destination has been left alone for twice the last hold
// without refusing again. It returns the hold in milliseconds.
var throttleScript = redis.NewScript(`
local held = redis.call('PTTL', KEYS[1])
if held > 0 then
  return held
end
local strikes = redis.call('INCR', KEYS[2])
local d, most = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 2, math.min(strikes, 30) do
  d = math.min(2 * d, most)
end
redis.call('SET', KEYS[1], 'wait', 'PX', d)
redis.call('PEXPIRE', KEYS[2], 2 * d + 60000)
return d
`)

// Throttled holds every send to destination after it refused for its own
// reasons ("too many", "quota") and returns for how long: first, then
// twice as long for each refusal that follows the end of a hold, at most
// most.
func (l *Limiter) Throttled(ctx context.Context, destination string, first, most time.Duration) time.Duration {
	ms, err := throttleScript.Run(ctx, l.store.rdb, []string{blockedKey(l.scope, destination), strikesKey(l.scope, destination)},
		first.Milliseconds(), most.Milliseconds()).Int64()
	if err != nil {
		// Redis is away: this send still waits, the others find out.
		return first
	}
	return time.Duration(ms) * time.Millisecond
}
