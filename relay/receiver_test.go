package relay

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/tasks"
)

func TestReceiverStoresRegistrationBeforeAnswering(t *testing.T) {
	h := newHarness(t)
	body := example(t, "registration.json")
	code, resp := h.post(body)
	if code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, resp)
	}
	var got receipt
	if err := json.Unmarshal([]byte(resp), &got); err != nil || got.Status != "accepted" {
		t.Fatalf("body %s (%v)", resp, err)
	}
	reg := decode(t, body)
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
	h := newHarness(t)
	body := example(t, "registration.json")
	codes := []int{}
	for range 3 {
		code, _ := h.post(body)
		codes = append(codes, code)
	}
	if codes[0] != http.StatusAccepted || codes[1] != http.StatusOK || codes[2] != http.StatusOK {
		t.Fatalf("codes %v, want 202 then 200 200", codes)
	}
	h.smtp.WaitFor(t, 1, 10*time.Second)
	h.slack.WaitFor(t, 1, 10*time.Second)
	// Give a wrongly duplicated task time to arrive before counting.
	reg := decode(t, body)
	h.waitForTask(tasks.QueueEmail, tasks.TaskID(tasks.TypeEmail, reg), asynq.TaskStateCompleted, 5*time.Second)
	h.waitForTask(tasks.QueueSlack, tasks.TaskID(tasks.TypeSlack, reg), asynq.TaskStateCompleted, 5*time.Second)
	if n := h.smtp.Count(); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
	if n := len(h.slack.Posts()); n != 1 {
		t.Errorf("%d Slack posts, want 1", n)
	}
}

func TestReceiverRejectsWhatCannotWorkNamingTheField(t *testing.T) {
	h := newHarness(t)
	valid := string(example(t, "registration.json"))
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
		{"too large", `{"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, "application/json", 413, ""},
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
			var got receipt
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
	h := newHarness(t)
	body := example(t, "registration.json")
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

func TestReceiverNeverAnswers2xxWhenRedisIsDown(t *testing.T) {
	h := newHarness(t)
	h.redis.Stop()
	code, resp := h.post(example(t, "registration.json"))
	if code != http.StatusServiceUnavailable {
		t.Fatalf("code %d %s, want 503", code, resp)
	}
	resp2, err := http.Get(h.http.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d with Redis down", resp2.StatusCode)
	}
	h.redis.Start()
	h.waitReady()
	if code, resp := h.post(example(t, "registration.json")); code != http.StatusAccepted {
		t.Errorf("after Redis came back: %d %s", code, resp)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	h := newHarness(t)
	h.post(example(t, "registration.json"))
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
