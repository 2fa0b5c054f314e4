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
	rdb.AddHook(authBackoff{pause: time.Second})
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		// Start anyway, even with a refused password: the receiver keeps
		// registrations in its spool and the worker waits, which beats a
		// crash loop that loses every webhook sent meanwhile.
		log.Error("redis not usable at start; the receiver spools and the worker waits", "err", redisProblem(err).Error())
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

// openRedis makes a client for RELAY_REDIS_URL without talking to it: for
// redis-sentinel://, one that asks the Sentinels for the master and
// follows it through a failover.
func openRedis(_ context.Context, url string) (redis.UniversalClient, error) {
	target, err := config.ParseRedisURL(url)
	if err != nil {
		return nil, fmt.Errorf("RELAY_REDIS_URL (redis_url): %w", err)
	}
	if target.Failover != nil {
		return redis.NewFailoverClient(target.Failover), nil
	}
	return redis.NewClient(target.Server), nil
}

// redisProblem says what err means for the person who set
// RELAY_REDIS_URL: a refused password is a mistake in the URL, not an
// outage.
func redisProblem(err error) error {
	switch {
	case redis.IsAuthError(err) && strings.Contains(err.Error(), "sentinel"):
		return fmt.Errorf("RELAY_REDIS_URL: the Sentinels refused the password: %s (%w)", sentinelPasswordHint, err)
	case redis.IsAuthError(err):
		return fmt.Errorf("RELAY_REDIS_URL: Redis refused the password (WRONGPASS/NOAUTH): check the password in the URL (%w)", err)
	}
	return fmt.Errorf("RELAY_REDIS_URL: %w", err)
}

// sentinelPasswordHint is where a Sentinel's password comes from.
const sentinelPasswordHint = "check sentinel_password in the URL, or the URL's password when sentinel_password is not given"

// authBackoff holds back a caller whose command Redis refused for its
// password. go-redis backs off between failed dials when Redis is away,
// but a refused password fails after the dial, at once; and asynq's
// processor asks again as soon as a dequeue fails. Without the pause a
// worker with a wrong or rotated password dials, is refused, and dials
// again in a tight loop: most of a CPU core, and thousands of connections
// a second.
type authBackoff struct{ pause time.Duration }

func (authBackoff) DialHook(next redis.DialHook) redis.DialHook { return next }

func (b authBackoff) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		switch cmd.Name() {
		case "hello", "auth":
			// go-redis's own, opening a connection for a command of ours:
			// that command pauses, once.
		default:
			b.after(ctx, err)
		}
		return err
	}
}

func (b authBackoff) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		b.after(ctx, err)
		return err
	}
}

func (b authBackoff) after(ctx context.Context, err error) {
	if !redis.IsAuthError(err) {
		return
	}
	t := time.NewTimer(b.pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
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
