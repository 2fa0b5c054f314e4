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

// SwapSchedule records the dates reg tells the student and returns what
// they were told before when that differs, so that the email can say the
// dates changed, and whether they were told these very dates before.
func (s *Store) SwapSchedule(ctx context.Context, reg relay.Registration) (previous *relay.Previous, same bool, err error) {
	key := scheduleKey(reg.SubjectID())
	keep := s.UntilOver(reg.Exam.Schedule)
	now, _ := json.Marshal(toldSchedule{Schedule: reg.Exam.Schedule})
	// Most students are told once: SET NX GET records that in one round
	// trip, and returns what was told before when there was something.
	raw, err := s.rdb.SetArgs(ctx, key, now, redis.SetArgs{Mode: "NX", Get: true, TTL: keep}).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	var old toldSchedule
	_ = json.Unmarshal(raw, &old)
	if !old.Schedule.OpenDate.IsZero() && old.Schedule.Equal(reg.Exam.Schedule) {
		return nil, true, nil
	}
	if err := s.rdb.Set(ctx, key, now, keep).Err(); err != nil {
		return nil, false, err
	}
	if old.Schedule.OpenDate.IsZero() {
		return nil, false, nil
	}
	return &relay.Previous{Schedule: old.Schedule}, false, nil
}
