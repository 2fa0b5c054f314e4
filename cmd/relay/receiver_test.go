package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/relay/webhook"
	"github.com/exam-relay/relay/tasks"
)

// answer is the receiver's JSON answer, as a sender reads it.
type answer struct {
	Status string            `json:"status"`
	ID     string            `json:"id"`
	Fields map[string]string `json:"fields"`
}

func TestReceiverStoresRegistrationBeforeAnswering(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := readExample(t, "registration.json")
	code, resp := h.post(body)
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, resp)
	}
	var got answer
	if err := json.Unmarshal([]byte(resp), &got); err != nil || got.Status != "accepted" {
		t.Fatalf("body %s (%v)", resp, err)
	}
	reg := decodeBody(t, body)
	if got.ID != reg.ID() {
		t.Errorf("id %q, want %q", got.ID, reg.ID())
	}
	// 202 promised it is in Redis: it is there, under its id, whatever
	// state the worker has moved it to since.
	info, err := h.inspect.GetTaskInfo(tasks.QueueRegistrations, tasks.TaskID(tasks.TypeRegistration, reg))
	if err != nil {
		t.Fatalf("task not in Redis after 202: %v", err)
	}
	if info.Type != tasks.TypeRegistration {
		t.Errorf("type %q", info.Type)
	}
}

func TestReceiverTreatsRepeatAsSuccessThatSendsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := readExample(t, "registration.json")
	codes := []int{}
	for range 3 {
		code, _ := h.post(body)
		codes = append(codes, code)
	}
	// A repeat is a success: "duplicate" (200) while the first is queued,
	// "accepted" (202) once it was delivered, when the worker finds it in
	// the student's ledger.
	if codes[0] != http.StatusAccepted || !isSuccess(codes[1]) || !isSuccess(codes[2]) {
		t.Fatalf("codes %v, want 202 then 200 or 202", codes)
	}
	h.smtp.WaitFor(t, 1, 10*time.Second)
	h.slack.WaitFor(t, 1, 10*time.Second)
	// Give a wrongly duplicated task time to arrive before counting.
	h.waitIdle(10 * time.Second)
	if n := h.smtp.Count(); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
	if n := len(h.slack.Posts()); n != 1 {
		t.Errorf("%d Slack posts, want 1", n)
	}
}

func TestReceiverRejectsWhatCannotWorkNamingTheField(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	valid := string(readExample(t, "registration.json"))
	tests := []struct {
		name        string
		body        string
		contentType string
		code        int
		field       string
	}{
		{"no email", strings.Replace(valid, `"email": "jonas.becker@example.edu",`, "", 1), "application/json", 400, "user.email"},
		{"not json", "user=jonas", "application/json", 400, "body"},
		{"empty", "", "application/json", 400, "body"},
		{"array", "[]", "application/json", 400, "body"},
		{"bad open date", strings.Replace(valid, "2026-12-14T09:00:00.000Z", "tomorrow", 1), "application/json; charset=utf-8", 400, "exam.schedule.openDate"},
		{"form post", valid, "application/x-www-form-urlencoded", 415, ""},
		{"too large", `{"pad":"` + strings.Repeat("x", webhook.MaxBodyBytes) + `"}`, "application/json", 413, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := h.do([]byte(tt.body), func(r *http.Request) {
				r.SetBasicAuth(testUser, testPassword)
				r.Header.Set("Content-Type", tt.contentType)
			})
			if code != tt.code {
				t.Fatalf("code %d, want %d: %s", code, tt.code, resp)
			}
			var got answer
			if err := json.Unmarshal([]byte(resp), &got); err != nil {
				t.Fatalf("body is not JSON: %s", resp)
			}
			if tt.field != "" && got.Fields[tt.field] == "" {
				t.Errorf("fields %v do not name %s", got.Fields, tt.field)
			}
		})
	}
	queues, err := h.inspect.Queues()
	if err != nil {
		t.Fatal(err)
	}
	if len(queues) != 0 {
		t.Errorf("rejected bodies reached the queue: %v", queues)
	}
}

func TestReceiverRequiresBothCredentials(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := readExample(t, "registration.json")
	for name, prepare := range map[string]func(*http.Request){
		"none":           func(*http.Request) {},
		"wrong password": func(r *http.Request) { r.SetBasicAuth(testUser, "guess") },
		"wrong username": func(r *http.Request) { r.SetBasicAuth("admin", testPassword) },
		"prefix":         func(r *http.Request) { r.SetBasicAuth(testUser, testPassword[:4]) },
	} {
		code, resp := h.do(body, prepare)
		if code != http.StatusUnauthorized {
			t.Errorf("%s: code %d %s, want 401", name, code, resp)
		}
	}
	if n, _ := h.inspect.Queues(); len(n) != 0 {
		t.Errorf("unauthenticated bodies reached the queue: %v", n)
	}
}

func TestReceiverNeverAnswers2xxForWhatItCouldNotKeep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withConfig(func(c *config.Config) { c.Spool.Max = 1 }))
	h.redis.Stop()
	if code, resp := h.post(registrationFor(1, 0)); code != http.StatusAccepted || !strings.Contains(resp, "spooled") {
		t.Fatalf("Redis down, spool empty: %d %s, want 202 spooled", code, resp)
	}
	// Redis down and the spool full: nothing could keep it.
	if code, resp := h.post(registrationFor(2, 0)); code != http.StatusServiceUnavailable || !strings.Contains(resp, "unavailable") {
		t.Fatalf("Redis down, spool full: %d %s, want 503", code, resp)
	}
	resp, err := http.Get(h.http.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with Redis down", resp.StatusCode)
	}
	h.redis.Start()
	h.waitReady()
	h.waitForRecipients([]string{"student1@example.edu"}, 20*time.Second)
	if code, resp := h.post(registrationFor(2, 0)); code != http.StatusAccepted {
		t.Errorf("after Redis came back: %d %s", code, resp)
	}
	h.waitForRecipients([]string{"student2@example.edu"}, 20*time.Second)
}

func TestOperationalEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.post(readExample(t, "registration.json"))
	h.post([]byte("{"))
	for path, want := range map[string]string{
		"/healthz": `"ok"`,
		"/readyz":  `"redis":"ok"`,
		"/metrics": `relay_webhooks_total{outcome="accepted"} 1`,
	} {
		resp, err := http.Get(h.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(b.String(), want) {
			t.Errorf("GET %s = %d, lacks %s:\n%.2000s", path, resp.StatusCode, want, b.String())
		}
	}
	resp, _ := http.Get(h.http.URL + "/metrics")
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`relay_webhooks_total{outcome="rejected"} 1`, "go_goroutines"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestReceiverSpoolsWhileRedisIsDownAndDeliversEverythingAfter(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const before, during = 10, 40
	for i := range before {
		if code, resp := h.post(registrationFor(i, i%3)); code != http.StatusAccepted {
			t.Fatalf("before: %d %s", code, resp)
		}
	}
	h.redis.Stop()
	for i := before; i < before+during; i++ {
		if code, resp := h.post(registrationFor(i, i%3)); code != http.StatusAccepted || !strings.Contains(resp, "spooled") {
			t.Fatalf("Redis down: %d %s, want 202 spooled", code, resp)
		}
	}
	if d := h.spoolDepth(); d != during {
		t.Errorf("spool depth %d, want %d", d, during)
	}
	resp, err := http.Get(h.http.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), fmt.Sprintf(`"spool":%d`, during)) {
		t.Errorf("/readyz = %d %s", resp.StatusCode, body)
	}

	// The restarted Redis is empty: what was queued before the stop is
	// lost with it (this one keeps nothing on disk), but everything
	// answered 202 while it was down must arrive.
	h.redis.Start()
	var want []string
	for i := before; i < before+during; i++ {
		want = append(want, fmt.Sprintf("student%d@example.edu", i))
	}
	got := h.waitForRecipients(want, 30*time.Second)
	for _, addr := range want {
		if got[addr] != 1 {
			t.Errorf("%s got %d emails, want 1", addr, got[addr])
		}
	}
	if d := h.spoolDepth(); d != 0 {
		t.Errorf("spool depth %d after draining", d)
	}
}

func TestOneEmailForARegistrationSignedUnderTwoWebhookIDs(t *testing.T) {
	t.Parallel()
	key := []byte("secret key for tests")
	h := newHarness(t, withSignatures(key))
	body := readExample(t, "registration.json")
	signer := webhook.NewStandardWebhooks([][]byte{key})
	signed := func(id string) func(*http.Request) {
		return func(r *http.Request) {
			now := time.Now()
			r.Header.Set("webhook-id", id)
			r.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			r.Header.Set("webhook-signature", signer.Sign(id, now, body))
		}
	}
	for _, step := range []struct {
		id   string
		want int
	}{{"msg_1", 202}, {"msg_1", 200}, {"msg_2", 202}} {
		if code, resp := h.do(body, signed(step.id)); code != step.want {
			t.Errorf("webhook-id %s: %d %s, want %d", step.id, code, resp, step.want)
		}
	}
	if code, _ := h.post(body); code != http.StatusUnauthorized {
		t.Errorf("Basic auth alone passed a receiver that requires signatures: %d", code)
	}
	h.waitForRecipients([]string{"jonas.becker@example.edu"}, 10*time.Second)
	h.waitIdle(10 * time.Second)
	if n := h.smtp.Count(); n != 1 {
		t.Errorf("%d emails for one registration sent under two webhook-ids, want 1", n)
	}
}

// With RELAY_REDIS_MIN_REPLICAS=1 and the replica hung, registrations are
// answered with a copy kept on disk; the copies stay while it lags, a
// registration the master lost (as one promoted without it would) is
// stored again from its copy, and the copies go once the replica holds
// them all. Real redis-servers, the receiver as relay serve wires it.
func TestCopiesForALaggingReplicaStayUntilItHoldsThem(t *testing.T) {
	t.Parallel()
	master := relaytest.StartRedis(t)
	replica := relaytest.StartReplica(t, master)
	ctx := t.Context()
	cfg := config.Default()
	cfg.RedisURL, cfg.Redis.MinReplicas = master.URL, 1
	cfg.Webhook.Username, cfg.Webhook.Password = testUser, testPassword
	cfg.Spool.Dir, cfg.LogLevel = t.TempDir(), "error"
	p, err := openRelay(ctx, cfg, env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if err := p.startReceiver(ctx); err != nil {
		t.Fatal(err)
	}
	handler := p.handler()
	post := func(i int) string {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(registrationFor(i, 0)))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(testUser, testPassword)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		var got answer
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusAccepted || got.Status != "accepted" {
			t.Fatalf("POST = %d %s", rec.Code, rec.Body)
		}
		return tasks.TypeRegistration + ":" + got.ID
	}
	copies := p.http.Unreplicated
	post(1)
	if n := copies.Depth(); n != 0 {
		t.Fatalf("%d copies of a registration the replica held", n)
	}

	replica.Pause()
	post(2)
	lost := post(3)
	if n := copies.Depth(); n != 2 {
		t.Fatalf("%d copies with the replica hung, want 2", n)
	}
	// The replica hangs for three more seconds: three sweeps keep them.
	time.Sleep(3 * time.Second)
	if n := copies.Depth(); n != 2 {
		t.Fatalf("%d copies while the replica still lags, want 2", n)
	}
	// Still hung, so that no sweep under way when the task goes can see
	// the replica confirm it.
	key := "asynq:{" + tasks.QueueRegistrations + "}:t:" + lost
	if err := asynq.NewInspectorFromRedisClient(master.Client()).DeleteTask(tasks.QueueRegistrations, lost); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); master.Client().Exists(ctx, key).Val() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the registration the master lost was not stored again from its copy within 15 s")
		}
	}
	if n := copies.Depth(); n != 2 {
		t.Fatalf("%d copies once it was stored again, the replica still hung; want 2", n)
	}
	replica.Resume()
	for deadline := time.Now().Add(15 * time.Second); copies.Depth() > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d copies 15 s after the replica resumed, want 0", copies.Depth())
		}
	}
	if n, _ := replica.Client().Exists(ctx, key).Result(); n != 1 {
		t.Error("the copies were dropped, and the replica lacks the registration stored again")
	}
}

// BenchmarkIntakeWithMinReplicas is what RELAY_REDIS_MIN_REPLICAS=1 costs
// a webhook: the receiver as wired for relay serve, against a master with
// one replica (both real redis-servers), with and without the wait, from
// one client (ns/op is the latency) and from 16 at once (ns/op is the
// inverse of the throughput).
//
//	go test -run '^$' -bench IntakeWithMinReplicas -benchtime 5000x -count 3 ./cmd/relay/
func BenchmarkIntakeWithMinReplicas(b *testing.B) {
	master := relaytest.StartRedis(b)
	relaytest.StartReplica(b, master)
	var next atomic.Int64
	post := func(b *testing.B, handler http.Handler) {
		i := int(next.Add(1))
		req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(registrationFor(i, i%20)))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(testUser, testPassword)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Errorf("POST = %d %s", rec.Code, rec.Body)
		}
	}
	for _, clients := range []int{1, 16} {
		for _, minReplicas := range []int{0, 1} {
			b.Run(fmt.Sprintf("clients=%d/min_replicas=%d", clients, minReplicas), func(b *testing.B) {
				cfg := config.Default()
				cfg.RedisURL, cfg.Redis.MinReplicas = master.URL, minReplicas
				cfg.Webhook.Username, cfg.Webhook.Password = testUser, testPassword
				cfg.Spool.Dir, cfg.LogLevel = b.TempDir(), "error"
				p, err := openRelay(b.Context(), cfg, env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}, false)
				if err != nil {
					b.Fatal(err)
				}
				defer p.close()
				if err := p.startReceiver(b.Context()); err != nil {
					b.Fatal(err)
				}
				handler := p.handler()
				b.ResetTimer()
				if clients == 1 {
					for range b.N {
						post(b, handler)
					}
				} else {
					b.SetParallelism(clients / runtime.GOMAXPROCS(0))
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							post(b, handler)
						}
					})
				}
				b.StopTimer()
				// A registration the replica did not hold within a second
				// has a copy kept: the figures would then measure timeouts.
				b.ReportMetric(metricValue(b, handler, "relay_webhooks_unreplicated_total"), "unreplicated")
			})
		}
	}
}

// metricValue is what handler's /metrics says of an unlabelled series.
func metricValue(t testing.TB, handler http.Handler, name string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

func isSuccess(code int) bool { return code == http.StatusOK || code == http.StatusAccepted }
