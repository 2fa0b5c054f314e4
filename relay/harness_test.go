package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

const (
	testUser     = "synap"
	testPassword = "s3cret-for-tests"
)

// harness is a relay wired to real parts: a redis-server, an SMTP server
// and a Slack stand-in, with the HTTP API on an httptest server.
type harness struct {
	t       *testing.T
	redis   *relaytest.Redis
	smtp    *relaytest.SMTPSink
	slack   *relaytest.Slack
	http    *httptest.Server
	inspect *asynq.Inspector
	metrics *Metrics
	spool   *Spool // nil unless withSpool
	signing *StandardWebhooks
	noBasic bool // signatures alone
	digest  *DigestWindow
	bot     bool
	// reminders before the exam opens, when set.
	reminders []time.Duration
	// configure changes the config the worker's routing is made from.
	configure func(*config.Config)
	worker    *Worker
}

// withConfig changes the config the routing is built from: routes,
// languages, zones.
func withConfig(configure func(*config.Config)) harnessOption {
	return func(h *harness) { h.configure = configure }
}

func withReminders(beforeOpen ...time.Duration) harnessOption {
	return func(h *harness) { h.reminders = beforeOpen }
}

// withBot posts with a bot token (and so updates digests) instead of an
// incoming webhook.
func withBot() harnessOption { return func(h *harness) { h.bot = true } }

// withDigest posts Slack digests gathered over window instead of one
// message per registration.
func withDigest(window DigestWindow) harnessOption {
	return func(h *harness) { h.digest = &window }
}

// withSignatures makes the receiver verify Standard Webhooks signatures,
// alone when basic is false.
func withSignatures(basic bool, keys ...[]byte) harnessOption {
	return func(h *harness) { h.signing, h.noBasic = NewStandardWebhooks(keys), !basic }
}

type harnessOption func(*harness)

// withSpool gives the receiver a spool and runs its drainer.
func withSpool() harnessOption {
	return func(h *harness) {
		spool, err := OpenSpool(h.t.TempDir(), 10_000, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			h.t.Fatal(err)
		}
		h.spool = spool
	}
}

func TestMain(m *testing.M) {
	// go-redis logs every failed dial; fault tests make many on purpose.
	redis.SetLogger(relaytest.QuietRedisLogger{})
	os.Exit(m.Run())
}

func newHarness(t *testing.T, options ...harnessOption) *harness {
	t.Helper()
	h := &harness{t: t, redis: relaytest.StartRedis(t), smtp: relaytest.StartSMTP(t), slack: relaytest.StartSlack(t)}
	for _, o := range options {
		o(h)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// Fail fast while a test has Redis stopped, instead of go-redis's
	// patient default retries; one retry replaces a connection that died
	// with a restarted server.
	rdb := redis.NewClient(&redis.Options{Addr: h.redis.Addr, MaxRetries: 1, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	queue := asynq.NewClientFromRedisClient(rdb)
	h.inspect = asynq.NewInspectorFromRedisClient(rdb)
	h.metrics = NewMetrics()
	opts := tasks.Options{Retention: time.Hour, MaxRetry: 3}

	server, err := config.ParseSMTPURL(h.smtp.URL())
	if err != nil {
		t.Fatal(err)
	}
	pool := NewSMTPPool(server, 2)
	t.Cleanup(func() { pool.Close() })
	london, _ := time.LoadLocation("Europe/London")
	cfg := config.Default()
	cfg.TimeZone = "Europe/London"
	cfg.Email.From = "Exams Office <exams@example.edu>"
	cfg.Slack.Mode = config.SlackEach
	cfg.Slack.WebhookURL = h.slack.WebhookURL()
	if h.bot {
		cfg.Slack.WebhookURL, cfg.Slack.Token, cfg.Slack.Channel, cfg.Slack.APIURL = "", relaytest.SlackToken, "C0EXAMS", h.slack.APIURL()
	}
	if h.digest != nil {
		cfg.Slack.Mode = config.SlackDigest
	}
	if h.configure != nil {
		h.configure(&cfg)
	}
	routing, err := NewRouting(cfg, NewSlackFor(cfg.Slack.Token, cfg.Slack.APIURL, http.DefaultClient, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	w := NewWorker(routing)
	w.Queue, w.Options, w.Mailer = queue, opts, pool
	w.Log, w.Metrics, w.Sent = log, h.metrics, SentLog{Redis: rdb, TTL: time.Hour}
	w.SlackLimit = NewSlackLimiter(rdb)
	w.Schedules = &ScheduleLog{Redis: rdb, TTL: time.Hour}
	w.Reminders = &Reminders{BeforeOpen: h.reminders, Inspector: h.inspect}
	h.worker = w
	settings := WorkerSettings{
		Concurrency: 4, ShutdownTimeout: 5 * time.Second, RetrySchedule: config.Default().Worker.RetrySchedule.Std(),
		Aggregator: asynq.GroupAggregatorFunc(w.Aggregate), Digest: DigestWindow{Grace: time.Second, MaxDelay: 10 * time.Second, MaxSize: 100},
	}
	if h.bot {
		w.Board = &DigestBoard{Redis: rdb, Location: london}
	}
	if h.digest != nil {
		settings.Digest = *h.digest
	}
	srv := asynq.NewServerFromRedisClient(rdb, ServerConfig(settings, log))
	if err := srv.Start(w.Mux()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)

	receiver := NewReceiver(queue, opts, h.spool, log, h.metrics)
	receiver.Signatures = h.signing
	creds := Credentials{Username: testUser, Password: testPassword}
	if h.noBasic {
		creds = Credentials{}
	}
	if h.spool != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { h.spool.RunDrainer(ctx, 200*time.Millisecond, receiver.EnqueueSpooled); close(done) }()
		t.Cleanup(func() { cancel(); <-done; h.spool.Close() })
	}
	h.http = httptest.NewServer(NewServer(ServerDeps{
		Receiver:    receiver,
		Spool:       h.spool,
		Credentials: creds,
		Ready:       func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Metrics:     h.metrics,
		Log:         log,
	}))
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
	req, err := http.NewRequest(http.MethodPost, h.http.URL+WebhookPath, bytes.NewReader(body))
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

// registration is a distinct student's registration for exam (0…).
func registration(student, exam int) []byte {
	return []byte(fmt.Sprintf(`{"user":{"id":"usr_%d","name":"Student %d","email":"student%d@example.edu"},
		"portal":{"id":"portal_test"},
		"exam":{"objectId":"exm_%d","name":"Exam %d","url":"https://exams.example.edu/%d",
			"schedule":{"openDate":"2026-12-14T09:00:00Z","closeDate":"2026-12-14T11:00:00Z"}},
		"userGroup":{"objectId":"grp_1","name":"Cohort"}}`, student, student, student, exam, exam, exam))
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

func example(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, body []byte) tasks.Registration {
	t.Helper()
	r, err := tasks.DecodeRegistration(body)
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
