package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

// asRelayEnv makes the test binary run `relay <args>` instead of tests, so
// fault tests can kill a real relay process without building one.
const asRelayEnv = "RELAY_TEST_RUN_AS_RELAY"

// osProcess is a relay running as a child process.
type osProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProcess(t *testing.T, env map[string]string, args ...string) *osProcess {
	t.Helper()
	log := filepath.Join(t.TempDir(), "relay.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), asRelayEnv+"="+strings.Join(args, " "))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &osProcess{cmd: cmd, log: log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("relay %s log:\n%s", args[0], logDigest(b))
		}
	})
	return p
}

// logDigest is what a failed test shows of a relay's log: its start, the
// first and last lines that are not INFO (what went wrong is there, however
// long the log), and its end.
func logDigest(b []byte) string {
	const head, tail, notInfo = 1500, 1500, 30
	if len(b) <= head+tail {
		return string(b)
	}
	var lines []string
	for line := range strings.Lines(string(b[head : len(b)-tail])) {
		if !strings.Contains(line, `"level":"INFO"`) {
			lines = append(lines, line)
		}
	}
	if n := len(lines); n > 2*notInfo {
		lines = slices.Concat(lines[:notInfo], []string{fmt.Sprintf("[… %d more]\n", n-2*notInfo)}, lines[n-notInfo:])
	}
	return fmt.Sprintf("%s\n[… not INFO:]\n%s[… end:]\n%s", b[:head], strings.Join(lines, ""), b[len(b)-tail:])
}

func (p *osProcess) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// fixture is a Redis, an SMTP server and a Slack stand-in, and the
// environment that points a relay at them.
type fixture struct {
	redis *relaytest.Redis
	smtp  *relaytest.SMTPSink
	slack *relaytest.Slack
	env   map[string]string
}

func newFixture(t *testing.T, redis *relaytest.Redis) *fixture {
	f := &fixture{redis: redis, smtp: relaytest.StartSMTP(t), slack: relaytest.StartSlack(t)}
	f.env = map[string]string{
		"RELAY_HTTP_ADDR":         "127.0.0.1:0",
		"RELAY_REDIS_URL":         redis.URL,
		"RELAY_SMTP_URL":          f.smtp.URL(),
		"RELAY_SLACK_WEBHOOK_URL": f.slack.WebhookURL(),
		"RELAY_WEBHOOK_PASSWORD":  "pw",
		"RELAY_SPOOL_DIR":         t.TempDir(),
		"RELAY_OUTBOX_DIR":        t.TempDir(),
		"RELAY_RETRY_SCHEDULE":    "1s",
		"RELAY_SHUTDOWN_TIMEOUT":  "5s",
	}
	return f
}

func (f *fixture) with(kv ...string) map[string]string {
	env := map[string]string{}
	for k, v := range f.env {
		env[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

func registration(i int) []byte {
	return []byte(fmt.Sprintf(`{"user":{"id":"usr_%d","name":"Student %d","email":"student%d@example.edu"},
		"portal":{"id":"portal_test"},
		"exam":{"objectId":"exm_%d","name":"Exam %d","url":"https://exams.example.edu/%d",
			"schedule":{"openDate":"2026-12-14T09:00:00Z","closeDate":"2026-12-14T11:00:00Z"}},
		"userGroup":{"objectId":"grp_1","name":"Cohort"}}`, i, i, i, i%20, i%20, i%20))
}

func address(i int) string { return fmt.Sprintf("student%d@example.edu", i) }

// postAll posts registrations from..to-1 from 16 clients and returns the
// numbers answered 2xx.
func postAll(t *testing.T, base string, from, to int) []int {
	t.Helper()
	var mu sync.Mutex
	var accepted []int
	next := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := range next {
				req, _ := http.NewRequest(http.MethodPost, base+"/webhooks/synap/user-registered-for-exam", strings.NewReader(string(registration(i))))
				req.Header.Set("Content-Type", "application/json")
				req.SetBasicAuth("synap", "pw")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					mu.Lock()
					accepted = append(accepted, i)
					mu.Unlock()
				}
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return accepted
}

// enqueueAll puts registrations from..to-1 straight into the queue, as a
// receiver would.
func enqueueAll(t *testing.T, redis *relaytest.Redis, from, to int) {
	t.Helper()
	client := asynq.NewClientFromRedisClient(redis.Client())
	for i := from; i < to; i++ {
		reg, err := relay.DecodeRegistration(registration(i))
		if err != nil {
			t.Fatal(err)
		}
		task, _ := tasks.NewRegistrationTask(reg, tasks.Options{MaxRetry: 20})
		if _, err := client.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
}

// waitDelivered polls until every address in want has an email, then until
// the email queue is idle, and returns the emails per address.
func waitDelivered(t *testing.T, f *fixture, want []int, timeout time.Duration) map[string]int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	inspect := asynq.NewInspectorFromRedisClient(f.redis.Client())
	for {
		got := map[string]int{}
		for _, m := range f.smtp.Messages() {
			for _, to := range m.To {
				got[to]++
			}
		}
		var missing []int
		for _, i := range want {
			if got[address(i)] == 0 {
				missing = append(missing, i)
			}
		}
		// The fan-out sends most emails itself; the email queue holds only
		// those it handed over.
		busy := queuesBusy(inspect, tasks.QueueRegistrations, tasks.QueueEmail)
		if len(missing) == 0 && busy == "" {
			return got
		}
		if time.Now().After(deadline) {
			if retries, err := inspect.ListRetryTasks(tasks.QueueEmail); err == nil {
				for _, r := range retries {
					t.Logf("waiting to retry: %s at %v after %d retries: %s", r.ID, r.NextProcessAt, r.Retried, r.LastErr)
				}
			}
			t.Fatalf("after %v: %d of %d students without an email, such as %v (queues: %s)", timeout, len(missing), len(want), missing[:min(len(missing), 10)], busy)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// upTo is 0, 1, … n-1: the registration numbers of a burst.
func upTo(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func duplicates(got map[string]int) int {
	n := 0
	for _, c := range got {
		n += c - 1
	}
	return n
}

func TestThreeWorkersShareOneRedisWithoutDuplicates(t *testing.T) {
	f := newFixture(t, relaytest.StartRedis(t))
	env := f.with("RELAY_DIGEST_GRACE", "1s", "RELAY_DIGEST_MAX_DELAY", "3s")
	for range 3 {
		startProcess(t, env, "work")
	}
	const n = 1000
	enqueueAll(t, f.redis, 0, n)
	want := upTo(n)
	got := waitDelivered(t, f, want, 3*time.Minute)
	if len(got) != n || duplicates(got) != 0 {
		t.Errorf("%d students emailed, %d duplicates; want %d and 0", len(got), duplicates(got), n)
	}
	// The registrations are for 20 exams: digests, which together count
	// every student once.
	if counted := waitDigested(t, f.slack, n, 2*time.Minute); counted != n {
		t.Errorf("digests count %d students, want %d", counted, n)
	}
	if posts := len(f.slack.Posts()); posts < 20 || posts > 100 {
		t.Errorf("%d Slack posts for 20 exams", posts)
	}
}

// digestCount reads "*N students*" from a digest post.
var digestCount = regexp.MustCompile(`\*(\d+) students?\*`)

// waitDigested polls until the Slack digests count n students, and
// returns what they count.
func waitDigested(t *testing.T, slack *relaytest.Slack, n int, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		counted := 0
		for _, p := range slack.Posts() {
			if m := digestCount.FindStringSubmatch(p.Text); m != nil {
				c, _ := strconv.Atoi(m[1])
				counted += c
			}
		}
		if counted >= n || time.Now().After(deadline) {
			time.Sleep(500 * time.Millisecond) // room for a wrong extra digest
			return counted
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestWorkerKilledMidBurstLosesNothing(t *testing.T) {
	t.Parallel() // waits a minute or two for asynq's lease recovery
	f := newFixture(t, relaytest.StartRedis(t))
	// A slower SMTP server widens the window in which the kill lands
	// mid-delivery.
	f.smtp.SetDataHook(func(string, []string) *smtp.SMTPError { time.Sleep(5 * time.Millisecond); return nil })
	const n = 300
	first := startProcess(t, f.env, "work")
	enqueueAll(t, f.redis, 0, n)
	f.smtp.WaitFor(t, 60, time.Minute)
	first.kill()
	before := f.smtp.Count()
	startProcess(t, f.env, "work")

	// Tasks the killed worker held come back when their 30 s lease
	// expires and asynq's recoverer (every minute) runs.
	want := upTo(n)
	got := waitDelivered(t, f, want, 3*time.Minute)
	t.Logf("killed after %d emails; %d students emailed, %d duplicates", before, len(got), duplicates(got))
	if len(got) != n {
		t.Errorf("%d students emailed, want %d", len(got), n)
	}
	// A duplicate needs the kill to land between the SMTP server's OK and
	// the sent mark, for one of the few deliveries in flight.
	if d := duplicates(got); d > 10 {
		t.Errorf("%d duplicates", d)
	}
}

func TestRedisStoppedDuringBurstLosesNothingAnswered2xx(t *testing.T) {
	t.Parallel() // may wait a minute or two for asynq's lease recovery
	f := newFixture(t, relaytest.StartPersistentRedis(t))
	p := start(t, f.env, "run")
	accepted := postAll(t, p.base, 0, 100)
	f.redis.Stop()
	down := postAll(t, p.base, 100, 200)
	f.redis.Start()
	after := postAll(t, p.base, 200, 300)
	if len(accepted) != 100 || len(down) != 100 || len(after) != 100 {
		t.Fatalf("answered 2xx: %d before, %d while Redis was down, %d after; want 100 each", len(accepted), len(down), len(after))
	}
	accepted = append(append(accepted, down...), after...)
	// A task whose dequeue or completion Redis took but never answered,
	// because it died, stays active until its lease expires and asynq's
	// recoverer re-runs it: up to 30 s + 1 min. The sent mark keeps that
	// re-run from emailing again.
	got := waitDelivered(t, f, accepted, 3*time.Minute)
	for _, i := range accepted {
		if got[address(i)] != 1 {
			t.Errorf("%s got %d emails, want 1", address(i), got[address(i)])
		}
	}
	// The 100 sent while Redis was down, and those of the next 100 that
	// came before the drainer emptied the spool.
	var spooled int
	for _, line := range strings.Split(p.get("/metrics"), "\n") {
		fmt.Sscanf(line, `relay_webhooks_total{outcome="spooled"} %d`, &spooled)
	}
	if spooled < 100 {
		t.Errorf("/metrics counts %d spooled, want at least 100", spooled)
	}
}

func TestSMTPFaultsRetryTemporaryAndArchivePermanent(t *testing.T) {
	f := newFixture(t, relaytest.StartRedis(t))
	var mu sync.Mutex
	refused := map[string]bool{}
	f.smtp.SetRcptHook(func(rcpt string) *smtp.SMTPError {
		mu.Lock()
		defer mu.Unlock()
		var i int
		fmt.Sscanf(rcpt, "student%d@", &i)
		switch {
		case strings.HasSuffix(rcpt, "@blocked.example"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
		case i%2 == 0 && !refused[rcpt]:
			refused[rcpt] = true
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	})
	p := start(t, f.env, "run")
	const n = 40
	if accepted := postAll(t, p.base, 0, n); len(accepted) != n {
		t.Fatalf("%d of %d accepted", len(accepted), n)
	}
	for i := n; i < n+5; i++ {
		body := strings.Replace(string(registration(i)), "@example.edu", "@blocked.example", 1)
		if code := p.post("synap", "pw", []byte(body)); code != http.StatusAccepted {
			t.Fatalf("blocked %d: %d", i, code)
		}
	}
	want := upTo(n)
	got := waitDelivered(t, f, want, time.Minute)
	if len(got) != n || duplicates(got) != 0 {
		t.Errorf("%d students emailed, %d duplicates; want %d, 0", len(got), duplicates(got), n)
	}
	if r := f.smtp.Rejected(); r != n/2+5 {
		t.Errorf("%d refusals at the SMTP server, want %d (each 451 once, each 550 once: never retried)", r, n/2+5)
	}

	var out strings.Builder
	if err := run(t.Context(), []string{"relay", "tasks", "-json"}, func(k string) string { return f.env[k] }, nil, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(out.String(), `"channel": "email"`); c != 5 || strings.Count(out.String(), "550") < 5 {
		t.Errorf("relay tasks -json lists %d failed emails, want 5 with 550:\n%s", c, out.String())
	}
	out.Reset()
	if err := run(t.Context(), []string{"relay", "tasks"}, func(k string) string { return f.env[k] }, nil, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "usr_41") || !strings.Contains(out.String(), "5 failed") {
		t.Errorf("relay tasks:\n%s", out.String())
	}

	reg, _ := relay.DecodeRegistration([]byte(strings.Replace(string(registration(41)), "@example.edu", "@blocked.example", 1)))
	id := tasks.TaskID(tasks.TypeEmail, reg)
	if err := run(t.Context(), []string{"relay", "tasks", "delete", id}, func(k string) string { return f.env[k] }, nil, &out, os.Stderr); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	run(t.Context(), []string{"relay", "tasks", "retry", "-all"}, func(k string) string { return f.env[k] }, nil, &out, os.Stderr)
	if !strings.Contains(out.String(), "4 failed deliveries queued again") {
		t.Errorf("retry -all: %s", out.String())
	}
}

func TestSIGTERMFinishesInFlightAndExitsZero(t *testing.T) {
	f := newFixture(t, relaytest.StartRedis(t))
	f.smtp.SetDataHook(func(string, []string) *smtp.SMTPError { time.Sleep(20 * time.Millisecond); return nil })
	const n = 200
	first := startProcess(t, f.env, "work")
	enqueueAll(t, f.redis, 0, n)
	f.smtp.WaitFor(t, 20, time.Minute)
	first.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-first.done:
	case <-time.After(20 * time.Second):
		t.Fatal("worker did not stop within 20s of SIGTERM")
	}
	if code := first.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	startProcess(t, f.env, "work")
	want := upTo(n)
	// No lease to wait for: a stopping worker hands back what it did not
	// finish.
	got := waitDelivered(t, f, want, time.Minute)
	if len(got) != n || duplicates(got) != 0 {
		t.Errorf("%d students emailed, %d duplicates; want %d, 0", len(got), duplicates(got), n)
	}
}

// listening finds the receiver's address in what a relay prints.
var listening = regexp.MustCompile(`Listening on (https?://[^/\s]+)`)

// waitForLog polls the process's output until pattern matches, and
// returns the match and its groups.
func (p *osProcess) waitForLog(t *testing.T, pattern *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(p.log)
		if m := pattern.FindStringSubmatch(string(b)); m != nil {
			return m
		}
		select {
		case <-p.done:
			t.Fatalf("relay ended before its output matched %s", pattern)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s in the relay's output after %v", pattern, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
