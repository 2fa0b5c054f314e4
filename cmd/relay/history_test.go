package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/relay/webhook"
	"github.com/exam-relay/relay/tasks"
)

// history runs `relay history -json` against h's Redis.
func (h *harness) history(by, value string) []historyJSON {
	h.t.Helper()
	out, err := relayOutput(h.t, map[string]string{"RELAY_REDIS_URL": h.redis.URL}, "history", "-"+by, value, "-json")
	if err != nil {
		h.t.Fatalf("relay history: %v\n%s", err, out)
	}
	var entries []historyJSON
	if err := json.Unmarshal([]byte(out), &entries); err != nil {
		h.t.Fatalf("relay history -json: %v\n%s", err, out)
	}
	return entries
}

// waitForHistoryCommand polls `relay history` until by=value has n entries.
func (h *harness) waitForHistoryCommand(by, value string, n int) []historyJSON {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries := h.history(by, value)
		if len(entries) >= n || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHistoryShowsWhatTheMailServerSaidOfEachEmail(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.smtp.SetRcptHook(func(rcpt string) *smtp.SMTPError {
		if rcpt == "student2@example.edu" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable"}
		}
		return nil
	})
	h.post(registrationFor(1, 0))
	h.post(registrationFor(2, 0))
	msgs := h.smtp.WaitFor(t, 1, 10*time.Second)
	sentID := relaytest.ParseEmail(t, msgs[0].Data).Header.Get("Message-ID")

	// Jonas's: sent, with the Message-ID the server received and its reply.
	got := h.waitForHistoryCommand("email", "STUDENT1@example.edu", 2) // the alert too
	var email historyJSON
	for _, e := range got {
		if e.Channel == "email" {
			email = e
		}
	}
	if email.Status != "sent" || email.Kind != "confirmation" || email.MessageID != sentID || !strings.HasPrefix(email.Detail, "250") ||
		email.User != "usr_1" || email.Exam != "exm_0" || email.Registration == "" || email.Time.IsZero() {
		t.Errorf("history of a delivered confirmation: %+v (the server received %s)", email, sentID)
	}
	// The refused one: failed, with the server's reply.
	refused := h.waitForHistoryCommand("user", "usr_2", 2)
	var failed bool
	for _, e := range refused {
		failed = failed || e.Channel == "email" && e.Status == "failed" && strings.Contains(e.Detail, "550") && strings.Contains(e.Detail, "mailbox unavailable")
	}
	if !failed {
		t.Errorf("history of a refused confirmation: %+v", refused)
	}
	// By exam: both students and both staff alerts, newest first.
	byExam := h.history("exam", "exm_0")
	if len(byExam) != 4 {
		t.Errorf("%d entries for the exam, want 4: %+v", len(byExam), byExam)
	}
	for i := 1; i < len(byExam); i++ {
		if byExam[i].Time.After(byExam[i-1].Time) {
			t.Errorf("entries not newest first: %v then %v", byExam[i-1].Time, byExam[i].Time)
		}
	}
	// The readable form names the status and the reply.
	out, err := relayOutput(t, map[string]string{"RELAY_REDIS_URL": h.redis.URL}, "history", "-email", "student2@example.edu")
	if err != nil || !strings.Contains(out, "failed") || !strings.Contains(out, "550") {
		t.Errorf("relay history: %v\n%s", err, out)
	}
}

func TestARepeatAfterDeliverySendsNothingAndNewDatesAreAnnounced(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := registrationFor(1, 0)
	if code, resp := h.post(body); code != 202 {
		t.Fatalf("POST: %d %s", code, resp)
	}
	h.smtp.WaitFor(t, 1, 10*time.Second)
	// The queue keeps no task once done: the student's ledger remembers
	// what they were told, until the exam is over.
	h.waitIdle(10*time.Second, tasks.QueueRegistrations, tasks.QueueEmail)

	// The same registration again: taken as new by the queue, but nothing
	// is sent.
	if code, resp := h.post(body); code != 202 {
		t.Fatalf("the repeat after delivery: %d %s, want 202 (the queue has no task for it)", code, resp)
	}
	skipped := false
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && !skipped; time.Sleep(100 * time.Millisecond) {
		for _, e := range h.history("email", "student1@example.edu") {
			skipped = skipped || e.Status == "skipped" && strings.Contains(e.Detail, "the same registration again")
		}
	}
	if !skipped || h.smtp.Count() != 1 {
		t.Fatalf("the repeat: skipped in the history %v, %d emails; want true and 1", skipped, h.smtp.Count())
	}

	// New dates weeks later: announced as a change, with the old dates,
	// and a calendar event that replaces the old one.
	moved := []byte(strings.ReplaceAll(string(body), "2026-12-14T", "2026-12-21T"))
	if code, resp := h.post(moved); code != 202 {
		t.Fatalf("new dates: %d %s", code, resp)
	}
	msgs := h.smtp.WaitFor(t, 2, 15*time.Second)
	first, changed := relaytest.ParseEmail(t, msgs[0].Data), relaytest.ParseEmail(t, msgs[1].Data)
	if !strings.Contains(changed.Text, "Its dates have changed") || !strings.Contains(changed.Text, "14 December 2026") {
		t.Errorf("the email about new dates does not say so, with the old dates:\n%s", changed.Text)
	}
	if calendarSequence(t, changed) <= calendarSequence(t, first) {
		t.Errorf("SEQUENCE %d after %d: calendars would keep the old event", calendarSequence(t, changed), calendarSequence(t, first))
	}
	time.Sleep(2 * time.Second)
	if n := h.smtp.Count(); n != 2 {
		t.Errorf("%d emails, want 2", n)
	}
}

// dumpRedis is every key and value of the Redis, as text.
func dumpRedis(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	ctx := t.Context()
	var b strings.Builder
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		fmt.Fprintln(&b, k)
		switch rdb.Type(ctx, k).Val() {
		case "string":
			fmt.Fprintln(&b, rdb.Get(ctx, k).Val())
		case "hash":
			fmt.Fprintln(&b, rdb.HGetAll(ctx, k).Val())
		case "zset":
			fmt.Fprintln(&b, rdb.ZRangeWithScores(ctx, k, 0, -1).Val())
		case "list":
			fmt.Fprintln(&b, rdb.LRange(ctx, k, 0, -1).Val())
		case "set":
			fmt.Fprintln(&b, rdb.SMembers(ctx, k).Val())
		case "stream":
			fmt.Fprintln(&b, rdb.XRange(ctx, k, "-", "+").Val())
		}
	}
	return b.String()
}

func TestForgetLeavesNoTraceOfTheStudent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBot(), withReminders(24*time.Hour), withDigest(redisstore.DigestWindow{Grace: time.Second, MaxDelay: 3 * time.Second, MaxSize: 100}))
	// The student, and a classmate on the same exam who must stay.
	const address = "Student1@Example.edu"
	// A month away, whatever today is: the reminder is held in the queue.
	h.post(inAMonth(registrationFor(1, 0)))
	h.post(inAMonth(registrationFor(2, 0)))
	h.smtp.WaitFor(t, 2, 10*time.Second)
	h.slack.WaitFor(t, 1, 20*time.Second)
	h.waitForHistoryCommand("email", address, 1)
	// A spooled registration of theirs on this machine, and an email in
	// the outbox folder.
	spoolDir, outbox := t.TempDir(), t.TempDir()
	spool, err := webhook.OpenSpool(spoolDir, 10, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	reg := decodeBody(t, registrationFor(1, 3))
	payload, _ := json.Marshal(reg)
	spool.Append(payload)
	spool.Close()
	// And a copy kept until Redis's replicas hold a registration of theirs.
	copies, err := webhook.OpenUnreplicated(spoolDir, 10, true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	copies.Append([]byte(`{"task":"registration:received:x","registration":` + string(payload) + `}`))
	copies.Close()
	for _, m := range h.smtp.Messages() {
		if slices.Contains(m.To, strings.ToLower(address)) {
			os.WriteFile(filepath.Join(outbox, "x.eml"), m.Data, 0o600)
		}
	}

	rdb := h.redis.Client()
	if !strings.Contains(strings.ToLower(dumpRedis(t, rdb)), strings.ToLower(address)) {
		t.Fatal("the address is not in Redis before forgetting: the test would prove nothing")
	}
	env := map[string]string{"RELAY_REDIS_URL": h.redis.URL, "RELAY_SPOOL_DIR": spoolDir, "RELAY_OUTBOX_DIR": outbox}
	out, err := relayOutput(t, env, "forget", "-email", address, "-json")
	if err != nil {
		t.Fatalf("relay forget: %v\n%s", err, out)
	}
	var f forgotten
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(f.Tasks.Deleted) == 0 || f.Redis.History == 0 || f.Redis.Schedules == 0 || f.Redis.BoardItems != 1 || f.Spool != 2 || f.Outbox != 1 {
		t.Errorf("forget removed %+v", f)
	}
	filepath.WalkDir(spoolDir, func(path string, d os.DirEntry, err error) error {
		if b, _ := os.ReadFile(path); err == nil && !d.IsDir() && bytes.Contains(bytes.ToLower(b), []byte(strings.ToLower(address))) {
			t.Errorf("the address is still in %s", path)
		}
		return nil
	})
	if dump := strings.ToLower(dumpRedis(t, rdb)); strings.Contains(dump, strings.ToLower(address)) {
		i := strings.Index(dump, strings.ToLower(address))
		t.Errorf("the address is still in Redis: …%s…", dump[max(0, i-300):min(len(dump), i+100)])
	}
	if !strings.Contains(dumpRedis(t, rdb), "student2@example.edu") {
		t.Error("the classmate was forgotten too")
	}
	// A new registration for the address works as new.
	before := h.smtp.Count()
	if code, resp := h.post(registrationFor(1, 0)); code != 202 {
		t.Fatalf("a new registration after forgetting: %d %s", code, resp)
	}
	h.smtp.WaitFor(t, before+1, 15*time.Second)
}
