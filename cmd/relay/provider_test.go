package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

// mostInAnyWindow is the largest number of messages the sink saw begin
// (MAIL FROM) in any window of length d. The beginning, not the
// acceptance, is what the rate limiter spaces: a send on a new connection
// dials and logs in first.
func mostInAnyWindow(msgs []relaytest.Message, d time.Duration) int {
	at := make([]time.Time, len(msgs))
	for i, m := range msgs {
		at[i] = m.Began
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	most := 0
	for i := range at {
		n := sort.Search(len(at), func(j int) bool { return !at[j].Before(at[i].Add(d)) }) - i
		most = max(most, n)
	}
	return most
}

func TestTwoWorkersTogetherStayUnderTheSMTPRate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, relaytest.StartRedis(t))
	env := f.with("RELAY_SMTP_RATE", "5/s", "RELAY_SLACK_MODE", "off")
	const n = 60
	enqueueAll(t, f.redis, 0, n)
	for range 2 {
		startProcess(t, env, "work")
	}
	got := waitDelivered(t, f, upTo(n), 2*time.Minute)
	msgs := f.smtp.Messages()
	if len(got) != n || duplicates(got) != 0 {
		t.Errorf("%d students emailed, %d duplicates; want %d and 0", len(got), duplicates(got), n)
	}
	// Slots 200 ms apart put five sends in a second, and a sixth at its
	// very end. Between a slot and the MAIL FROM are a Redis answer and a
	// goroutine waking, on a machine running other tests: 100 ms is left
	// for that. Without the shared limit the 60 would come within a
	// second; a limiter that allowed a burst of five on top of the rate
	// let nine begin in 900 ms.
	if most := mostInAnyWindow(msgs, 900*time.Millisecond); most > 5 {
		t.Errorf("%d emails began within 900 ms; the rate is 5/s", most)
	}
	first, last := msgs[0].Began, msgs[len(msgs)-1].Began
	t.Logf("%d emails in %v: %.2f/s; at most %d begun in any second", len(msgs), last.Sub(first).Round(time.Millisecond),
		float64(len(msgs)-1)/last.Sub(first).Seconds(), mostInAnyWindow(msgs, time.Second))
}

// throttleFor makes the sink answer reply to every message for d, then
// take them; it returns how many it refused.
func throttleFor(sink *relaytest.SMTPSink, d time.Duration, reply *smtp.SMTPError) *atomic.Int64 {
	until := time.Now().Add(d)
	var refused atomic.Int64
	sink.SetDataHook(func(string, []string) *smtp.SMTPError {
		if time.Now().Before(until) {
			refused.Add(1)
			return reply
		}
		return nil
	})
	return &refused
}

func TestThrottlingServerHoldsEverySenderAndSpendsNoAttempt(t *testing.T) {
	for name, tt := range map[string]struct {
		reply *smtp.SMTPError
		for_  time.Duration
	}{
		"Amazon SES": {&smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Throttling failure: Maximum sending rate exceeded."}, 30 * time.Second},
		"Microsoft 365 quota": {&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 2, 0},
			Message: "STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception"}, 10 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// One retry allowed: a throttling reply must not spend it.
			h := newHarness(t, withConfig(func(c *config.Config) { c.Worker.MaxRetry = 1; c.Slack.Mode = "off" }))
			start := time.Now()
			refused := throttleFor(h.smtp, tt.for_, tt.reply)
			const n = 20
			var want []string
			for i := range n {
				if code, resp := h.post(registrationFor(i, 0)); code != 202 {
					t.Fatalf("POST %d: %d %s", i, code, resp)
				}
				want = append(want, fmt.Sprintf("student%d@example.edu", i))
			}
			got := h.waitForRecipients(want, 3*time.Minute)
			for _, addr := range want {
				if got[addr] != 1 {
					t.Errorf("%s got %d emails, want 1", addr, got[addr])
				}
			}
			if archived, _ := h.inspect.ListArchivedTasks(tasks.QueueEmail); len(archived) != 0 {
				t.Errorf("%d emails archived, want none: %s", len(archived), archived[0].LastErr)
			}
			// Every sender waits: the server was not asked once per email
			// per retry, but a handful of times.
			if r := refused.Load(); r < 1 || r > n {
				t.Errorf("%d refusals for %d emails", r, n)
			}
			metrics := h.get("/metrics")
			if !strings.Contains(metrics, `relay_smtp_throttled_total{kind=`) {
				t.Errorf("/metrics counts no throttling")
			}
			msgs := h.smtp.Messages()
			t.Logf("%s for %v: %d refusals; all %d delivered %v after the first post", name, tt.for_, refused.Load(), n,
				msgs[len(msgs)-1].At.Sub(start).Round(time.Millisecond))
		})
	}
}

func TestDailyLimitHoldsTheRestWithoutFailingThem(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withConfig(func(c *config.Config) { c.SMTP.DailyLimit = 3; c.Worker.MaxRetry = 1; c.Slack.Mode = "off" }))
	for i := range 5 {
		h.post(registrationFor(i, 0))
	}
	h.smtp.WaitFor(t, 3, 20*time.Second)
	// The other two wait in the queue to retry in a minute or more, not
	// archived, and not sent.
	deadline := time.Now().Add(20 * time.Second)
	var retrying []*asynq.TaskInfo
	for time.Now().Before(deadline) && len(retrying) < 2 {
		retrying, _ = h.inspect.ListRetryTasks(tasks.QueueEmail)
		time.Sleep(100 * time.Millisecond)
	}
	if len(retrying) != 2 || h.smtp.Count() != 3 {
		t.Fatalf("%d emails waiting and %d sent, want 2 and 3", len(retrying), h.smtp.Count())
	}
	for _, r := range retrying {
		if r.Retried != 0 || !strings.Contains(r.LastErr, "daily limit of 3 emails reached") || time.Until(r.NextProcessAt) < 50*time.Second {
			t.Errorf("waiting email: retried %d, next at %v, %q", r.Retried, r.NextProcessAt, r.LastErr)
		}
	}
	if archived, _ := h.inspect.ListArchivedTasks(tasks.QueueEmail); len(archived) != 0 {
		t.Errorf("%d archived", len(archived))
	}
	metrics := h.get("/metrics")
	for _, want := range []string{"relay_smtp_quota_used 3", "relay_smtp_quota_limit 3"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestCheckPrintsTheProvidersLimitsAndRefusesABadDKIMKey(t *testing.T) {
	t.Parallel()
	badKey := filepath.Join(t.TempDir(), "dkim.pem")
	writeFile(t, badKey, "not a key")
	env := map[string]string{"RELAY_SMTP_RATE": "30/m", "RELAY_SMTP_DAILY_LIMIT": "10000"}
	out, err := relayOutput(t, env, "check")
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`RELAY_SMTP_RATE +30/m`).MatchString(out) {
		t.Errorf("check does not show the rate setting:\n%s", out)
	}
	for _, want := range []string{"smtp rate: 30/m shared by every worker; a cohort of 1,000 takes about 33m21s", "10000 emails per rolling 24 hours"} {
		if !strings.Contains(out, want) {
			t.Errorf("check lacks %q:\n%s", want, out)
		}
	}
	env["RELAY_DKIM_KEY_FILE"], env["RELAY_DKIM_SELECTOR"] = badKey, "exams2026"
	if out, err := relayOutput(t, env, "check"); err == nil || !strings.Contains(out, "FAIL  dkim") || !strings.Contains(err.Error(), "RELAY_DKIM_KEY_FILE") {
		t.Errorf("check with a key file that holds no key: %v\n%s", err, out)
	}
}
