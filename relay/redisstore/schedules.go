package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

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
}

// afterExam is how long the relay remembers an exam after it is over: a
// registration Synap sends again after that is news again.
const afterExam = 7 * 24 * time.Hour

// UntilOver is how long to remember what a student was told about an exam
// with schedule s: until it is over and a week more, and at least the
// retention, whatever RELAY_RETENTION says about the queue.
func (s *Store) UntilOver(sched relay.Schedule) time.Duration {
	return max(s.retention, time.Until(sched.End().Add(afterExam)))
}

// SwapSchedule records the dates reg tells the student and what they were
// told before: other dates, so that the email can say the dates changed,
// or these very dates.
func (s *Store) SwapSchedule(ctx context.Context, reg relay.Registration) (Told, error) {
	key := scheduleKey(reg.SubjectID())
	keep := s.UntilOver(reg.Exam.Schedule)
	told := Told{Sequence: relay.CalendarSequence(time.Now())}
	now := toldSchedule{Schedule: reg.Exam.Schedule, Sequence: told.Sequence, Student: studentTag(reg.User.Email)}
	first, _ := json.Marshal(now)
	// Most students are told once: SET NX GET records that in one round
	// trip, and returns what was told before when there was something.
	raw, err := s.rdb.SetArgs(ctx, key, first, redis.SetArgs{Mode: "NX", Get: true, TTL: keep}).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return told, nil
	case err != nil:
		return Told{}, err
	}
	var old toldSchedule
	_ = json.Unmarshal(raw, &old)
	if !old.Schedule.OpenDate.IsZero() && old.Schedule.Equal(reg.Exam.Schedule) {
		return Told{Same: true, Sequence: old.Sequence}, nil
	}
	told.Sequence = max(told.Sequence, old.Sequence+1)
	now.Sequence = told.Sequence
	b, _ := json.Marshal(now)
	if err := s.rdb.Set(ctx, key, b, keep).Err(); err != nil {
		return Told{}, err
	}
	if !old.Schedule.OpenDate.IsZero() {
		told.Previous = &relay.Previous{Schedule: old.Schedule}
	}
	return told, nil
}
