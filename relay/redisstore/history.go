package redisstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

// HistoryEntry is one thing the relay did for a registration: an email
// sent or refused, a staff message posted. The short JSON names keep an
// entry small in Redis, where it is stored as it is encoded.
type HistoryEntry struct {
	Time time.Time `json:"-"`
	// At is Time in Unix milliseconds, as stored: a third of the bytes of
	// RFC 3339 text. It must stay the first field encoded: recordScript
	// reads it from the start of the entry.
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
//
// Each student's entries are one Redis list (historyStudentKey, by the
// hashed address), oldest first, trimmed on each write. A user id and an
// exam each have a sorted set of the students with entries for them
// (historyStudentsKey), so a student costs two keys whatever their number
// of entries: the list and the index of their user id (an exam's index is
// shared by its students). Entries that name no student, the staff
// digests, have a list per exam (historyStaffKey).
//
// A list and not a sorted set of entries: Redis keeps a small sorted set
// compact only while each member is at most 64 bytes, and an entry is
// about 350. As a sorted set, a student with one entry cost 1,400 bytes,
// mostly the skiplist's header; as a list, 640.
//
// Redis may still hold entries of the first layout (firstHistoryEntryKey):
// they are not read, and expire with the retention.
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

// OneHistoryKey is the key for the one of email, user id and exam id
// given, or false when none or several are: a search asks by one.
func OneHistoryKey(email, user, exam string) (HistoryKey, bool) {
	var keys []HistoryKey
	for _, k := range []HistoryKey{{HistoryByEmail, email}, {HistoryByUser, user}, {HistoryByExam, exam}} {
		if k.Value != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 {
		return HistoryKey{}, false
	}
	return keys[0], true
}

// about says whether e is one of the entries k asks for. A list read for
// k can hold others: the student's entries for other exams, or under
// another user id.
func (e HistoryEntry) about(k HistoryKey) bool {
	switch k.By {
	case HistoryByEmail:
		return strings.EqualFold(e.Email, k.Value)
	case HistoryByUser:
		return e.User == k.Value
	case HistoryByExam:
		return e.Exam == k.Value
	}
	return false
}

// historyTag stands for a user or exam id in key names and index
// members: ids, like addresses, stay out of what anyone who lists keys
// sees.
func historyTag(id string) string { return relay.Hash(id)[:16] }

// recordScript appends an entry to its list and drops the entries at the
// head that are older than the retention, then puts the list's student in
// the indexes of the entry's user and exam, dropping those whose last
// entry is older than the retention. Every key expires a retention after
// its last write.
//
// KEYS[1] is the list, KEYS[2..] the indexes. ARGV: the entry, its time,
// the oldest time kept (Unix ms), the retention (ms), the student's tag.
var recordScript = redis.NewScript(`
local oldest = tonumber(ARGV[3])
-- A list this entry starts holds nothing older.
if redis.call('RPUSH', KEYS[1], ARGV[1]) > 1 then
  while true do
    local head = redis.call('LINDEX', KEYS[1], 0)
    local t = head and tonumber(string.match(head, '^{"t":(%d+)'))
    if not t or t >= oldest then
      break
    end
    redis.call('LPOP', KEYS[1])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
for i = 2, #KEYS do
  redis.call('ZADD', KEYS[i], 'GT', ARGV[2], ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[i], ARGV[4])
end
return 0
`)

// Record keeps e, in one round trip. An entry that names neither a
// student nor an exam could never be found, so it is not kept.
func (h *History) Record(ctx context.Context, e HistoryEntry) error {
	keys, args, err := h.recordArgs(e)
	if err != nil || keys == nil {
		return err
	}
	return recordScript.Run(ctx, h.store.rdb, keys, args...).Err()
}

// MarkAndRecord writes m to the ledger and keeps e, in one round trip:
// what a worker does after every delivery. The mark is then tried again
// as MarkDelivered tries it, if it must be; the entry is not, and its
// failure comes second.
func (h *History) MarkAndRecord(ctx context.Context, m Mark, e HistoryEntry) (markErr, recordErr error) {
	keys, args, err := h.recordArgs(e)
	if err != nil || keys == nil {
		return h.store.writeMark(ctx, m), err
	}
	writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	pipe := h.store.rdb.Pipeline()
	markKeys, markArgs := m.args()
	mark := markScript.EvalSha(writeCtx, pipe, markKeys, markArgs...)
	record := recordScript.EvalSha(writeCtx, pipe, keys, args...)
	_, _ = pipe.Exec(writeCtx) // each command's error is its own
	if markErr = mark.Err(); markErr != nil {
		markErr = h.store.writeMark(ctx, m)
	}
	if recordErr = record.Err(); redis.HasErrorPrefix(recordErr, "NOSCRIPT") {
		// Redis restarted, or failed over, since the script last ran:
		// nothing was written.
		recordErr = recordScript.Run(writeCtx, h.store.rdb, keys, args...).Err()
	}
	return markErr, recordErr
}

// recordArgs are the keys and arguments of recordScript for e; no keys
// when e is not to be kept.
func (h *History) recordArgs(e HistoryEntry) (keys []string, args []any, err error) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.At = e.Time.UnixMilli()
	student := studentTag(e.Email)
	switch {
	case e.Email != "":
		keys = append(keys, historyStudentKey(student))
		if e.User != "" {
			keys = append(keys, historyStudentsKey(HistoryByUser, historyTag(e.User)))
		}
		if e.Exam != "" {
			keys = append(keys, historyStudentsKey(HistoryByExam, historyTag(e.Exam)))
		}
	case e.Exam != "":
		keys = append(keys, historyStaffKey(historyTag(e.Exam)))
	default:
		return nil, nil, nil
	}
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	// Message-IDs are <…>: as they are, not \u003c…\u003e.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return nil, nil, err
	}
	oldest := e.Time.Add(-h.retention).UnixMilli()
	return keys, []any{bytes.TrimSpace(raw.Bytes()), e.At, oldest, h.retention.Milliseconds(), student}, nil
}

// Find is the entries for k, newest first, at most limit (0: all).
func (h *History) Find(ctx context.Context, k HistoryKey, limit int) ([]HistoryEntry, error) {
	since := time.Now().Add(-h.retention).UnixMilli()
	switch k.By {
	case HistoryByEmail:
		entries, err := h.read(ctx, k, since, []string{historyStudentKey(studentTag(k.Value))})
		return newestFirst(entries, limit), err
	case HistoryByUser:
		students, err := h.store.rdb.ZRangeByScore(ctx, historyStudentsKey(HistoryByUser, historyTag(k.Value)),
			&redis.ZRangeBy{Min: fmt.Sprint(since), Max: "+inf"}).Result()
		if err != nil {
			return nil, err
		}
		lists := make([]string, len(students))
		for i, s := range students {
			lists[i] = historyStudentKey(s)
		}
		entries, err := h.read(ctx, k, since, lists)
		return newestFirst(entries, limit), err
	case HistoryByExam:
		return h.findByExam(ctx, k, since, limit)
	}
	return nil, fmt.Errorf("history: cannot find by %q", k.By)
}

// findByExam reads the exam's staff entries, then its students' lists, the
// most recent students first, a page at a time. Once limit entries are
// newer than the next student's last entry for the exam, no later page can
// change the answer: an exam of thousands of students costs a page or two.
func (h *History) findByExam(ctx context.Context, k HistoryKey, since int64, limit int) ([]HistoryEntry, error) {
	const page = 100
	tag := historyTag(k.Value)
	students, err := h.store.rdb.ZRevRangeByScoreWithScores(ctx, historyStudentsKey(HistoryByExam, tag),
		&redis.ZRangeBy{Min: fmt.Sprint(since), Max: "+inf"}).Result()
	if err != nil {
		return nil, err
	}
	found, err := h.read(ctx, k, since, []string{historyStaffKey(tag)})
	if err != nil {
		return nil, err
	}
	found = newestFirst(found, limit)
	for len(students) > 0 {
		if limit > 0 && len(found) >= limit && found[limit-1].At >= int64(students[0].Score) {
			break
		}
		n := min(page, len(students))
		lists := make([]string, n)
		for i, s := range students[:n] {
			lists[i] = historyStudentKey(s.Member.(string))
		}
		more, err := h.read(ctx, k, since, lists)
		if err != nil {
			return nil, err
		}
		found = newestFirst(append(found, more...), limit)
		students = students[n:]
	}
	return found, nil
}

// read is the entries about k in lists, none older than since (Unix ms): a
// list keeps entries past the retention until its next write trims them.
// Each list's entries come newest first, as appended.
func (h *History) read(ctx context.Context, k HistoryKey, since int64, lists []string) ([]HistoryEntry, error) {
	if len(lists) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringSliceCmd, len(lists))
	_, err := h.store.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, list := range lists {
			cmds[i] = p.LRange(ctx, list, 0, -1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []HistoryEntry
	for _, cmd := range cmds {
		raw := cmd.Val()
		for i := len(raw) - 1; i >= 0; i-- {
			var e HistoryEntry
			if json.Unmarshal([]byte(raw[i]), &e) != nil || e.At < since || !e.about(k) {
				continue
			}
			e.Time = time.UnixMilli(e.At)
			out = append(out, e)
		}
	}
	return out, nil
}

// newestFirst sorts entries by time, newest first, keeping the order of
// entries of the same millisecond, and keeps at most limit (0: all).
func newestFirst(entries []HistoryEntry, limit int) []HistoryEntry {
	slices.SortStableFunc(entries, func(a, b HistoryEntry) int { return cmp.Compare(b.At, a.At) })
	if limit > 0 && len(entries) > limit {
		entries = entries[:limit]
	}
	return entries
}
