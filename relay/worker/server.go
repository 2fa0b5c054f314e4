package worker

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/tasks"
)

// Settings are the knobs of a worker process.
type Settings struct {
	// Concurrency is the tasks each lane (tasks.Lanes) runs at once.
	Concurrency     int
	ShutdownTimeout time.Duration
	// RetrySchedule is the wait before each retry; the last one repeats.
	RetrySchedule []time.Duration
	// Digest is when a digest's items are posted.
	Digest redisstore.DigestWindow
}

// Servers are the asynq servers that run a worker's tasks, one per lane
// (tasks.Lanes), each on Concurrency slots of its own.
type Servers struct {
	servers []*asynq.Server
	// stops end the handlers' goroutines, after their server's Shutdown.
	stops []func()
}

// Start runs w's tasks from rdb until Shutdown: the one place the relay's
// asynq configuration is made.
func (w *Worker) Start(rdb redis.UniversalClient) (*Servers, error) {
	var all Servers
	for _, queues := range tasks.Lanes {
		server := asynq.NewServerFromRedisClient(rdb, w.serverConfig(queues))
		handler, stop := w.handler()
		if err := server.Start(handler); err != nil {
			stop()
			all.Shutdown()
			return nil, err
		}
		all.servers = append(all.servers, server)
		all.stops = append(all.stops, stop)
	}
	return &all, nil
}

// Shutdown stops every lane taking tasks, then waits for those in flight,
// up to ShutdownTimeout, and hands the rest back to the queue. The lanes
// wait together: one after the other, each would take new tasks while
// the one before it waited.
func (s *Servers) Shutdown() {
	for _, server := range s.servers {
		server.Stop()
	}
	var wg sync.WaitGroup
	for _, server := range s.servers {
		wg.Go(server.Shutdown)
	}
	wg.Wait()
	for _, stop := range s.stops {
		stop()
	}
}

func (w *Worker) serverConfig(queues map[string]int) asynq.Config {
	s := w.settings
	return asynq.Config{
		Concurrency:    s.Concurrency,
		Queues:         queues,
		RetryDelayFunc: retryDelay(s.RetrySchedule),
		IsFailure:      isFailure,
		// Idle queues are polled this often; asynq's 1 s default would add
		// up to a second to every quiet-time registration.
		TaskCheckInterval: 200 * time.Millisecond,
		// Retries and rate-limit waits become due with this precision.
		DelayedTaskCheckInterval: time.Second,
		ShutdownTimeout:          s.ShutdownTimeout,
		Logger:                   asynqLogger{w.log},
		LogLevel:                 asynq.WarnLevel,
		// For the digest items asynq's groups held before the relay kept
		// them itself (RunDigests).
		GroupAggregator:  asynq.GroupAggregatorFunc(w.aggregate),
		GroupGracePeriod: s.Digest.Grace,
		GroupMaxDelay:    s.Digest.MaxDelay,
		GroupMaxSize:     s.Digest.MaxSize,
	}
}

// retryDelay waits what the other side asked for when it asked, else
// follows the schedule with up to 20% jitter, so that a burst that failed
// together does not retry together. An email the fan-out tried first
// goes on from where the fan-out's attempts left the schedule.
func retryDelay(schedule []time.Duration) asynq.RetryDelayFunc {
	return func(n int, err error, t *asynq.Task) time.Duration {
		if d := relay.RetryAfterOf(err); d > 0 {
			return d
		}
		if t != nil {
			n += tasks.Tried(t)
		}
		d := schedule[min(n, len(schedule)-1)]
		return d + rand.N(d/5+1)
	}
}

// isFailure is asynq's IsFailure: waiting out a rate limit spends no
// attempt.
func isFailure(err error) bool {
	return relay.OutcomeOf(err).Next() != relay.RetryAfter
}

// asynqLogger sends asynq's own messages to the relay's log.
type asynqLogger struct{ log *slog.Logger }

func (l asynqLogger) Debug(args ...any) { l.log.Debug(fmt.Sprint(args...)) }
func (l asynqLogger) Info(args ...any)  { l.log.Info(fmt.Sprint(args...)) }
func (l asynqLogger) Warn(args ...any)  { l.log.Warn(fmt.Sprint(args...)) }
func (l asynqLogger) Error(args ...any) { l.log.Error(fmt.Sprint(args...)) }
func (l asynqLogger) Fatal(args ...any) { l.log.Error(fmt.Sprint(args...)) }
