package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

// HistoryEntry is one thing the relay did for a registration: an email
// sent or refused, a staff message posted. The short JSON names keep an
// entry well under a kilobyte in Redis.
type HistoryEntry struct {
	Time time.Time `json:"-"`
	// At is Time in Unix milliseconds, as stored: a third of the bytes of
	// RFC 3339 text.
	At int64 `json:"t"`
	// Channel is email or slack; Kind is confirmation, reminder, alert or
	// digest.
	Channel string `json:"c"`
	Kind    string `json:"k"`
	// Status is sent, retrying, failed or skipped.
	Status       string `json:"s"`
	Registration string `json:"r,omitempty"`
	Email        string `json:"a,omitempty"`
	User         string `json:"u,omitempty"`
	Exam         string `json:"e,omitempty"`
	ExamName     string `json:"n,omitempty"`
	Route        string `json:"rt,omitempty"`
	// MessageID is the email's Message-ID header, as the mail server saw it.
	MessageID string `json:"m,omitempty"`
	// Detail is the mail server's reply, or the error.
	Detail string `json:"d,omitempty"`
}

// History statuses.
const (
	HistorySent     = "sent"
	HistoryRetrying = "retrying"
	HistoryFailed   = "failed"
	HistorySkipped  = "skipped"
)

// History keeps entries for its retention, findable by the student's
// address, their user id and the exam.
type History struct {
	store     *Store
	retention time.Duration
}

// NewHistory keeps entries for retention.
func (s *Store) NewHistory(retention time.Duration) *History {
	return &History{store: s, retention: retention}
}

// HistoryKey says which entries to look up: by email address, user id or
// exam id.
type HistoryKey struct {
	By    string // HistoryByEmail, HistoryByUser or HistoryByExam
	Value string
}

const (
	HistoryByEmail = "email"
	HistoryByUser  = "user"
	HistoryByExam  = "exam"
)

// keys are the indexes e belongs to.
func (e HistoryEntry) keys() []HistoryKey {
	var ks []HistoryKey
	for _, k := range []HistoryKey{{HistoryByEmail, e.Email}, {HistoryByUser, e.User}, {HistoryByExam, e.Exam}} {
		if k.Value != "" {
			ks = append(ks, k)
		}
	}
	return ks
}

// indexKey is the sorted set of an index. The value is hashed: addresses
// and ids stay out of key names, which Redis shows to anyone who lists
// keys; addresses compare without regard to case.
func (k HistoryKey) indexKey() string {
	v := k.Value
	if k.By == HistoryByEmail {
		v = strings.ToLower(v)
	}
	return historyIndexKey(k.By, relay.Hash(v))
}

// Record keeps e. The entry expires with the retention; the indexes are
// trimmed on each write and expire when nothing is written to them.
func (h *History) Record(ctx context.Context, e HistoryEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.At = e.Time.UnixMilli()
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	// Message-IDs are <…>: as they are, not \u003c…\u003e.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return err
	}
	id := historyID(e.Time)
	score := float64(e.Time.UnixMilli())
	oldest := fmt.Sprint(e.Time.Add(-h.retention).UnixMilli())
	_, err := h.store.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, historyEntryKey(id), bytes.TrimSpace(raw.Bytes()), h.retention)
		for _, k := range e.keys() {
			index := k.indexKey()
			p.ZAdd(ctx, index, redis.Z{Score: score, Member: id})
			p.ZRemRangeByScore(ctx, index, "-inf", "("+oldest)
			p.Expire(ctx, index, h.retention)
		}
		return nil
	})
	return err
}

// historyID is unique and short: it is written four times, as the
// entry's key and in each index.
func historyID(t time.Time) string {
	id := make([]byte, 10)
	binary.BigEndian.PutUint64(id, uint64(t.UnixMilli())<<16)
	_, _ = rand.Read(id[6:])
	return base64.RawURLEncoding.EncodeToString(id)
}

// Find is the entries for k, newest first, at most limit.
func (h *History) Find(ctx context.Context, k HistoryKey, limit int) ([]HistoryEntry, error) {
	ids, err := h.store.rdb.ZRevRange(ctx, k.indexKey(), 0, int64(limit)-1).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	entries, _, err := h.load(ctx, ids)
	return entries, err
}

func (h *History) load(ctx context.Context, ids []string) ([]HistoryEntry, []string, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = historyEntryKey(id)
	}
	values, err := h.store.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, nil, err
	}
	var out []HistoryEntry
	var found []string
	for i, v := range values {
		s, ok := v.(string)
		if !ok {
			continue // expired
		}
		var e HistoryEntry
		if json.Unmarshal([]byte(s), &e) == nil {
			e.Time = time.UnixMilli(e.At)
			out = append(out, e)
			found = append(found, ids[i])
		}
	}
	return out, found, nil
}
