package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmallRunDeliversEverythingOnce runs the whole harness with tiny sizes,
// two rounds of relay and thin reference, and checks counts only: the
// figures are for BENCHMARKS.md, never a test.
func TestSmallRunDeliversEverythingOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay and runs it as child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"relay-bench", "-rounds", "2",
		"-ingest", "40", "-delivery", "20", "-workers", "2", "-memory", "30", "-burst", "40", "-exams", "2", "-clients", "4",
		"-timeout", "60s", "-set", "RELAY_DIGEST_GRACE=1s", "-out", out,
	}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r results
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}

	if len(r.Ingest.Rounds) != 2 || len(r.Delivery.Rounds) != 2 {
		t.Fatalf("%d ingest and %d delivery rounds; want 2 each", len(r.Ingest.Rounds), len(r.Delivery.Rounds))
	}
	for i, rd := range r.Ingest.Rounds {
		for name, run := range map[string]ingestRun{"relay": rd.Relay, "thin": rd.Thin, "ceiling": rd.Ceiling} {
			if run.Errors != 0 || run.Queued != 40 {
				t.Errorf("ingest round %d, %s: %d errors, %d queued; want 0, 40", i+1, name, run.Errors, run.Queued)
			}
		}
	}
	for i, rd := range r.Delivery.Rounds {
		for name, run := range map[string]deliveryRun{"relay": rd.Relay, "thin": rd.Thin, "ceiling": rd.Ceiling} {
			if run.Emails != 20 || run.Duplicates != 0 || run.Connections < 1 {
				t.Errorf("delivery round %d, %s: %d emails, %d duplicates over %d connections; want 20, 0, at least 1",
					i+1, name, run.Emails, run.Duplicates, run.Connections)
			}
		}
		// Each email is a task dequeued by a script, and the relay runs
		// scripts of its own besides (the ledger, the history).
		if w := rd.Thin.Redis; w.Scripts < 1 || w.Commands <= w.Scripts {
			t.Errorf("delivery round %d, thin: Redis %+v per email; want at least 1 script and more commands", i+1, w)
		}
		if rd.Relay.Redis.Scripts <= rd.Thin.Redis.Scripts {
			t.Errorf("delivery round %d: Redis scripts per email, relay %.2f, thin %.2f; want more for the relay",
				i+1, rd.Relay.Redis.Scripts, rd.Thin.Redis.Scripts)
		}
	}
	for name, m := range map[string]memoryRun{"relay": r.Memory.Relay, "thin": r.Memory.Thin} {
		// Every delivered registration leaves at least its completed task,
		// kept to recognise a repeat.
		if m.Emails != 30 || m.Duplicates != 0 || m.LeftInQueues != 0 || m.Keys < 30 || len(m.ByKey) == 0 {
			t.Errorf("memory, %s: %d emails, %d duplicates, %d tasks left, %d keys in %d kinds; want 30, 0, 0, at least 30",
				name, m.Emails, m.Duplicates, m.LeftInQueues, m.Keys, len(m.ByKey))
		}
	}
	if r.Memory.Relay.DigestStudents != 30 {
		t.Errorf("memory, relay: digests for %d students; want 30", r.Memory.Relay.DigestStudents)
	}
	b := r.Burst
	if b.Errors != 0 || b.Emails != 40 || b.Duplicates != 0 || b.DigestStudents != 40 {
		t.Errorf("burst: %d errors, %d emails, %d duplicates, digests for %d students; want 0, 40, 0, 40",
			b.Errors, b.Emails, b.Duplicates, b.DigestStudents)
	}
	if b.ServePeakRSSMB <= 0 || b.WorkPeakRSSMB <= 0 {
		t.Errorf("peak RSS not read: serve %v MB, work %v MB", b.ServePeakRSSMB, b.WorkPeakRSSMB)
	}
	for _, want := range []string{"ingest, median of 2: registrations/s", "delivery, median of 2: emails/s", "delivery, median of 2: emails per CPU-second", "Redis scripts / commands per email", "Redis per delivered registration"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("no %q in the table:\n%s", want, stdout.String())
		}
	}
}

// TestThinReferenceImportsNothingOfTheRelay keeps the yardstick apart: a
// relay package in it would be measured on both sides.
func TestThinReferenceImportsNothingOfTheRelay(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./thin").Output()
	if err != nil {
		t.Fatal(err)
	}
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		if strings.HasPrefix(dep, "github.com/exam-relay/relay") && dep != "github.com/exam-relay/relay/cmd/relay-bench/thin" {
			t.Errorf("the thin reference imports %s", dep)
		}
	}
}

func TestKeyPatternHidesIDsAndDates(t *testing.T) {
	for key, want := range map[string]string{
		"asynq:{email}:t:email:confirmation:3f2a9c0d1e": "asynq:{email}:t:email:confirmation:*",
		"asynq:{registrations}:processed:2026-11-27":    "asynq:{registrations}:processed:*",
		"asynq:{default}:completed":                     "asynq:{default}:completed",
		"exam-relay:history:user:usr_memory_12":         "exam-relay:history:user:*",
		"exam-relay:history:e:AaIcvOUdvcLgyg":           "exam-relay:history:e:*",
	} {
		if got := keyPattern(key); got != want {
			t.Errorf("keyPattern(%q) = %q; want %q", key, got, want)
		}
	}
}

func TestCommandStatsCountCallsPerEmail(t *testing.T) {
	before := parseCommandStats("# Commandstats\r\n" +
		"cmdstat_evalsha:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_hset:calls=40,usec=40,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n")
	after := parseCommandStats("# Commandstats\r\n" +
		"cmdstat_evalsha:calls=50,usec=1500,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_hset:calls=120,usec=120,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_client|setname:calls=20,usec=20,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n")
	if after["client|setname"] != 20 {
		t.Errorf("parsed %v; want client|setname 20", after)
	}
	// 20 emails: 40 scripts, 80 HSET and 20 CLIENT SETNAME since before.
	if got, want := after.perEmail(before, 20), (redisWork{Scripts: 2, Commands: 7}); got != want {
		t.Errorf("perEmail = %+v; want %+v", got, want)
	}
}

func TestEmailsPerCPUSecondCountTheWorkersAndRedis(t *testing.T) {
	for _, c := range []struct {
		run  deliveryRun
		want float64
	}{
		// The harness stands for the mail server: not counted.
		{deliveryRun{PerSecond: 1200, CPU: map[string]float64{"work": 0.9, "redis": 0.3, "harness": 0.5}}, 1000},
		{deliveryRun{PerSecond: 1200}, 0},
	} {
		if got := c.run.perCPUSecond(); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%+v: %v emails per CPU-second; want %v", c.run, got, c.want)
		}
	}
}

func TestPhasesFlagChoosesWhatRuns(t *testing.T) {
	s, err := parseFlags([]string{"relay-bench"}, io.Discard)
	if err != nil || len(s.phases) != len(allPhases) {
		t.Errorf("no -phases: %v, %v; want every phase", s.phases, err)
	}
	s, err = parseFlags([]string{"relay-bench", "-phases", "ingest"}, io.Discard)
	if err != nil || !s.phases["ingest"] || s.phases["delivery"] || s.phases["memory"] || s.phases["burst"] {
		t.Errorf("-phases ingest: %v, %v; want ingest alone", s.phases, err)
	}
	if _, err := parseFlags([]string{"relay-bench", "-phases", "ingest,deliver"}, io.Discard); err == nil {
		t.Error("-phases ingest,deliver: no error; want one naming the unknown phase")
	}
}
