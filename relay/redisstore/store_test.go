package redisstore

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
)

func TestMain(m *testing.M) {
	redis.SetLogger(relaytest.QuietRedisLogger{})
	os.Exit(m.Run())
}

func newStore(t testing.TB) *Store {
	t.Helper()
	return New(relaytest.StartRedis(t).Client(), time.Hour)
}

func registration(opens time.Time) relay.Registration {
	return relay.Registration{
		User:      relay.User{ID: "usr_1", Email: "a@example.edu"},
		Exam:      relay.Exam{ObjectID: "exm_1", Schedule: relay.Schedule{OpenDate: opens}},
		Portal:    relay.Portal{ID: "p"},
		UserGroup: relay.UserGroup{ObjectID: "g"},
	}
}

func TestSentMarksAreRememberedForTheRetention(t *testing.T) {
	s := newStore(t) // retention 1h
	ctx := context.Background()
	if sent, err := s.Sent(ctx, "slack:digest:x"); err != nil || sent {
		t.Fatalf("Sent before any mark = %v, %v", sent, err)
	}
	if err := s.MarkSent(ctx, "slack:digest:x"); err != nil {
		t.Fatal(err)
	}
	if sent, _ := s.Sent(ctx, "slack:digest:x"); !sent {
		t.Error("the mark is not there")
	}
	if ttl := s.rdb.TTL(ctx, sentKey("slack:digest:x")).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("mark kept for %v, want 1h", ttl)
	}
}

func TestBoardLockIsHeldByOneWorker(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	b := s.Board("slack-1", "digest:x", "2026-12-14")
	unlock, ok, err := b.Lock(ctx)
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	if _, ok, _ := s.Board("slack-1", "digest:x", "2026-12-14").Lock(ctx); ok {
		t.Error("a second worker took the lock")
	}
	if _, ok, _ := s.Board("slack-1", "digest:x", "2026-12-15").Lock(ctx); !ok {
		t.Error("another day's board is locked too")
	}
	unlock()
	if _, ok, _ := b.Lock(ctx); !ok {
		t.Error("the lock was not released")
	}

	if e, err := b.Entry(ctx); err != nil || e.Ref != "" {
		t.Fatalf("entry before any save: %+v %v", e, err)
	}
	b.Save(ctx, BoardEntry{Ref: "C1 123.456", Items: []relay.DigestItem{{Registration: registration(time.Now())}}})
	if e, _ := b.Entry(ctx); e.Ref != "C1 123.456" || len(e.Items) != 1 {
		t.Errorf("entry after save: %+v", e)
	}
}

func TestLimiterSpacesPostsAndHoldsThemAfterA429(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	l := s.NewLimiter("slack", 1, time.Second, LimiterOptions{Sleepers: 1, MaxSleep: 3 * time.Second})
	if err := l.Wait(ctx, "slack-1"); err != nil {
		t.Fatalf("first post: %v", err)
	}
	start := time.Now()
	if err := l.Wait(ctx, "slack-1"); err != nil {
		t.Fatalf("second post: %v", err)
	}
	if waited := time.Since(start); waited < 800*time.Millisecond {
		t.Errorf("second post allowed after %v, want about a second", waited)
	}
	if err := l.Wait(ctx, "slack-2"); err != nil {
		t.Errorf("another destination waited for the first: %v", err)
	}

	l.Block(ctx, "slack-1", 5*time.Second)
	err := l.Wait(ctx, "slack-1")
	if relay.OutcomeOf(err) != relay.RateLimited || relay.RetryAfterOf(err) < 4*time.Second {
		t.Errorf("after a 429 of 5s: %v, retry after %v", err, relay.RetryAfterOf(err))
	}
	other := s.NewLimiter("slack", 1, time.Second, LimiterOptions{Sleepers: 1, MaxSleep: 3 * time.Second})
	if err := other.Wait(ctx, "slack-1"); relay.OutcomeOf(err) != relay.RateLimited {
		t.Errorf("another worker's limiter ignored the 429: %v", err)
	}
}

func TestLimiterLetsSomeWorkersWaitAndHandsTheRestBack(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	l := s.NewLimiter("smtp", 5, time.Second, LimiterOptions{Sleepers: 2, MaxSleep: 10 * time.Second, Backlog: func() int { return 100 }})
	results := make(chan error, 4)
	for range 4 {
		go func() { results <- l.Wait(ctx, "smtp-1") }()
	}
	var passed, handedBack int
	for range 4 {
		err := <-results
		switch {
		case err == nil:
			passed++
		case relay.OutcomeOf(err) == relay.RateLimited:
			handedBack++
			// A hundred ahead at five a second: back within the 20 s they
			// take, not at the next slot.
			if d := relay.RetryAfterOf(err); d < time.Second || d > 20*time.Second {
				t.Errorf("handed back for %v with 100 ahead at 5/s", d)
			}
		default:
			t.Errorf("Wait: %v", err)
		}
	}
	// One takes the free slot, two sleep for theirs, one goes back.
	if passed != 3 || handedBack != 1 {
		t.Errorf("%d passed and %d handed back, want 3 and 1", passed, handedBack)
	}
	if n := l.Sleeping(); n != 0 {
		t.Errorf("%d still counted as sleeping", n)
	}
}

func TestThrottledDoublesTheWaitWhileTheServerKeepsRefusing(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	l := s.NewLimiter("smtp", 1, time.Second, LimiterOptions{Sleepers: 1, MaxSleep: time.Second})
	// Sends that were in flight when the server first refused are
	// refused too: they change nothing.
	for range 3 {
		if d := l.Throttled(ctx, "smtp-1", 50*time.Millisecond, 300*time.Millisecond); d > 50*time.Millisecond {
			t.Fatalf("a refusal during the hold made it %v", d)
		}
	}
	// Each refusal after a hold ends doubles the next, up to the most.
	var got []time.Duration
	for range 4 {
		time.Sleep(l.Blocked(ctx, "smtp-1") + 10*time.Millisecond)
		got = append(got, l.Throttled(ctx, "smtp-1", 50*time.Millisecond, 300*time.Millisecond))
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("holds %v, want %v", got, want)
		}
	}
	if err := l.Wait(ctx, "smtp-1"); relay.OutcomeOf(err) != relay.RateLimited {
		t.Errorf("a send while held: %v", err)
	}
}

func TestQuotaRollsOverTheWindowAndGivesBackUnsentPlaces(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	q := s.NewQuota("smtp", 3, 2*time.Second)
	var releases []func()
	for i := range 3 {
		ok, used, _, release, err := q.Take(ctx, "smtp-1")
		if err != nil || !ok || used != i+1 {
			t.Fatalf("take %d: %v %d %v", i, ok, used, err)
		}
		releases = append(releases, release)
	}
	ok, used, wait, _, err := q.Take(ctx, "smtp-1")
	if err != nil || ok || used != 3 || wait <= 0 || wait > 2*time.Second {
		t.Fatalf("a fourth in the window: ok %v used %d wait %v err %v", ok, used, wait, err)
	}
	releases[2]() // that send did not happen
	if ok, _, _, _, _ := q.Take(ctx, "smtp-1"); !ok {
		t.Error("a place given back was not free again")
	}
	if ok, _, _, _, _ := q.Take(ctx, "smtp-2"); !ok {
		t.Error("another mailbox shares the quota")
	}
	time.Sleep(wait + 100*time.Millisecond)
	if ok, _, _, _, _ := q.Take(ctx, "smtp-1"); !ok {
		t.Error("the window did not roll on")
	}
}
