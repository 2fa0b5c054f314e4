package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/relay/webhook"
	"github.com/exam-relay/relay/tasks"
)

const (
	testUser     = "synap"
	testPassword = "s3cret-for-tests"
)

// harness is a relay wired as `relay run` wires it (wire.go), talking to
// real parts: a redis-server, an SMTP server and a Slack stand-in, with
// its HTTP API on an httptest server.
type harness struct {
	t       *testing.T
	redis   *relaytest.Redis
	smtp    *relaytest.SMTPSink
	slack   *relaytest.Slack
	teams   *relaytest.Teams
	http    *httptest.Server
	inspect *asynq.Inspector
	relay   *relayProcess
}

// harnessOption changes the config the relay starts with.
type harnessOption func(*harness, *config.Config)

// withConfig changes the config: routes, languages, zones.
func withConfig(configure func(*config.Config)) harnessOption {
	return func(_ *harness, c *config.Config) { configure(c) }
}

func withReminders(beforeOpen ...time.Duration) harnessOption {
	return withConfig(func(c *config.Config) {
		for _, d := range beforeOpen {
			c.Reminders.BeforeOpen = append(c.Reminders.BeforeOpen, config.Duration(d))
		}
	})
}

// withBot posts with a bot token (and so updates digests) instead of an
// incoming webhook.
func withBot() harnessOption {
	return func(h *harness, c *config.Config) {
		c.Slack.WebhookURL, c.Slack.Token, c.Slack.Channel, c.Slack.APIURL = "", relaytest.SlackToken, "C0EXAMS", h.slack.APIURL()
	}
}

// withDigest posts Slack digests gathered over window instead of one
// message per registration.
func withDigest(window redisstore.DigestWindow) harnessOption {
	return withConfig(func(c *config.Config) {
		c.Slack.Mode = string(relay.ModeDigest)
		c.Slack.Digest.Grace, c.Slack.Digest.MaxDelay = config.Duration(window.Grace), config.Duration(window.MaxDelay)
		c.Slack.Digest.MaxSize = window.MaxSize
	})
}

// withTeams tells staff in Teams too, in mode.
func withTeams(mode relay.StaffMode) harnessOption {
	return func(h *harness, c *config.Config) {
		c.Teams.WebhookURL, c.Teams.Mode = h.teams.WebhookURL(), string(mode)
	}
}

// withSignatures makes the receiver require Standard Webhooks signatures
// with any of keys, and no Basic auth.
func withSignatures(keys ...[]byte) harnessOption {
	return withConfig(func(c *config.Config) {
		c.Webhook.Password = ""
		for _, k := range keys {
			c.Webhook.Secrets = append(c.Webhook.Secrets, "whsec_"+base64.StdEncoding.EncodeToString(k))
		}
	})
}

func newHarness(t *testing.T, options ...harnessOption) *harness {
	t.Helper()
	h := &harness{t: t, redis: relaytest.StartRedis(t), smtp: relaytest.StartSMTP(t), slack: relaytest.StartSlack(t), teams: relaytest.StartTeams(t)}
	cfg := config.Default()
	cfg.RedisURL = h.redis.URL
	cfg.SMTP.URL, cfg.SMTP.PoolSize = h.smtp.URL(), 2
	cfg.Email.From = "Exams Office <exams@example.edu>"
	cfg.TimeZone = "Europe/London"
	cfg.Slack.Mode, cfg.Slack.WebhookURL = string(relay.ModeEach), h.slack.WebhookURL()
	cfg.Slack.Digest.Grace, cfg.Slack.Digest.MaxDelay, cfg.Slack.Digest.MaxSize = config.Duration(time.Second), config.Duration(10*time.Second), 100
	cfg.Webhook.Username, cfg.Webhook.Password = testUser, testPassword
	cfg.Spool.Dir = t.TempDir()
	cfg.Retention = config.Duration(time.Hour)
	cfg.Worker.Concurrency, cfg.Worker.MaxRetry, cfg.Worker.ShutdownTimeout = 4, 3, config.Duration(5*time.Second)
	for _, o := range options {
		o(h, &cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := io.Discard
	if testing.Verbose() {
		logs, cfg.LogLevel = os.Stderr, "debug"
	}

	ctx, cancel := context.WithCancel(context.Background())
	p, err := openRelay(ctx, cfg, env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: logs}, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); p.close() })
	if err := p.startReceiver(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.startWorker(); err != nil {
		t.Fatal(err)
	}
	h.relay = p
	h.inspect = asynq.NewInspectorFromRedisClient(h.redis.Client())
	h.http = httptest.NewServer(p.handler())
	t.Cleanup(h.http.Close)
	return h
}

// post sends body to the webhook with the test credentials.
func (h *harness) post(body []byte) (int, string) {
	h.t.Helper()
	return h.do(body, func(r *http.Request) { r.SetBasicAuth(testUser, testPassword) })
}

func (h *harness) do(body []byte, prepare func(*http.Request)) (int, string) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.http.URL+webhook.Path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	prepare(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// get is the body of GET path.
func (h *harness) get(path string) string {
	h.t.Helper()
	resp, err := http.Get(h.http.URL + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// spoolDepth is how many registrations wait in the receiver's spool.
func (h *harness) spoolDepth() int { return h.relay.http.Spool.Depth() }

// registrationFor is a distinct student's registration for exam (0…).
func registrationFor(student, exam int) []byte {
	return []byte(fmt.Sprintf(`{"user":{"id":"usr_%d","name":"Student %d","email":"student%d@example.edu"},
		"portal":{"id":"portal_test"},
		"exam":{"objectId":"exm_%d","name":"Exam %d","url":"https://exams.example.edu/%d",
			"schedule":{"openDate":"2026-12-14T09:00:00Z","closeDate":"2026-12-14T11:00:00Z"}},
		"userGroup":{"objectId":"grp_1","name":"Cohort"}}`, student, student, student, exam, exam, exam))
}

// inAMonth moves a registrationFor's exam to a month from now.
func inAMonth(body []byte) []byte {
	day := time.Now().AddDate(0, 1, 0).UTC().Format(time.DateOnly)
	return bytes.ReplaceAll(body, []byte("2026-12-14"), []byte(day))
}

// recipients counts the emails each address received.
func recipients(msgs []relaytest.Message) map[string]int {
	counts := map[string]int{}
	for _, m := range msgs {
		for _, to := range m.To {
			counts[to]++
		}
	}
	return counts
}

// waitForRecipients polls until every address in want has an email, then
// returns the count per address.
func (h *harness) waitForRecipients(want []string, timeout time.Duration) map[string]int {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := recipients(h.smtp.Messages())
		missing := 0
		for _, addr := range want {
			if got[addr] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d of %d students have no email after %v", missing, len(want), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func decodeBody(t *testing.T, body []byte) relay.Registration {
	t.Helper()
	r, err := relay.DecodeRegistration(body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitReady polls /readyz until Redis answers again.
func (h *harness) waitReady() {
	h.t.Helper()
	for range 100 {
		resp, err := http.Get(h.http.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatal("/readyz did not recover")
}

// waitIdle polls until the queues (by default all) hold no work to do:
// nothing pending, running, waiting to retry, scheduled or gathered for a
// digest. A task the relay should not have made has arrived by then.
func (h *harness) waitIdle(timeout time.Duration, queues ...string) {
	h.t.Helper()
	waitIdle(h.t, h.inspect, timeout, queues...)
}

func waitIdle(t testing.TB, inspect *asynq.Inspector, timeout time.Duration, queues ...string) {
	t.Helper()
	if len(queues) == 0 {
		queues = []string{tasks.QueueRegistrations, tasks.QueueEmail, tasks.QueueSlack, tasks.QueueTeams}
	}
	deadline := time.Now().Add(timeout)
	for {
		busy := queuesBusy(inspect, queues...)
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queues still busy after %v: %s", timeout, busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// queuesBusy says what the queues hold that is still to do, or "" when
// they hold nothing.
func queuesBusy(inspect *asynq.Inspector, queues ...string) string {
	existing, err := inspect.Queues()
	if err != nil {
		return err.Error()
	}
	busy := ""
	for _, queue := range queues {
		if !slices.Contains(existing, queue) {
			continue // nothing was ever queued there
		}
		q, err := inspect.GetQueueInfo(queue)
		switch {
		case err != nil:
			busy += fmt.Sprintf("%s: %v; ", queue, err)
		case q.Pending+q.Active+q.Retry+q.Scheduled+q.Aggregating > 0:
			busy += fmt.Sprintf("%s: pending %d, active %d, retry %d, scheduled %d, aggregating %d; ", queue, q.Pending, q.Active, q.Retry, q.Scheduled, q.Aggregating)
		}
	}
	return busy
}

// waitGone polls until a task is done: completed tasks are not kept.
func (h *harness) waitGone(queue, id string, timeout time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info, err := h.inspect.GetTaskInfo(queue, id)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("task %s in %s still there after %v: %+v (err %v)", id, queue, timeout, info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// attemptsSpent is how many failed attempts asynq counted in queue: a
// wait for a rate limit is not one.
func (h *harness) attemptsSpent(queue string) int {
	h.t.Helper()
	q, err := h.inspect.GetQueueInfo(queue)
	if err != nil {
		h.t.Fatalf("queue %s: %v", queue, err)
	}
	return q.FailedTotal
}

// waitForTask polls until the task reaches state or the timeout passes.
func (h *harness) waitForTask(queue, id string, state asynq.TaskState, timeout time.Duration) *asynq.TaskInfo {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	var info *asynq.TaskInfo
	var err error
	for time.Now().Before(deadline) {
		if info, err = h.inspect.GetTaskInfo(queue, id); err == nil && info.State == state {
			return info
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("task %s in %s: want %v, have %+v (err %v)", id, queue, state, info, err)
	return nil
}
