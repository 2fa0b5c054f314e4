package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

// Forgotten counts what Forget removed.
type Forgotten struct {
	// SentMarks are marks written before the ledger, until they expire.
	SentMarks int `json:"sentMarks"`
	// Schedules are the student's ledgers: one per exam, with the dates
	// they were told and what was delivered.
	Schedules int `json:"schedules"`
	// BoardItems are the student's lines removed from today's digest
	// messages the relay remembers (the Slack messages themselves stay).
	BoardItems int `json:"digestBoardItems"`
	// DigestItems are the student's lines removed from the digests
	// waiting to be posted.
	DigestItems int `json:"digestItems"`
	History     int `json:"historyEntries"`
}

// Forget removes what the store holds about the student with address: their
// ledgers (the dates they were told, what was sent to them), their place
// in the digests waiting and in today's digest messages, and their
// history. It reads every key of the
// relay's own, which is slow on a big Redis but is a rare request.
func (s *Store) Forget(ctx context.Context, address string, history *History) (Forgotten, error) {
	var f Forgotten
	tag := studentTag(address)
	var err error
	if f.SentMarks, err = s.deleteTheirs(ctx, sentKey("*"), func(key string) (bool, error) {
		v, err := s.rdb.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			return false, nil // expired meanwhile
		}
		return strings.HasSuffix(v, " "+tag), err
	}); err != nil {
		return f, err
	}
	if f.Schedules, err = s.deleteTheirs(ctx, scheduleKey("*"), func(key string) (bool, error) {
		told, ok, err := s.readLedgerSchedule(ctx, key)
		return ok && told.Student == tag, err
	}); err != nil {
		return f, err
	}
	if f.DigestItems, err = s.forgetInDigests(ctx, address); err != nil {
		return f, err
	}
	if f.BoardItems, err = s.forgetOnBoards(ctx, address); err != nil {
		return f, err
	}
	f.History, err = history.forget(ctx, address)
	return f, err
}

// deleteTheirs deletes the keys matching pattern that theirs says are
// the student's.
func (s *Store) deleteTheirs(ctx context.Context, pattern string, theirs func(key string) (bool, error)) (int, error) {
	deleted := 0
	iter := s.rdb.Scan(ctx, 0, pattern, 500).Iterator()
	for iter.Next(ctx) {
		ok, err := theirs(iter.Val())
		if err != nil {
			return deleted, err
		}
		if !ok {
			continue
		}
		if err := s.rdb.Del(ctx, iter.Val()).Err(); err != nil {
			return deleted, err
		}
		deleted++
	}
	return deleted, iter.Err()
}

// forgetOnBoards takes the student out of the lists of today's digest
// messages.
func (s *Store) forgetOnBoards(ctx context.Context, address string) (int, error) {
	removed := 0
	iter := s.rdb.Scan(ctx, 0, boardKey("*", "*", "*"), 500).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if strings.HasSuffix(key, ":lock") {
			continue
		}
		raw, err := s.rdb.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return removed, err
		}
		var e BoardEntry
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		kept := e.Items[:0]
		for _, item := range e.Items {
			if !strings.EqualFold(item.Registration.User.Email, address) {
				kept = append(kept, item)
			}
		}
		if len(kept) == len(e.Items) {
			continue
		}
		removed += len(e.Items) - len(kept)
		e.Items = kept
		ttl := s.rdb.TTL(ctx, key).Val()
		b, _ := json.Marshal(e)
		if err := s.rdb.Set(ctx, key, b, max(ttl, 0)).Err(); err != nil {
			return removed, err
		}
	}
	return removed, iter.Err()
}

// forget removes every entry about address and the student's place in
// the indexes by user and exam.
func (h *History) forget(ctx context.Context, address string) (int, error) {
	if address == "" {
		return 0, nil
	}
	tag := studentTag(address)
	var entries *redis.IntCmd
	_, err := h.store.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		entries = p.LLen(ctx, historyStudentKey(tag))
		p.Del(ctx, historyStudentKey(tag))
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Every index, not only those the student's entries name: an index
	// keeps the student until its next write after their last entry for
	// it left the retention, and by then the list no longer names it.
	var cursor uint64
	for {
		indexes, next, err := h.store.rdb.Scan(ctx, cursor, historyStudentsKey("*", "*"), 500).Result()
		if err != nil {
			return int(entries.Val()), err
		}
		if len(indexes) > 0 {
			if _, err := h.store.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, index := range indexes {
					p.ZRem(ctx, index, tag)
				}
				return nil
			}); err != nil {
				return int(entries.Val()), err
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	first, err := h.forgetFirstLayout(ctx, address)
	return int(entries.Val()) + first, err
}

// forgetFirstLayout removes the student's entries of the history's first
// layout and their index by address. The ids left in its indexes by user
// and exam name nothing once the entries are gone, and expire.
func (h *History) forgetFirstLayout(ctx context.Context, address string) (int, error) {
	byEmail := firstHistoryIndexKey(HistoryByEmail, relay.Hash(strings.ToLower(address)))
	ids, err := h.store.rdb.ZRange(ctx, byEmail, 0, -1).Result()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = firstHistoryEntryKey(id)
	}
	var deleted *redis.IntCmd
	_, err = h.store.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		deleted = p.Del(ctx, keys...)
		p.Del(ctx, byEmail)
		return nil
	})
	return int(deleted.Val()), err
}
