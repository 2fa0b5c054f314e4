package redisstore

import (
	"context"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
)

func TestSwapScheduleSaysWhatChangedUntilTheExamIsOver(t *testing.T) {
	s := newStore(t) // retention 1h
	ctx := context.Background()
	first := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour)
	steps := []struct {
		opens    time.Time
		previous *time.Time
		same     bool
	}{
		{first, nil, false},                   // told once: nothing before
		{first, nil, true},                    // the same dates again
		{first.Add(time.Hour), &first, false}, // moved: the old dates
		{first.Add(2 * time.Hour), ptr(first.Add(time.Hour)), false}, // moved again
	}
	lastSequence := 0
	for i, step := range steps {
		reg := registration(step.opens)
		told, err := s.SwapSchedule(ctx, reg, "task-1")
		if err != nil {
			t.Fatal(err)
		}
		prev, same := told.Previous, told.Same
		// Each change within the same second still gets a higher SEQUENCE.
		if !same && told.Sequence <= lastSequence {
			t.Errorf("step %d: SEQUENCE %d after %d", i, told.Sequence, lastSequence)
		}
		lastSequence = max(lastSequence, told.Sequence)
		switch {
		case same != step.same:
			t.Errorf("step %d: same %v, want %v", i, same, step.same)
		case step.previous == nil && prev != nil:
			t.Errorf("step %d: previous %+v, want none", i, prev)
		case step.previous != nil && (prev == nil || !prev.Schedule.OpenDate.Equal(*step.previous)):
			t.Errorf("step %d: previous %+v, want %v", i, prev, step.previous)
		}
		// Kept until the exam is over and a week more, not the 1h retention.
		ttl := s.rdb.TTL(ctx, scheduleKey(reg.SubjectID())).Val()
		if want := time.Until(step.opens.Add(afterExam)); ttl < want-time.Minute || ttl > want+time.Minute {
			t.Errorf("step %d: remembered for %v, want %v", i, ttl, want)
		}
	}
	// An exam already over is still remembered for the retention.
	if got := s.UntilOver(relay.Schedule{OpenDate: time.Now().Add(-30 * 24 * time.Hour)}); got != time.Hour {
		t.Errorf("an exam long over is remembered for %v, want the retention", got)
	}
}

func ptr(t time.Time) *time.Time { return &t }

func TestLedgerKnowsWhatWasDeliveredForWhichDates(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	opens := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour)
	a, b := registration(opens), registration(opens.Add(time.Hour))

	if _, err := s.SwapSchedule(ctx, a, "task-a"); err != nil {
		t.Fatal(err)
	}
	if done, outdated, err := s.Delivered(ctx, a, LedgerConfirmation); err != nil || done || outdated {
		t.Fatalf("before the send: done %v outdated %v err %v", done, outdated, err)
	}
	if err := s.MarkFannedOut(ctx, a, nil, LedgerConfirmation); err != nil {
		t.Fatal(err)
	}
	if done, _, _ := s.Delivered(ctx, a, LedgerConfirmation); !done {
		t.Error("the confirmation's mark is not there")
	}
	if done, _, _ := s.Delivered(ctx, a, "a:slack"); done {
		t.Error("a delivery never made reads as made")
	}
	told, err := s.SwapSchedule(ctx, a, "task-a2", LedgerFannedOut, LedgerConfirmation)
	if err != nil || !told.Same || !told.Delivered[LedgerFannedOut] || !told.Delivered[LedgerConfirmation] {
		t.Errorf("the same dates again: %+v %v", told, err)
	}

	// New dates: nothing is delivered about them yet, and a retry about
	// the old ones is out of date.
	told, err = s.SwapSchedule(ctx, b, "task-b", LedgerFannedOut, LedgerConfirmation)
	if err != nil || told.Same || told.Previous == nil || told.Delivered[LedgerConfirmation] {
		t.Fatalf("new dates: %+v %v", told, err)
	}
	if done, outdated, _ := s.Delivered(ctx, b, LedgerConfirmation); done || outdated {
		t.Errorf("new dates: done %v outdated %v", done, outdated)
	}
	if done, outdated, _ := s.Delivered(ctx, a, LedgerConfirmation); done || !outdated {
		t.Errorf("old dates after new ones: done %v outdated %v, want outdated", done, outdated)
	}
	// A late mark for the old dates does not pass for the new ones.
	if err := s.MarkDelivered(ctx, a, LedgerConfirmation); err != nil {
		t.Fatal(err)
	}
	if done, _, _ := s.Delivered(ctx, b, LedgerConfirmation); done {
		t.Error("a mark for the old dates reads as the new dates' confirmation")
	}
	if err := s.MarkFannedOut(ctx, b, nil); err != nil {
		t.Fatal(err)
	}
	if n := s.rdb.DBSize(ctx).Val(); n != 1 {
		t.Errorf("%d keys for one student and exam, want 1 (the ledger; the claim ends with the fan-out)", n)
	}
}

func TestOneTaskAtATimeFansOutARegistration(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	reg := registration(time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour))

	if told, err := s.SwapSchedule(ctx, reg, "task-1", LedgerFannedOut); err != nil || told.Busy {
		t.Fatalf("first: %+v %v", told, err)
	}
	// A second webhook's task while the first sends: it waits.
	if told, err := s.SwapSchedule(ctx, reg, "task-2", LedgerFannedOut); err != nil || !told.Busy {
		t.Fatalf("second while the first holds it: %+v %v, want busy", told, err)
	}
	// The first task run again (its worker died) goes on, with a whole
	// lease.
	s.rdb.PExpire(ctx, claimKey(reg.SubjectID()), time.Second)
	if told, _ := s.SwapSchedule(ctx, reg, "task-1", LedgerFannedOut); told.Busy || !told.Same {
		t.Errorf("the first task again: %+v", told)
	}
	if ttl := s.rdb.PTTL(ctx, claimKey(reg.SubjectID())).Val(); ttl < claimLease-time.Minute {
		t.Errorf("the first task's claim runs out in %v after its re-run, want %v", ttl, claimLease)
	}
	if err := s.ReleaseFanOut(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if told, _ := s.SwapSchedule(ctx, reg, "task-2", LedgerFannedOut); told.Busy || told.Delivered[LedgerFannedOut] {
		t.Errorf("second after the first stopped short: %+v, want its turn", told)
	}
	if err := s.MarkFannedOut(ctx, reg, nil); err != nil {
		t.Fatal(err)
	}
	// Once done, a repeat is told so whoever asks, and claims nothing.
	if told, _ := s.SwapSchedule(ctx, reg, "task-3", LedgerFannedOut); told.Busy || !told.Delivered[LedgerFannedOut] {
		t.Errorf("a repeat after the fan-out: %+v", told)
	}
	if n := s.rdb.Exists(ctx, claimKey(reg.SubjectID())).Val(); n != 0 {
		t.Error("a repeat left a claim behind")
	}
}

func TestLedgerFromBeforeTheHashIsKept(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	opens := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour)
	confirmed, unconfirmed := registration(opens), registration(opens)
	unconfirmed.User.ID, unconfirmed.User.Email = "usr_2", "b@example.edu"
	// As the relay wrote them before the ledger: the dates as a string, and
	// a sent mark for the confirmation.
	for _, reg := range []relay.Registration{confirmed, unconfirmed} {
		old := `{"schedule":{"openDate":"` + opens.Format(time.RFC3339) + `"},"n":7,"w":"` + studentTag(reg.User.Email) + `"}`
		s.rdb.Set(ctx, scheduleKey(reg.SubjectID()), old, 48*time.Hour)
		if done, _, err := s.Delivered(ctx, reg, LedgerConfirmation); err != nil || done {
			t.Errorf("Delivered on an old ledger: %v %v", done, err)
		}
	}
	s.rdb.Set(ctx, sentKey("email:confirmation:"+confirmed.ID()), "2026-11-01T00:00:00Z "+studentTag(confirmed.User.Email), time.Hour)

	told, err := s.SwapSchedule(ctx, confirmed, "task-1", LedgerFannedOut, LedgerConfirmation)
	if err != nil || !told.Same || told.Sequence != 7 || !told.Delivered[LedgerFannedOut] || !told.Delivered[LedgerConfirmation] {
		t.Errorf("confirmed before the upgrade: %+v %v, want the same dates, SEQUENCE 7, handled", told, err)
	}
	told, err = s.SwapSchedule(ctx, unconfirmed, "task-2", LedgerFannedOut, LedgerConfirmation)
	if err != nil || !told.Same || told.Delivered[LedgerConfirmation] {
		t.Errorf("unconfirmed before the upgrade: %+v %v, want the same dates, not sent", told, err)
	}
	if ttl := s.rdb.TTL(ctx, scheduleKey(confirmed.SubjectID())).Val(); ttl < 47*time.Hour {
		t.Errorf("the old ledger's expiry became %v", ttl)
	}
	if f, err := s.Forget(ctx, "b@example.edu", s.NewHistory(time.Hour)); err != nil || f.Schedules != 1 {
		t.Errorf("forget after the upgrade: %+v %v", f, err)
	}
}

func TestMarksDoNotBringBackAnErasedLedger(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	reg := registration(time.Now().Add(30 * 24 * time.Hour))
	if _, err := s.SwapSchedule(ctx, reg, "task-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Forget(ctx, reg.User.Email, s.NewHistory(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFannedOut(ctx, reg, nil, LedgerConfirmation); err != nil {
		t.Fatal(err)
	}
	// Nor does a late fan-out bring the student back into a digest.
	digests := []DigestItem{{Channel: relay.Slack, Group: "digest:exm_1", Item: []byte(`{}`)}}
	if err := s.MarkFannedOut(ctx, reg, digests, LedgerConfirmation); err != nil {
		t.Fatal(err)
	}
	if keys := s.rdb.Keys(ctx, "*").Val(); len(keys) != 0 {
		t.Errorf("after erasure and late marks, Redis holds %v", keys)
	}
}
