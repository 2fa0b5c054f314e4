package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

// Board remembers, per destination and exam, the digest message posted
// today and whom it lists, so that a later burst for the same exam can
// update that message instead of posting another.
type Board struct {
	store                   *Store
	destination, group, day string
}

// BoardEntry is today's message for an exam: a reference to update it
// by, and the registrations it lists.
type BoardEntry struct {
	Ref   string             `json:"ref"`
	Items []relay.DigestItem `json:"items"`
}

// Board is the board of group's digests at destination on day (the
// school's date, 2006-01-02).
func (s *Store) Board(destination, group, day string) Board {
	return Board{store: s, destination: destination, group: group, day: day}
}

// Lock is held while one worker posts or updates the message, so that two
// batches of one exam at once (a burst split at max size) do not both post
// a new one. false: another worker holds it.
func (b Board) Lock(ctx context.Context) (unlock func(), ok bool, err error) {
	key := boardLockKey(b.destination, b.group, b.day)
	ok, err = b.store.rdb.SetNX(ctx, key, "1", 30*time.Second).Result()
	if err != nil || !ok {
		return func() {}, false, err
	}
	return func() { b.store.rdb.Del(context.WithoutCancel(ctx), key) }, true, nil
}

// Entry is today's message, or the zero entry when there is none.
func (b Board) Entry(ctx context.Context) (BoardEntry, error) {
	var e BoardEntry
	raw, err := b.store.rdb.Get(ctx, boardKey(b.destination, b.group, b.day)).Bytes()
	if errors.Is(err, redis.Nil) {
		return e, nil
	}
	if err != nil {
		return e, err
	}
	_ = json.Unmarshal(raw, &e)
	return e, nil
}

// Save remembers today's message. Posted is posted: failing to remember it
// only costs a new message instead of an update next time, so a failure
// is not returned.
func (b Board) Save(ctx context.Context, e BoardEntry) {
	raw, err := json.Marshal(e)
	if err != nil {
		return
	}
	_ = b.store.rdb.Set(context.WithoutCancel(ctx), boardKey(b.destination, b.group, b.day), raw, 48*time.Hour).Err()
}
