package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/email"
	"github.com/exam-relay/relay/relay/redisstore"
)

// SMTPLimits are what the mail provider allows, shared by every worker on
// one Redis.
type SMTPLimits struct {
	// Server names the mail server (host:port, no secrets) in the logs
	// and metrics.
	Server string
	// Mailbox is the account sending; with Server it keys the shared
	// limits, since providers count per mailbox.
	Mailbox string
	// Rate is N emails per Per; zero N: no rate of the relay's own.
	Rate int
	Per  time.Duration
	// DailyLimit is emails per rolling 24 hours; 0: none.
	DailyLimit int
}

// TimeFor is about how long n emails take to send at the rate; 0 with no
// rate.
func (l SMTPLimits) TimeFor(n int) time.Duration {
	if l.Rate == 0 || n < 2 {
		return 0
	}
	return time.Duration(n-1) * (l.Per + rateSlack) / time.Duration(l.Rate)
}

// rateSlack is added to every period of the rate: providers count when a
// message arrives, and its time on the wire varies, so the relay keeps a
// tenth of a second of room in every window.
const rateSlack = 100 * time.Millisecond

// How long a throttled server is left alone at most, after refusing again
// and again.
const (
	mostRateBackoff  = 5 * time.Minute
	mostQuotaBackoff = time.Hour
)

// smtpLimits is how the worker keeps to SMTPLimits.
type smtpLimits struct {
	SMTPLimits
	key   string              // the server and mailbox, hashed: Redis keys
	limit *redisstore.Limiter // the rate, and the holds after throttling
	quota *redisstore.Quota   // nil: no daily limit

	mu       sync.Mutex
	warnedAt time.Time // the last quota warning, once an hour
	// openUntil is when this process next asks Redis whether the server
	// asked every sender to wait. Asking before every email cost a
	// twentieth of a worker's time; a hold set by another process is
	// noticed at most openFor late, and the few emails sent meanwhile are
	// refused and retried like any other.
	openUntil time.Time
}

const openFor = 250 * time.Millisecond

// blocked is how long every send to the server is still held, or 0.
func (s *smtpLimits) blocked(ctx context.Context) time.Duration {
	s.mu.Lock()
	open := time.Now().Before(s.openUntil)
	s.mu.Unlock()
	if open {
		return 0
	}
	d := s.limit.Blocked(ctx, s.key)
	if d == 0 {
		s.mu.Lock()
		s.openUntil = time.Now().Add(openFor)
		s.mu.Unlock()
	}
	return d
}

// throttled holds every send to the server, this process's at once.
func (s *smtpLimits) throttled(ctx context.Context, first, most time.Duration) time.Duration {
	s.mu.Lock()
	s.openUntil = time.Time{}
	s.mu.Unlock()
	return s.limit.Throttled(ctx, s.key, first, most)
}

func newSMTPLimits(l SMTPLimits, store *redisstore.Store, concurrency int, backlog func() int) *smtpLimits {
	s := &smtpLimits{SMTPLimits: l, key: "smtp-" + relay.Hash(l.Server, l.Mailbox)[:12]}
	n, per := l.Rate, l.Per
	if n == 0 {
		// No rate: the limiter only holds sends while the server asked to
		// wait.
		n, per = 1, time.Nanosecond
	}
	s.limit = store.NewLimiter("smtp", n, per+rateSlack, redisstore.LimiterOptions{
		// Half the workers may wait for a slot; the rest keep fanning out
		// registrations and telling staff, and hand emails back to the
		// queue until their turn may come.
		Sleepers: max(1, concurrency/2),
		MaxSleep: time.Minute,
		Backlog:  backlog,
	})
	if l.DailyLimit > 0 {
		s.quota = store.NewQuota("smtp", l.DailyLimit, 24*time.Hour)
	}
	return s
}

// sendEmail hands msg to the mail server within what the provider allows:
// not while it asked every sender to wait, not past the daily limit, not
// faster than the rate. Waiting for any of these is no failure: the email
// goes back to the queue without spending an attempt.
func (w *Worker) sendEmail(ctx context.Context, msg *mail.Msg) (sent, error) {
	if err := w.sendWithinLimits(ctx, msg); err != nil {
		return sent{}, err
	}
	return sentEmail(msg), nil
}

func (w *Worker) sendWithinLimits(ctx context.Context, msg *mail.Msg) error {
	s := w.smtp
	if d := s.blocked(ctx); d > 0 {
		return relay.Limited(d, fmt.Errorf("the mail server asked every sender to wait; %v left", d.Round(time.Second)))
	}
	release := func() {}
	if s.quota != nil {
		ok, used, wait, rel, err := s.quota.Take(ctx, s.key)
		if err != nil {
			return relay.Temporary(err)
		}
		w.metrics.quotaUsed.Set(float64(used))
		if !ok {
			w.warnQuota(used, wait)
			// Not sooner than a minute, and spread over a few more: a day's
			// limit frees at the pace yesterday's emails went out.
			wait = max(wait, time.Minute)
			return relay.Limited(wait+rand.N(5*time.Minute), fmt.Errorf("daily limit of %d emails reached; a place frees in %v", s.DailyLimit, wait.Round(time.Second)))
		}
		release = rel
	}
	if s.Rate > 0 {
		w.metrics.smtpWaiting.Inc()
		err := s.limit.Wait(ctx, s.key)
		w.metrics.smtpWaiting.Dec()
		if err != nil {
			release()
			return err
		}
	}
	err := w.mailer.Send(ctx, msg)
	var t *email.Throttle
	if !errors.As(err, &t) {
		return err
	}
	// The server did not take it: it does not count against the quota.
	release()
	most := mostRateBackoff
	if t.Quota {
		most = mostQuotaBackoff
	}
	d := s.throttled(ctx, t.Backoff(), most)
	w.metrics.throttled.WithLabelValues(s.Server, throttleKind(t)).Inc()
	w.log.Warn("the mail server throttles; every sender waits", "server", s.Server, "reply", t.Rule, "wait", d.String(), "err", err)
	return relay.Limited(d, err)
}

func throttleKind(t *email.Throttle) string {
	if t.Quota {
		return "quota"
	}
	return "rate"
}

// warnQuota says, once an hour while it lasts, that emails wait for the
// daily limit.
func (w *Worker) warnQuota(used int, wait time.Duration) {
	s := w.smtp
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.warnedAt) < time.Hour {
		return
	}
	s.warnedAt = time.Now()
	w.log.Warn("daily sending limit reached; emails wait until it allows", "server", s.Server, "limit", s.DailyLimit, "used", used, "next_place_in", wait.Round(time.Second).String())
}
