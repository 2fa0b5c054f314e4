package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
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
	History    int `json:"historyEntries"`
}

// Forget removes what the store holds about the student with address: their
// ledgers (the dates they were told, what was sent to them), their place
// in today's digest messages, and their history. It reads every key of the
// relay's own, which is slow on a big Redis but is a rare request.
func (s *Store) Forget(ctx context.Context, address string, history *History) (Forgotten, error) {
	var f Forgotten
	tag := studentTag(address)
	var err error
	if f.SentMarks, err = s.deleteTagged(ctx, sentKey("*"), func(v string) bool { return strings.HasSuffix(v, " "+tag) }); err != nil {
		return f, err
	}
	if f.Schedules, err = s.forgetLedgers(ctx, tag); err != nil {
		return f, err
	}
	if f.BoardItems, err = s.forgetOnBoards(ctx, address); err != nil {
		return f, err
	}
	f.History, err = history.forget(ctx, address)
	return f, err
}

// forgetLedgers deletes the student's ledgers: the dates they were told
// and what was delivered to them.
func (s *Store) forgetLedgers(ctx context.Context, tag string) (int, error) {
	deleted := 0
	iter := s.rdb.Scan(ctx, 0, scheduleKey("*"), 500).Iterator()
	for iter.Next(ctx) {
		told, ok, err := s.readLedgerSchedule(ctx, iter.Val())
		if err != nil {
			return deleted, err
		}
		if !ok || told.Student != tag {
			continue
		}
		if err := s.rdb.Del(ctx, iter.Val()).Err(); err != nil {
			return deleted, err
		}
		deleted++
	}
	return deleted, iter.Err()
}

// deleteTagged deletes the string keys matching pattern whose value is
// one of the student's.
func (s *Store) deleteTagged(ctx context.Context, pattern string, theirs func(string) bool) (int, error) {
	deleted := 0
	iter := s.rdb.Scan(ctx, 0, pattern, 500).Iterator()
	for iter.Next(ctx) {
		v, err := s.rdb.Get(ctx, iter.Val()).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired meanwhile
		}
		if err != nil {
			return deleted, err
		}
		if theirs(v) {
			if err := s.rdb.Del(ctx, iter.Val()).Err(); err != nil {
				return deleted, err
			}
			deleted++
		}
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

// forget removes every entry about address, from every index it is in.
func (h *History) forget(ctx context.Context, address string) (int, error) {
	byEmail := HistoryKey{By: HistoryByEmail, Value: address}.indexKey()
	ids, err := h.store.rdb.ZRange(ctx, byEmail, 0, -1).Result()
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	entries, found, err := h.load(ctx, ids)
	if err != nil {
		return 0, err
	}
	_, err = h.store.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			for _, k := range e.keys() {
				p.ZRem(ctx, k.indexKey(), found[i])
			}
		}
		for _, id := range ids {
			p.Del(ctx, historyEntryKey(id))
		}
		p.Del(ctx, byEmail)
		return nil
	})
	return len(entries), err
}
