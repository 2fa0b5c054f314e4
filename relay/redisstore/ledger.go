package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

// The ledger is one hash per student and exam: the dates the student was
// last told, and what the relay delivered about those dates (their
// confirmation, each staff alert, each reminder, the fan-out as a whole).
// It is how a repeat of a registration is recognised and how a re-run
// task knows its delivery was made, until the exam is over: one key per
// registration, where whole task records and a mark per delivery were
// kept before.
//
// Fields: "s" is the told schedule (toldSchedule, as JSON); every other
// field is a delivery, named by the worker, whose value is the short id
// of the registration (and so of the dates) it was made for. New dates
// clear the deliveries with the old ones.
const ledgerSchedule = "s"

type toldSchedule struct {
	Schedule relay.Schedule `json:"schedule"`
	// Sequence is the calendar SEQUENCE the student was last sent.
	Sequence int `json:"n,omitempty"`
	// Student tags whom it was told, for erasure.
	Student string `json:"w,omitempty"`
}

// Told is what the student was told before about an exam, as SwapSchedule
// finds it.
type Told struct {
	// Previous is the dates they were told, when they differ.
	Previous *relay.Previous
	// Same is true when they were told these very dates.
	Same bool
	// Sequence is the calendar SEQUENCE to send now: higher than any sent
	// before, as far as the relay remembers, and than the clock's.
	Sequence int
	// Delivered are the deliveries already made for these dates, among
	// those SwapSchedule was asked about.
	Delivered map[string]bool
	// Busy is true when another task is fanning out these very dates (a
	// second webhook for the registration while the first is sent):
	// nothing was recorded, and the caller tries again shortly, when the
	// other has finished.
	Busy bool
}

// afterExam is how long the relay remembers an exam after it is over: a
// registration Synap sends again after that is news again.
const afterExam = 7 * 24 * time.Hour

// UntilOver is how long to remember what a student was told about an exam
// with schedule s: until it is over and a week more, and at least the
// retention.
func (s *Store) UntilOver(sched relay.Schedule) time.Duration {
	return max(s.retention, time.Until(sched.End().Add(afterExam)))
}

// ledgerID is what a delivery's field holds for the registration whose
// ID is id: enough of it to tell two sets of dates for one student apart.
func ledgerID(id string) string { return id[:12] }

// swapScript records the told schedule when there is none, claims the
// fan-out for the task asking (see Told.Busy), and returns what was there
// with the deliveries asked about, in one round trip. A ledger written
// before the hash (a plain string of the schedule, with a separate sent
// mark for the confirmation) is turned into one first, so that an upgrade
// does not make the relay forget what it sent; it is found by HMGET's
// WRONGTYPE, which spares every other swap a TYPE.
//
// KEYS[1] the ledger, KEYS[2] the confirmation's old sent mark, KEYS[3]
// the claim; ARGV[1] the told schedule, ARGV[2] its expiry in ms,
// ARGV[3] the registration's ledger id, ARGV[4] the confirmation's field,
// ARGV[5] the fan-out's field, ARGV[6] the task claiming, ARGV[7] the
// claim's lease in ms, ARGV[8…] the deliveries to return. Returns the
// schedule, the deliveries, and whether the claim was refused.
var swapScript = redis.NewScript(`
local fields = {'s'}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = ARGV[5]
local told = redis.pcall('HMGET', KEYS[1], unpack(fields))
if told.err then
  if not string.find(told.err, 'WRONGTYPE', 1, true) then return told end
  local old = redis.call('GET', KEYS[1])
  local ttl = redis.call('PTTL', KEYS[1])
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 's', old)
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[4], ARGV[3], ARGV[5], ARGV[3])
  end
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
  told = redis.call('HMGET', KEYS[1], unpack(fields))
end
local fannedOut = table.remove(told)
local refused = 0
if fannedOut ~= ARGV[3] then
  local holder = redis.call('SET', KEYS[3], ARGV[6], 'NX', 'PX', ARGV[7], 'GET')
  if holder and holder ~= ARGV[6] then
    refused = 1
  else
    -- This task's own claim, from a run that stopped: a lease anew.
    if holder then redis.call('PEXPIRE', KEYS[3], ARGV[7]) end
    if not told[1] then
      redis.call('HSET', KEYS[1], 's', ARGV[1])
      redis.call('PEXPIRE', KEYS[1], ARGV[2])
    end
  end
end
told[#told + 1] = refused
return told
`)

// Ledger fields the store knows of: the worker names the rest.
const (
	// LedgerConfirmation is the student's confirmation email.
	LedgerConfirmation = "e"
	// LedgerFannedOut is the whole fan-out: staff told, reminders
	// scheduled, the confirmation sent or handed to the email queue.
	LedgerFannedOut = "f"
)

// claimLease bounds how long a fan-out that stopped without a word holds
// up another of the same registration; it outlasts the longest fan-out,
// which may wait a minute for the mail server's rate.
const claimLease = 5 * time.Minute

// SwapSchedule records the dates reg tells the student and says what they
// were told before: other dates, so that the email can say the dates
// changed, or these very dates, with which of the deliveries asked about
// were made for them. Unless the fan-out of these dates is done, it claims
// it for the task claimant until MarkFannedOut or ReleaseFanOut.
func (s *Store) SwapSchedule(ctx context.Context, reg relay.Registration, claimant string, deliveries ...string) (Told, error) {
	subject, id := reg.SubjectID(), reg.ID()
	key, ledger := scheduleKey(subject), ledgerID(id)
	keep := s.UntilOver(reg.Exam.Schedule)
	told := Told{Sequence: relay.CalendarSequence(time.Now())}
	now := toldSchedule{Schedule: reg.Exam.Schedule, Sequence: told.Sequence, Student: studentTag(reg.User.Email)}
	first, _ := json.Marshal(now)
	args := append([]any{first, keep.Milliseconds(), ledger, LedgerConfirmation, LedgerFannedOut, claimant, claimLease.Milliseconds()}, toAny(deliveries)...)
	keys := []string{key, sentKey("email:confirmation:" + id), claimKey(subject)}
	values, err := swapScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return Told{}, err
	}
	if values[len(values)-1] == int64(1) {
		return Told{Busy: true}, nil
	}
	raw, ok := values[0].(string)
	if !ok {
		return told, nil // told nothing before: recorded now
	}
	var old toldSchedule
	_ = json.Unmarshal([]byte(raw), &old)
	if !old.Schedule.OpenDate.IsZero() && old.Schedule.Equal(reg.Exam.Schedule) {
		told = Told{Same: true, Sequence: old.Sequence, Delivered: map[string]bool{}}
		for i, d := range deliveries {
			told.Delivered[d] = values[i+1] == ledger
		}
		return told, nil
	}
	// New dates: what was delivered was about the old ones.
	told.Sequence = max(told.Sequence, old.Sequence+1)
	now.Sequence = told.Sequence
	b, _ := json.Marshal(now)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, ledgerSchedule, b)
		p.PExpire(ctx, key, keep)
		return nil
	})
	if err != nil {
		return Told{}, err
	}
	if !old.Schedule.OpenDate.IsZero() {
		told.Previous = &relay.Previous{Schedule: old.Schedule}
	}
	return told, nil
}

// Delivered reports whether delivery was made for reg's dates, and
// whether reg is out of date: the student has been told other dates since,
// so a delivery of these would be old news. asynq re-runs a task whose
// worker died mid-way; if it died after the send, this stops a second
// one.
func (s *Store) Delivered(ctx context.Context, reg relay.Registration, delivery string) (done, outdated bool, err error) {
	values, err := s.rdb.HMGet(ctx, scheduleKey(reg.SubjectID()), ledgerSchedule, delivery).Result()
	if err != nil {
		if isWrongType(err) {
			return false, false, nil // a ledger from before the hash: the next swap turns it into one
		}
		return false, false, err
	}
	raw, ok := values[0].(string)
	if !ok {
		// Nothing recorded: erased, or from before the ledger.
		return false, false, nil
	}
	var told toldSchedule
	if json.Unmarshal([]byte(raw), &told) == nil && !told.Schedule.OpenDate.IsZero() && !told.Schedule.Equal(reg.Exam.Schedule) {
		return false, true, nil
	}
	return values[1] == ledgerID(reg.ID()), false, nil
}

// markScript records deliveries in a ledger that exists: one erased or
// expired meanwhile is not brought back without its schedule and expiry.
// When the fan-out's own mark is new, it adds the fan-out's digest items
// too: once, however often the fan-out runs. A ledger always holds its
// schedule, so one HMGET says both whether it exists and whether the
// fan-out's mark is new.
//
// KEYS[1] the ledger; KEYS[2] a claim to end, or the ledger again for
// none; with digest items, KEYS[3] the digests' index, KEYS[4] their last
// items' times and a list per item. ARGV[1] is the number of ledger
// fields and values that follow it; with digest items, then the fan-out's
// field and value, the time now (Unix ms), and each item's digest (its
// index member) and the item.
var markScript = redis.NewScript(`
if KEYS[2] ~= KEYS[1] then redis.call('DEL', KEYS[2]) end
local n = tonumber(ARGV[1])
local fresh = false
if #KEYS > 4 then
  local told = redis.call('HMGET', KEYS[1], 's', ARGV[n + 2])
  if not told[1] then return 0 end
  fresh = told[2] ~= ARGV[n + 3]
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local set = 0
if n > 0 then set = redis.call('HSET', KEYS[1], unpack(ARGV, 2, n + 1)) end
if fresh then
  local now = ARGV[n + 4]
  for i = 5, #KEYS do
    local member = ARGV[n + 5 + 2 * (i - 5)]
    -- A digest with items is in the index (cutScript takes it out only
    -- once its list is empty): only an item that starts the list adds it.
    if redis.call('RPUSH', KEYS[i], ARGV[n + 6 + 2 * (i - 5)]) == 1 then
      redis.call('ZADD', KEYS[3], 'NX', now, member)
    end
    redis.call('HSET', KEYS[4], member, now)
  end
end
return set
`)

// MarkDelivered records the deliveries as made for reg's dates. A lost
// mark is a second email if the task then runs again, and the task will
// run again if Redis was away when it finished: so it keeps trying while
// Redis comes back, for most of the task's 30 s lease.
func (s *Store) MarkDelivered(ctx context.Context, reg relay.Registration, deliveries ...string) error {
	return s.writeMark(ctx, Mark{Reg: reg, Deliveries: deliveries})
}

// MarkFannedOut records the fan-out of reg's dates as done, with the
// deliveries it made, ends its claim, and adds its digest items.
func (s *Store) MarkFannedOut(ctx context.Context, reg relay.Registration, digests []DigestItem, deliveries ...string) error {
	return s.writeMark(ctx, Mark{Reg: reg, Deliveries: deliveries, FanOut: true, Digests: digests})
}

// A Mark says that Deliveries were made for Reg's dates; with FanOut, that
// its fan-out is done too, which ends the fan-out's claim and adds its
// Digests' items.
type Mark struct {
	Reg        relay.Registration
	Deliveries []string
	FanOut     bool
	Digests    []DigestItem
}

// args are markScript's keys and arguments for m.
func (m Mark) args() (keys []string, args []any) {
	subject := m.Reg.SubjectID()
	keys = []string{scheduleKey(subject), scheduleKey(subject)}
	deliveries := m.Deliveries
	if m.FanOut {
		keys[1] = claimKey(subject)
		deliveries = append(slices.Clip(deliveries), LedgerFannedOut)
	}
	id := ledgerID(m.Reg.ID())
	args = make([]any, 0, 1+2*len(deliveries)+3+2*len(m.Digests))
	args = append(args, 2*len(deliveries))
	for _, d := range deliveries {
		args = append(args, d, id)
	}
	if !m.FanOut || len(m.Digests) == 0 {
		return keys, args
	}
	keys = append(keys, digestsKey, digestLastKey)
	args = append(args, LedgerFannedOut, id, time.Now().UnixMilli())
	for _, d := range m.Digests {
		member := digestMember(d.Channel, d.Group)
		keys = append(keys, digestItemsKey(member))
		args = append(args, member, d.Item)
	}
	return keys, args
}

func (s *Store) writeMark(ctx context.Context, m Mark) error {
	keys, args := m.args()
	return patiently(ctx, func(ctx context.Context) error {
		return markScript.Run(ctx, s.rdb, keys, args...).Err()
	})
}

// Unmark removes a delivery's mark from reg's ledger and reports whether
// it was there.
func (s *Store) Unmark(ctx context.Context, reg relay.Registration, delivery string) (bool, error) {
	n, err := s.rdb.HDel(ctx, scheduleKey(reg.SubjectID()), delivery).Result()
	return n > 0, err
}

// ReleaseFanOut ends the claim of a fan-out that stopped short, so that
// another task for the registration need not wait out the lease.
func (s *Store) ReleaseFanOut(ctx context.Context, reg relay.Registration) error {
	return s.rdb.Del(ctx, claimKey(reg.SubjectID())).Err()
}

// patiently runs write until it succeeds, for most of a task's lease, each
// time with a fresh context: the task's own may be ending with the worker.
func patiently(ctx context.Context, write func(context.Context) error) error {
	deadline := time.Now().Add(markPatience)
	wait := 100 * time.Millisecond
	for {
		writeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err := write(writeCtx)
		cancel()
		if err == nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

// markPatience stays inside asynq's 30 s lease, after which the task
// would be handed to another worker anyway.
const markPatience = 20 * time.Second

func isWrongType(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "WRONGTYPE")
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// readLedgerSchedule is the told schedule of a ledger key, whatever its
// form.
func (s *Store) readLedgerSchedule(ctx context.Context, key string) (toldSchedule, bool, error) {
	raw, err := s.rdb.HGet(ctx, key, ledgerSchedule).Result()
	if isWrongType(err) {
		raw, err = s.rdb.Get(ctx, key).Result()
	}
	if errors.Is(err, redis.Nil) {
		return toldSchedule{}, false, nil
	}
	if err != nil {
		return toldSchedule{}, false, fmt.Errorf("read %s: %w", key, err)
	}
	var told toldSchedule
	return told, json.Unmarshal([]byte(raw), &told) == nil, nil
}
