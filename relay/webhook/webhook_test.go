package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/tasks"
)

// memoryQueue keeps task ids in memory, or fails every enqueue as a Redis
// that is away would: these tests are about the HTTP surface, not Redis,
// which cmd/relay's tests cover end to end.
type memoryQueue struct {
	mu   sync.Mutex
	ids  map[string]bool
	down bool
}

func (q *memoryQueue) EnqueueContext(_ context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.down {
		return nil, errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")
	}
	// The id a task was made with is not readable back; the payload's is.
	reg, err := tasks.ParseRegistration(task.Payload())
	if err != nil {
		return nil, err
	}
	key := tasks.TaskID(task.Type(), reg)
	for _, o := range opts {
		if o.Type() == asynq.TaskIDOpt {
			key = o.Value().(string)
		}
	}
	if q.ids[key] {
		return nil, asynq.ErrTaskIDConflict
	}
	q.ids[key] = true
	return &asynq.TaskInfo{ID: key}, nil
}

const user, password = "synap", "s3cret"

type server struct {
	http.Handler
	receiver *Receiver
	queue    *memoryQueue
	spool    *Spool
	reg      *prometheus.Registry
}

func newServer(t testing.TB, spoolMax int, signatures *StandardWebhooks, creds Credentials, options ...func(*ReceiverDeps)) *server {
	t.Helper()
	s := &server{queue: &memoryQueue{ids: map[string]bool{}}, reg: prometheus.NewRegistry()}
	var err error
	if s.spool, err = OpenSpool(t.TempDir(), spoolMax, quietLog()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.spool.Close() })
	m := NewMetrics(s.reg)
	deps := ReceiverDeps{Queue: s.queue, Spool: s.spool, Metrics: m, Log: quietLog()}
	for _, o := range options {
		o(&deps)
	}
	if s.receiver, err = NewReceiver(deps); err != nil {
		t.Fatal(err)
	}
	s.Handler = NewServer(ServerDeps{
		Receiver: s.receiver, Credentials: creds, Signatures: signatures, Spool: s.spool,
		Ready: func(context.Context) error { return nil }, Metrics: m, Gatherer: s.reg, Log: quietLog(),
	})
	return s
}

func (s *server) post(body []byte, prepare func(*http.Request)) (int, receipt) {
	req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	prepare(req)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	var got receipt
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	return rec.Code, got
}

func withBasic(r *http.Request) { r.SetBasicAuth(user, password) }

func example(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../examples/registration.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exampleFor is the example registration for another student, whose
// address starts with local.
func exampleFor(t testing.TB, local string) []byte {
	t.Helper()
	return bytes.Replace(example(t), []byte("jonas.becker@"), []byte(local+"@"), 1)
}

func TestChecksComeInTheOrderASenderLearnsOfThem(t *testing.T) {
	s := newServer(t, 10, nil, Credentials{Username: user, Password: password})
	big := []byte(`{"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`)
	tests := []struct {
		name        string
		body        []byte
		contentType string
		auth        bool
		code        int
		status      string
	}{
		{"no credentials, wrong type", example(t), "text/plain", false, 401, "unauthorized"},
		{"wrong type", example(t), "application/x-www-form-urlencoded", true, 415, "rejected"},
		{"too large", big, "application/json", true, 413, "rejected"},
		{"no email", []byte(`{"exam":{"schedule":{"openDate":"2026-12-14T09:00:00Z"}}}`), "application/json", true, 400, "rejected"},
		{"no type said", example(t), "", true, 202, "accepted"},
		{"again", example(t), "application/json; charset=utf-8", true, 200, "duplicate"},
	}
	for _, tt := range tests {
		code, got := s.post(tt.body, func(r *http.Request) {
			r.Header.Set("Content-Type", tt.contentType)
			if tt.auth {
				withBasic(r)
			}
		})
		if code != tt.code || got.Status != tt.status {
			t.Errorf("%s: %d %q, want %d %q", tt.name, code, got.Status, tt.code, tt.status)
		}
	}
}

func TestRedisAwaySpoolsAndAFullSpoolIs503(t *testing.T) {
	s := newServer(t, 1, nil, Credentials{Username: user, Password: password})
	s.queue.down = true
	code, got := s.post(example(t), withBasic)
	if code != http.StatusAccepted || got.Status != "spooled" || s.spool.Depth() != 1 {
		t.Fatalf("Redis away: %d %+v, spool %d; want 202 spooled", code, got, s.spool.Depth())
	}
	other := exampleFor(t, "other.student")
	code, got = s.post(other, withBasic)
	if code != http.StatusServiceUnavailable || got.Status != "unavailable" || s.spool.Depth() != 1 {
		t.Errorf("Redis away, spool full: %d %+v, spool %d; want 503 unavailable and nothing kept", code, got, s.spool.Depth())
	}
}

// replicasSay is a ReplicaWaiter that says what it is told: the master
// has every registration but those missing, and the replicas hold them if
// held.
type replicasSay struct {
	held    bool
	missing map[string]bool
	asked   []string
}

func (r *replicasSay) Hold(ctx context.Context, reg relay.Registration, queue, id string) (bool, bool, error) {
	found, held, err := r.HoldAll(ctx, []relay.Registration{reg}, queue, []string{id})
	return found[0], found[0] && held, err
}

func (r *replicasSay) HoldAll(_ context.Context, _ []relay.Registration, _ string, ids []string) ([]bool, bool, error) {
	found := make([]bool, len(ids))
	for i, id := range ids {
		r.asked = append(r.asked, id)
		found[i] = !r.missing[id]
	}
	return found, r.held, nil
}

func TestARegistrationTooFewReplicasHoldHasACopyKeptUntilTheyDo(t *testing.T) {
	replicas := &replicasSay{held: true}
	copies, err := OpenSpool(t.TempDir(), 10, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer copies.Close()
	s := newServer(t, 10, nil, Credentials{Username: user, Password: password}, func(d *ReceiverDeps) {
		d.Replicas, d.Unreplicated = replicas, copies
	})
	if code, got := s.post(example(t), withBasic); code != http.StatusAccepted || got.Status != "accepted" || copies.Depth() != 0 {
		t.Errorf("held by the replicas: %d %+v, %d copies; want 202 accepted and no copy", code, got, copies.Depth())
	}
	replicas.held = false
	other := exampleFor(t, "other.student")
	if code, got := s.post(other, withBasic); code != http.StatusAccepted || got.Status != "accepted" || copies.Depth() != 1 {
		t.Errorf("not held: %d %+v, %d copies; want 202 accepted and a copy", code, got, copies.Depth())
	}
	stored := replicas.asked[1]
	// The replicas lag: the next registration has its copy at once,
	// rather than after a wait for them.
	replicas.held = true
	third := exampleFor(t, "third.student")
	if code, got := s.post(third, withBasic); code != http.StatusAccepted || got.Status != "accepted" || s.spool.Depth() != 0 {
		t.Errorf("a copy kept: %d %+v, spool %d; want the next one stored in Redis as ever", code, got, s.spool.Depth())
	}
	if len(replicas.asked) != 2 || copies.Depth() != 2 {
		t.Fatalf("replicas asked about %v, %d copies; want the first two registrations asked about, two copies", replicas.asked, copies.Depth())
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\nrelay_webhooks_unreplicated_total 2\n") {
		t.Errorf("/metrics does not count the two copies:\n%s", rec.Body)
	}

	sweep := func(held bool, missing ...string) int {
		t.Helper()
		replicas.held, replicas.missing, replicas.asked = held, map[string]bool{}, nil
		for _, id := range missing {
			replicas.missing[id] = true
		}
		n, err := copies.Sweep(s.receiver.ConfirmUnreplicated)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := sweep(false); n != 0 || copies.Depth() != 2 || len(replicas.asked) != 2 || replicas.asked[0] != stored {
		t.Errorf("replicas still behind: %d dropped, %d kept, asked about %v; want none dropped, asked about both, %s first", n, copies.Depth(), replicas.asked, stored)
	}
	// A master promoted without the first registration.
	delete(s.queue.ids, stored)
	if n := sweep(false, stored); n != 0 || copies.Depth() != 2 || !s.queue.ids[stored] {
		t.Errorf("master without it: %d dropped, %d kept, stored again %v; want it stored again under its id and kept", n, copies.Depth(), s.queue.ids[stored])
	}
	if n := sweep(true); n != 2 || copies.Depth() != 0 {
		t.Errorf("replicas hold them: %d dropped, %d kept; want both dropped", n, copies.Depth())
	}
	// Caught up: the receiver waits for them again.
	fourth := exampleFor(t, "fourth.student")
	replicas.asked = nil
	if code, _ := s.post(fourth, withBasic); code != http.StatusAccepted || len(replicas.asked) != 1 || copies.Depth() != 0 {
		t.Errorf("replicas caught up: %d, asked about %v, %d copies; want 202 after asking them, no copy", code, replicas.asked, copies.Depth())
	}
}

func TestSignedWebhooksAreRecognisedByTheirID(t *testing.T) {
	oldKey, newKey := []byte("old secret key for tests"), []byte("new secret key for tests")
	s := newServer(t, 10, NewStandardWebhooks([][]byte{oldKey, newKey}), Credentials{})
	body := example(t)
	signed := func(key []byte, id string, at time.Time, b []byte) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("webhook-id", id)
			r.Header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
			r.Header.Set("webhook-signature", "v1,bm90IGl0 "+NewStandardWebhooks([][]byte{key}).Sign(id, at, b))
		}
	}
	now := time.Now()
	tests := []struct {
		name    string
		prepare func(*http.Request)
		want    int
	}{
		{"unsigned", func(*http.Request) {}, 401},
		{"Basic auth alone", withBasic, 401},
		{"unknown key", signed([]byte("someone else's"), "msg_1", now, body), 401},
		{"too old", signed(oldKey, "msg_1", now.Add(-6*time.Minute), body), 401},
		{"from the future", signed(oldKey, "msg_1", now.Add(6*time.Minute), body), 401},
		{"signed over another body", signed(oldKey, "msg_1", now, []byte(`{}`)), 401},
		{"old key during rotation", signed(oldKey, "msg_1", now, body), 202},
		{"same webhook-id again", signed(newKey, "msg_1", now, body), 200},
		{"new webhook-id, same registration", signed(newKey, "msg_2", now, body), 202},
	}
	for _, tt := range tests {
		if code, got := s.post(body, tt.prepare); code != tt.want {
			t.Errorf("%s: %d %+v, want %d", tt.name, code, got, tt.want)
		}
	}
	if !s.queue.ids[tasks.WebhookTaskID("msg_1")] || !s.queue.ids[tasks.WebhookTaskID("msg_2")] {
		t.Errorf("signed registrations are not stored under their webhook-id: %v", s.queue.ids)
	}
}

func TestEmptyPasswordNeverAuthenticates(t *testing.T) {
	s := newServer(t, 10, nil, Credentials{})
	code, _ := s.post(example(t), func(r *http.Request) { r.SetBasicAuth("", "") })
	if code != http.StatusUnauthorized {
		t.Errorf("empty credentials against an empty password: %d", code)
	}
}

func TestReceiverRefusesToRunWithoutItsParts(t *testing.T) {
	if _, err := NewReceiver(ReceiverDeps{Queue: &memoryQueue{}, Metrics: NewMetrics(prometheus.NewRegistry()), Log: quietLog()}); err == nil || !strings.Contains(err.Error(), "Spool") {
		t.Errorf("NewReceiver without a spool: %v", err)
	}
	spool, err := OpenSpool(t.TempDir(), 10, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	deps := ReceiverDeps{Queue: &memoryQueue{}, Spool: spool, Replicas: &replicasSay{}, Metrics: NewMetrics(prometheus.NewRegistry()), Log: quietLog()}
	if _, err := NewReceiver(deps); err == nil || !strings.Contains(err.Error(), "Unreplicated") {
		t.Errorf("NewReceiver with Replicas and nowhere to keep copies: %v", err)
	}
}

// FuzzReceiver: no body or content type makes the receiver answer 5xx or
// panic, and whatever it accepts is a registration it could store.
func FuzzReceiver(f *testing.F) {
	if b, err := os.ReadFile("../../examples/registration.json"); err == nil {
		f.Add(b, "application/json")
	}
	f.Add([]byte(`[]`), "application/json; charset=utf-8")
	f.Add([]byte(`{"user":{"email":"a@b.example"}}`), "text/plain")
	f.Add([]byte("\xef\xbb\xbf{"), "")
	s := newServer(f, 10, nil, Credentials{Username: user, Password: password})
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		withBasic(req)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code >= 500 || rec.Code < 200 {
			t.Fatalf("status %d for %q (%q): %s", rec.Code, body, contentType, rec.Body)
		}
	})
}

func TestAdminPageRefusesToRunWithoutItsParts(t *testing.T) {
	_, err := NewAdmin(AdminDeps{Credentials: Credentials{Username: "admin"}, Log: quietLog()})
	want := "admin page: missing Credentials.Password, History, Inspector, Zone"
	if err == nil || err.Error() != want {
		t.Errorf("NewAdmin without its parts: %v, want %q", err, want)
	}
}
