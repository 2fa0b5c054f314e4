package redisstore

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

type toldSchedule struct {
	Schedule relay.Schedule `json:"schedule"`
	Sequence int            `json:"sequence"`
}

// SwapSchedule records the dates reg tells the student and returns what
// they were told before, when that differs, so that the email can say the
// dates changed.
func (s *Store) SwapSchedule(ctx context.Context, reg relay.Registration) (*relay.Previous, error) {
	key := scheduleKey(reg.SubjectID())
	first, _ := json.Marshal(toldSchedule{Schedule: reg.Exam.Schedule})
	// Most students are told once: SET NX GET records that in one round
	// trip, and returns what was told before when there was something.
	raw, err := s.rdb.SetArgs(ctx, key, first, redis.SetArgs{Mode: "NX", Get: true, TTL: s.retention}).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, err
	}
	var old toldSchedule
	_ = json.Unmarshal(raw, &old)
	if !old.Schedule.OpenDate.IsZero() && old.Schedule.Equal(reg.Exam.Schedule) {
		return nil, nil
	}
	next := toldSchedule{Schedule: reg.Exam.Schedule, Sequence: old.Sequence}
	var previous *relay.Previous
	if !old.Schedule.OpenDate.IsZero() {
		next.Sequence++
		previous = &relay.Previous{Schedule: old.Schedule, Sequence: next.Sequence}
	}
	b, _ := json.Marshal(next)
	if err := s.rdb.Set(ctx, key, b, s.retention).Err(); err != nil {
		return nil, err
	}
	return previous, nil
}
