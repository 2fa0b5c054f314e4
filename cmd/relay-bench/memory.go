package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// memory: what Redis keeps per delivered registration, the relay's beside
// the thin reference's. Each queues the same registrations through its own
// receiver, its worker delivers every one (and the relay posts the digests
// that cover them), then stops; Redis's used_memory and key count are then
// read against the empty Redis before.
func (b *bench) memory(ctx context.Context) (memory, error) {
	n := b.s.memoryN
	res := memory{Registrations: n}
	bodies := registrations("memory", n, b.s.exams)
	var err error
	b.logf("memory: relay serve queues %d registrations, relay work delivers them and their digests", n)
	if res.Relay, err = b.memoryOf(ctx, relayImpl, bodies); err != nil {
		return res, fmt.Errorf("relay: %w", err)
	}
	b.logf("memory: the thin receiver queues %d registrations, the thin worker delivers them", n)
	if res.Thin, err = b.memoryOf(ctx, thinImpl, bodies); err != nil {
		return res, fmt.Errorf("thin: %w", err)
	}
	return res, b.flush(ctx)
}

func (b *bench) memoryOf(ctx context.Context, which impl, bodies [][]byte) (memoryRun, error) {
	n := len(bodies)
	var res memoryRun
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	before, err := b.redisMemory(ctx)
	if err != nil {
		return res, err
	}
	if err := b.queueThrough(ctx, which, bodies); err != nil {
		return res, err
	}
	b.smtp.reset()
	b.slack.reset()
	workers, err := b.startWorkers(ctx, which, 1)
	if err != nil {
		return res, err
	}
	waitErr := b.waitFor(ctx, fmt.Sprintf("%d emails", n), func() bool { return b.smtp.stats().count >= n })
	if waitErr == nil && which == relayImpl && b.slackMode() != "off" {
		waitErr = b.waitFor(ctx, fmt.Sprintf("digests for %d students", n), func() bool {
			_, students, _ := b.slack.stats()
			return students >= n
		})
	}
	// A worker stops once its tasks in flight are done: the sent marks and
	// history entries of the last deliveries are written by then.
	_, stopErr := stopAll(workers)
	st := b.smtp.stats()
	res.Emails, res.Duplicates = st.count, st.dups
	res.Digests, res.DigestStudents, _ = b.slack.stats()
	switch {
	case waitErr != nil:
		return res, fmt.Errorf("%w (got %d emails, digests for %d students)", waitErr, res.Emails, res.DigestStudents)
	case stopErr != nil:
		return res, stopErr
	}

	after, err := b.redisMemory(ctx)
	if err != nil {
		return res, err
	}
	res.UsedMemoryBytes = after.usedMemory - before.usedMemory
	res.Keys = after.keys - before.keys
	res.BytesPerRegistration = float64(res.UsedMemoryBytes) / float64(n)
	res.KeysPerRegistration = float64(res.Keys) / float64(n)
	if res.LeftInQueues, err = b.queued(); err != nil {
		return res, err
	}
	res.ByKey, err = b.keyKinds(ctx)
	return res, err
}

type redisMemory struct {
	usedMemory, keys int64
}

// redisMemory reads INFO memory's used_memory (what Redis's allocator
// holds for data, keys, indexes and clients) and DBSIZE.
func (b *bench) redisMemory(ctx context.Context) (redisMemory, error) {
	var m redisMemory
	info, err := b.rdb.Info(ctx, "memory").Result()
	if err != nil {
		return m, err
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			if m.usedMemory, err = strconv.ParseInt(v, 10, 64); err != nil {
				return m, fmt.Errorf("used_memory: %w", err)
			}
		}
	}
	m.keys, err = b.rdb.DBSize(ctx).Result()
	return m, err
}

// keyKinds counts the keys of each kind and adds up what MEMORY USAGE says
// each holds, most first: where the memory goes.
func (b *bench) keyKinds(ctx context.Context) ([]keyKind, error) {
	kinds := map[string]*keyKind{}
	var cursor uint64
	for {
		keys, next, err := b.rdb.Scan(ctx, cursor, "*", 1000).Result()
		if err != nil {
			return nil, err
		}
		pipe := b.rdb.Pipeline()
		usage := make([]*redis.IntCmd, len(keys))
		for i, key := range keys {
			// SAMPLES 0: every element of a hash or sorted set, not an
			// estimate from five.
			usage[i] = pipe.MemoryUsage(ctx, key, 0)
		}
		// A key gone since SCAN (expired) answers nil: it holds nothing.
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for i, key := range keys {
			pattern := keyPattern(key)
			k := kinds[pattern]
			if k == nil {
				k = &keyKind{Pattern: pattern}
				kinds[pattern] = k
			}
			k.Keys++
			k.Bytes += usage[i].Val()
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	var out []keyKind
	for _, k := range kinds {
		out = append(out, *k)
	}
	slices.SortFunc(out, func(x, y keyKind) int {
		return cmp.Or(cmp.Compare(y.Bytes, x.Bytes), cmp.Compare(x.Pattern, y.Pattern))
	})
	return out, nil
}

// keyPattern is a key with each part that is an id, a hash or a date (has
// anything but lowercase letters, hyphens and braces) written *:
// asynq:{email}:t:email:confirmation:*.
func keyPattern(key string) string {
	parts := strings.Split(key, ":")
	for i, p := range parts {
		if strings.ContainsFunc(p, func(r rune) bool { return (r < 'a' || r > 'z') && !strings.ContainsRune("-{}", r) }) {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, ":")
}
