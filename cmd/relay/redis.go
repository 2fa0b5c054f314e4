package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/config"
)

// connectRedis opens RELAY_REDIS_URL, or when embedded an in-memory Redis
// in this process.
func connectRedis(ctx context.Context, cfg config.Config, embedded bool, log *slog.Logger, stdout io.Writer) (redis.UniversalClient, func(), error) {
	if embedded {
		return embeddedRedis(log, stdout)
	}
	if cfg.RedisURL == "" {
		return nil, nil, errors.New("RELAY_REDIS_URL is not set: relay serve and relay work share a Redis (only relay run can do without one, in memory)")
	}
	rdb, err := openRedis(ctx, cfg.RedisURL)
	if err != nil {
		return nil, nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		// Start anyway: the receiver answers 503 and the worker waits until
		// Redis is back, which beats a crash loop under a supervisor.
		log.Error("redis unreachable at start", "err", err)
	} else if err := checkRedisVersion(pingCtx, rdb); err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	return rdb, func() { _ = rdb.Close() }, nil
}

// checkRedisVersion refuses a Redis older than 7, whose SET does not take
// NX with GET: every registration would fail in the worker instead.
// A Redis that hides INFO is given the benefit of the doubt.
func checkRedisVersion(ctx context.Context, rdb redis.UniversalClient) error {
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			major, _, _ := strings.Cut(v, ".")
			if n, err := strconv.Atoi(major); err == nil && n < 7 {
				return fmt.Errorf("RELAY_REDIS_URL: Redis %s; the relay needs Redis 7 or later", v)
			}
		}
	}
	return nil
}

// openRedis makes a client for RELAY_REDIS_URL without talking to it.
func openRedis(_ context.Context, url string) (redis.UniversalClient, error) {
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		// Not the parser's error: it quotes the URL, password and all.
		return nil, errors.New("RELAY_REDIS_URL: want redis://, rediss:// or redis-sentinel:// such as redis://:password@host:6379/0")
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, errors.New("RELAY_REDIS_URL: unsupported kind of Redis")
	}
	return rdb, nil
}

// embeddedRedis is miniredis: enough for asynq, gone when the process
// ends. miniredis only expires keys when told time has passed.
func embeddedRedis(log *slog.Logger, stdout io.Writer) (redis.UniversalClient, func(), error) {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		return nil, nil, fmt.Errorf("embedded redis: %w", err)
	}
	fmt.Fprint(stdout, `
!!! No RELAY_REDIS_URL set: using an in-memory Redis inside this process.
!!! Everything queued is LOST when the relay stops. Fine for a try-out;
!!! for real registrations set RELAY_REDIS_URL=redis://host:6379/0.

`)
	log.Warn("embedded in-memory redis: nothing survives a restart", "addr", mr.Addr())
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				mr.FastForward(time.Second)
			case <-stop:
				return
			}
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	return rdb, func() {
		_ = rdb.Close()
		close(stop)
		mr.Close()
	}, nil
}

// redisLogger sends go-redis's own messages (failed dials while Redis is
// away) to a log, as JSON like everything else. go-redis has one logger per
// process: main sets it before anything connects.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "component", "go-redis")
}
