package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSmallRunDeliversEverythingOnce runs the whole harness with tiny sizes
// and checks counts only: the figures are for BENCHMARKS.md, never a test.
func TestSmallRunDeliversEverythingOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay and runs it as child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"relay-bench",
		"-ingest", "40", "-delivery", "20", "-workers", "2", "-burst", "40", "-exams", "2", "-clients", "4",
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
	if r.Ingest.Errors != 0 || r.Ingest.CeilingErrors != 0 || r.Ingest.Queued != 40 {
		t.Errorf("ingest: %d errors, %d ceiling errors, %d queued; want 0, 0, 40", r.Ingest.Errors, r.Ingest.CeilingErrors, r.Ingest.Queued)
	}
	if r.Delivery.Duplicates != 0 || r.Delivery.Connections < 1 {
		t.Errorf("delivery: %d duplicates over %d connections", r.Delivery.Duplicates, r.Delivery.Connections)
	}
	b := r.Burst
	if b.Errors != 0 || b.Emails != 40 || b.Duplicates != 0 || b.DigestStudents != 40 {
		t.Errorf("burst: %d errors, %d emails, %d duplicates, digests for %d students; want 0, 40, 0, 40",
			b.Errors, b.Emails, b.Duplicates, b.DigestStudents)
	}
	if b.ServePeakRSSMB <= 0 || b.WorkPeakRSSMB <= 0 {
		t.Errorf("peak RSS not read: serve %v MB, work %v MB", b.ServePeakRSSMB, b.WorkPeakRSSMB)
	}
	if !bytes.Contains(stdout.Bytes(), []byte("ingest: registrations/s")) {
		t.Errorf("no table on stdout:\n%s", stdout.String())
	}
}
