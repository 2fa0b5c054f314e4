package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
)

// fanOut registers the student with address for the exam that opens at
// opens, as a fan-out does, with a line in one Slack digest.
func fanOut(t *testing.T, s *Store, address string, opens time.Time) relay.Registration {
	t.Helper()
	ctx := context.Background()
	reg := registration(opens)
	reg.User.Email, reg.User.ID = address, "usr_"+address
	if _, err := s.SwapSchedule(ctx, reg, "task-"+address); err != nil {
		t.Fatal(err)
	}
	item, err := json.Marshal(relay.DigestItem{Registration: reg, Destination: "slack-1"})
	if err != nil {
		t.Fatal(err)
	}
	digests := []DigestItem{{Channel: relay.Slack, Group: "digest:exm_1", Item: item}}
	if err := s.MarkFannedOut(ctx, reg, digests); err != nil {
		t.Fatal(err)
	}
	return reg
}

// students are the addresses in batches' items.
func students(t *testing.T, batches []DigestBatch) []string {
	t.Helper()
	var out []string
	for _, b := range batches {
		for _, raw := range b.Items {
			var item relay.DigestItem
			if err := json.Unmarshal(raw, &item); err != nil {
				t.Fatalf("batch %s: %v", b.ID, err)
			}
			out = append(out, item.Registration.User.Email)
		}
	}
	slices.Sort(out)
	return out
}

func TestDigestIsDueAfterTheGraceAndOfferedUntilHandedOver(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	opens := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour)
	window := DigestWindow{Grace: 5 * time.Second, MaxDelay: time.Minute, MaxSize: 100}
	reg := fanOut(t, s, "a@example.edu", opens)
	fanOut(t, s, "b@example.edu", opens)
	// A fan-out's mark written again, as a re-run writes it, adds nothing.
	if err := s.MarkFannedOut(ctx, reg, []DigestItem{{Channel: relay.Slack, Group: "digest:exm_1", Item: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	if got, waiting, err := s.DueDigests(ctx, now, window); err != nil || len(got) != 0 || waiting != 2 {
		t.Fatalf("within the grace: %d batches, %d waiting (%v)", len(got), waiting, err)
	}
	later := now.Add(window.Grace)
	first, _, err := s.DueDigests(ctx, later, window)
	if err != nil || len(first) != 1 {
		t.Fatalf("after the grace: %d batches (%v)", len(first), err)
	}
	if got := students(t, first); !slices.Equal(got, []string{"a@example.edu", "b@example.edu"}) {
		t.Errorf("the batch holds %v", got)
	}
	if b := first[0]; b.Channel != relay.Slack || b.Group != "digest:exm_1" || b.ID == "" {
		t.Errorf("batch %+v", b)
	}

	// The worker stopped before handing it over: the next call offers the
	// same batch, and no new item joins it.
	fanOut(t, s, "c@example.edu", opens)
	again, _, err := s.DueDigests(ctx, later.Add(window.Grace), window)
	if err != nil || len(again) != 1 || again[0].ID != first[0].ID || len(again[0].Items) != 2 {
		t.Fatalf("offered again: %+v (%v)", again, err)
	}
	if err := s.HandedOver(ctx, first[0]); err != nil {
		t.Fatal(err)
	}
	next, _, err := s.DueDigests(ctx, later.Add(window.Grace), window)
	if err != nil || len(next) != 1 || next[0].ID == first[0].ID || !slices.Equal(students(t, next), []string{"c@example.edu"}) {
		t.Fatalf("after the hand-over: %+v (%v)", next, err)
	}
	// Handing the first over again, as a second worker might, keeps the
	// second.
	if err := s.HandedOver(ctx, first[0]); err != nil {
		t.Fatal(err)
	}
	if kept, _, _ := s.DueDigests(ctx, later.Add(window.Grace), window); len(kept) != 1 || kept[0].ID != next[0].ID {
		t.Errorf("the second batch: %+v", kept)
	}
	if err := s.HandedOver(ctx, next[0]); err != nil {
		t.Fatal(err)
	}
	if left, _, err := s.DueDigests(ctx, later.Add(window.Grace), window); err != nil || len(left) != 0 {
		t.Errorf("left: %+v (%v)", left, err)
	}
	if n := s.rdb.Exists(ctx, digestsKey, digestLastKey).Val(); n != 0 {
		t.Errorf("%d index keys left after every digest was handed over", n)
	}
}

func TestDigestIsDueAtItsSizeAndAfterItsLongestDelay(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	opens := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour)
	for i := range 5 {
		fanOut(t, s, fmt.Sprintf("s%d@example.edu", i), opens)
	}
	now := time.Now()
	full := DigestWindow{Grace: time.Minute, MaxDelay: time.Hour, MaxSize: 2}
	for range 2 {
		got, _, err := s.DueDigests(ctx, now, full)
		if err != nil || len(got) != 1 || len(got[0].Items) != 2 {
			t.Fatalf("at its size: %+v (%v)", got, err)
		}
		if err := s.HandedOver(ctx, got[0]); err != nil {
			t.Fatal(err)
		}
	}
	// The fifth is alone, under the size: it waits for the grace.
	if got, _, err := s.DueDigests(ctx, now, full); err != nil || len(got) != 0 {
		t.Fatalf("under its size: %+v (%v)", got, err)
	}

	// Items that keep coming within the grace wait at most the longest
	// delay after the first.
	window := DigestWindow{Grace: 5 * time.Second, MaxDelay: 20 * time.Second, MaxSize: 100}
	if got, _, _ := s.DueDigests(ctx, now.Add(4*time.Second), window); len(got) != 0 {
		t.Errorf("due before the grace: %d", len(got))
	}
	fanOut(t, s, "late@example.edu", opens)
	got, _, err := s.DueDigests(ctx, time.Now().Add(window.MaxDelay), DigestWindow{Grace: time.Hour, MaxDelay: window.MaxDelay, MaxSize: 100})
	if err != nil || !slices.Equal(students(t, got), []string{"late@example.edu", "s4@example.edu"}) {
		t.Errorf("after the longest delay: %v (%v)", students(t, got), err)
	}
}

func TestForgetTakesTheStudentOutOfWaitingDigests(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	opens := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour)
	window := DigestWindow{Grace: time.Second, MaxDelay: time.Minute, MaxSize: 100}
	fanOut(t, s, "a@example.edu", opens)
	fanOut(t, s, "gone@example.edu", opens)
	// One in a batch cut and not handed over, one still in the list.
	if _, _, err := s.DueDigests(ctx, time.Now().Add(time.Second), window); err != nil {
		t.Fatal(err)
	}
	fanOut(t, s, "Gone@example.edu", opens.Add(time.Hour))
	fanOut(t, s, "b@example.edu", opens.Add(time.Hour))

	f, err := s.Forget(ctx, "gone@example.edu", s.NewHistory(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if f.DigestItems != 2 {
		t.Errorf("removed %d digest items, want 2", f.DigestItems)
	}
	var all []DigestBatch
	for range 2 {
		got, _, err := s.DueDigests(ctx, time.Now().Add(time.Second), window)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range got {
			all = append(all, b)
			if err := s.HandedOver(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := students(t, all); !slices.Equal(got, []string{"a@example.edu", "b@example.edu"}) {
		t.Errorf("digests hold %v", got)
	}
}
