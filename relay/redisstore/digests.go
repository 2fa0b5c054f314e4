package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

// The digests' items wait in Redis until they are posted: a list per
// digest (a staff channel, a destination and an exam: its group), and an
// index of the digests with items, scored by when the first came. The
// fan-out adds a student's items in the script that marks it done, so
// that each is added once whatever re-runs; a worker's digest loop
// (Store.DueDigests) cuts a due list into a batch and hands it to the
// queue as one digest task.
//
// asynq's groups did this before. They cost each item an asynq task of its
// own (a record, an entry in the group's set, a script to add, then three
// commands to aggregate and delete it), about a third of Redis's time for
// each email, and asynq cut one batch per group per check, so that a
// digest fell behind a long drain. Items already in asynq's groups from
// before are still aggregated by asynq.

// A DigestItem is one student's line in a staff digest, added when the
// fan-out marks itself done.
type DigestItem struct {
	Channel relay.Channel
	// Group names the digest: one per destination and exam.
	Group string
	// Item is the relay.DigestItem as JSON, stored as it is.
	Item []byte
}

// digestMember is a digest's name in the index: its channel, then its
// group.
func digestMember(channel relay.Channel, group string) string { return string(channel) + " " + group }

// A DigestBatch is a digest's items cut from its list, kept until the
// queue holds it as a task (Store.HandedOver).
type DigestBatch struct {
	// ID is the batch's own: the digest task's id, so that a batch handed
	// over twice (a worker stopped before HandedOver) is queued once.
	ID      string
	Channel relay.Channel
	Group   string
	Items   [][]byte
}

// DigestWindow is when a digest is due: once no item came for Grace, or
// MaxDelay after its first, or at MaxSize items, which a batch holds at
// most.
type DigestWindow struct {
	Grace, MaxDelay time.Duration
	MaxSize         int
}

// cutScript cuts up to ARGV[1] items from a digest's list into its batch,
// with ARGV[2] as the batch's id at its head, unless the batch holds some
// already: then it returns that batch, which a worker cut and did not hand
// over. A digest with neither items nor a batch leaves the index. ARGV[3]
// is the time now (Unix ms) and ARGV[4] the digest's index member.
//
// KEYS[1] the list, KEYS[2] the batch, KEYS[3] the index, KEYS[4] the
// last items' times. Returns the batch: its id, then its items.
var cutScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.call('LRANGE', KEYS[2], 0, -1)
end
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items == 0 then
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('HDEL', KEYS[4], ARGV[4])
  return {}
end
redis.call('LTRIM', KEYS[1], #items, -1)
redis.call('RPUSH', KEYS[2], ARGV[2])
for i = 1, #items, 1000 do
  redis.call('RPUSH', KEYS[2], unpack(items, i, math.min(i + 999, #items)))
end
redis.call('ZADD', KEYS[3], 'XX', ARGV[3], ARGV[4])
table.insert(items, 1, ARGV[2])
return items
`)

// DueDigests cuts every digest that w says is due into a batch and
// returns the batches, with those cut before and never handed over, and
// how many items wait in the digests, before the cut. A batch stays in
// Redis until HandedOver: a worker that stops before then leaves it for
// the next call, on this worker or another.
func (s *Store) DueDigests(ctx context.Context, now time.Time, w DigestWindow) (batches []DigestBatch, waiting int, err error) {
	firsts, err := s.rdb.ZRangeWithScores(ctx, digestsKey, 0, -1).Result()
	if err != nil || len(firsts) == 0 {
		return nil, 0, err
	}
	lasts, err := s.rdb.HGetAll(ctx, digestLastKey).Result()
	if err != nil {
		return nil, 0, err
	}
	sizes := make([]*redis.IntCmd, len(firsts))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range firsts {
			sizes[i] = p.LLen(ctx, digestItemsKey(z.Member.(string)))
		}
		return nil
	}); err != nil {
		return nil, 0, err
	}
	nowMs := now.UnixMilli()
	var errs []error
	for i, z := range firsts {
		member := z.Member.(string)
		waiting += int(sizes[i].Val())
		last, _ := strconv.ParseInt(lasts[member], 10, 64)
		due := sizes[i].Val() >= int64(w.MaxSize) || sizes[i].Val() == 0 ||
			nowMs-last >= w.Grace.Milliseconds() || nowMs-int64(z.Score) >= w.MaxDelay.Milliseconds()
		if !due {
			continue
		}
		// One digest that cannot be cut holds up none of the others.
		b, err := s.cutDigest(ctx, member, nowMs, w.MaxSize)
		if err != nil {
			errs = append(errs, err)
		} else if b.ID != "" {
			batches = append(batches, b)
		}
	}
	return batches, waiting, errors.Join(errs...)
}

// cutDigest cuts a batch of member's digest, or finds the one cut before;
// none when it has no items.
func (s *Store) cutDigest(ctx context.Context, member string, nowMs int64, maxSize int) (DigestBatch, error) {
	channel, group, ok := strings.Cut(member, " ")
	if !ok {
		return DigestBatch{}, fmt.Errorf("digest index: %q is no digest", member)
	}
	keys := []string{digestItemsKey(member), digestBatchKey(member), digestsKey, digestLastKey}
	got, err := cutScript.Run(ctx, s.rdb, keys, maxSize, newBatchID(), nowMs, member).StringSlice()
	if err != nil || len(got) == 0 {
		return DigestBatch{}, err
	}
	b := DigestBatch{ID: got[0], Channel: relay.Channel(channel), Group: group}
	for _, item := range got[1:] {
		b.Items = append(b.Items, []byte(item))
	}
	return b, nil
}

// newBatchID is unique among batches: a digest task keeps its id in the
// sent marks, so an id used again would be taken for a digest posted.
func newBatchID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(time.Now().UnixMilli(), 36) + "-" + hex.EncodeToString(b[:])
}

// HandedOver forgets b, which the queue now holds. A batch of the same
// digest cut meanwhile has another id and stays.
func (s *Store) HandedOver(ctx context.Context, b DigestBatch) error {
	return handOverScript.Run(ctx, s.rdb, []string{digestBatchKey(digestMember(b.Channel, b.Group))}, b.ID).Err()
}

// handOverScript deletes the batch KEYS[1] when its id is ARGV[1].
var handOverScript = redis.NewScript(`
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)

// forgetInDigests takes the student out of the digests' items and batches
// waiting to be posted.
func (s *Store) forgetInDigests(ctx context.Context, address string) (int, error) {
	removed := 0
	for _, pattern := range []string{digestItemsKey("*"), digestBatchKey("*")} {
		iter := s.rdb.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			items, err := s.rdb.LRange(ctx, iter.Val(), 0, -1).Result()
			if err != nil {
				return removed, err
			}
			for _, raw := range items {
				var item relay.DigestItem
				if json.Unmarshal([]byte(raw), &item) != nil || !strings.EqualFold(item.Registration.User.Email, address) {
					continue
				}
				n, err := s.rdb.LRem(ctx, iter.Val(), 0, raw).Result()
				if err != nil {
					return removed, err
				}
				removed += int(n)
			}
		}
		if err := iter.Err(); err != nil {
			return removed, err
		}
	}
	return removed, nil
}
