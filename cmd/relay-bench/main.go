// Command relay-bench measures the relay against the ceilings of the
// machine it runs on and against a thin reference of the same design
// (./thin), in one run: ingest (relay serve against the thin receiver and
// raw asynq enqueues), delivery (relay work against the thin worker and
// raw go-mail sends), the Redis memory and keys each keeps per delivered
// registration, a burst end to end, and the peak memory of each process.
// It starts its own redis-server, SMTP sink and Slack stand-in, builds the
// relay and the thin reference, and runs each as child processes,
// alternating relay and thin runs round after round. -phases runs only
// some of the phases.
//
//	go run ./cmd/relay-bench -out bench.json
//	go run ./cmd/relay-bench -phases ingest -rounds 5
//
// BENCHMARKS.md says what the figures mean.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "relay-bench:", err)
		os.Exit(1)
	}
}

// settings are the flags.
type settings struct {
	out       string
	relayBin  string
	rounds    int
	ingestN   int
	clients   int
	deliveryN int
	workers   int
	memoryN   int
	burstN    int
	exams     int
	aof       bool
	timeout   time.Duration
	keep      bool
	// env is extra RELAY_* settings for the child processes.
	env envFlag
	// phases are the phases to run; the others are skipped.
	phases map[string]bool
}

// allPhases are the phases of a run, in the order they run.
var allPhases = []string{"ingest", "delivery", "memory", "burst"}

// parsePhases reads -phases: a comma-separated subset of allPhases.
func parsePhases(list string) (map[string]bool, error) {
	phases := map[string]bool{}
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(allPhases, name) {
			return nil, fmt.Errorf("-phases: unknown phase %q; want some of %s", name, strings.Join(allPhases, ","))
		}
		phases[name] = true
	}
	return phases, nil
}

// envFlag collects repeated -set KEY=VALUE flags.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, ",") }

func (e *envFlag) Set(s string) error {
	if k, _, ok := strings.Cut(s, "="); !ok || !strings.HasPrefix(k, "RELAY_") {
		return errors.New("want RELAY_NAME=value")
	}
	*e = append(*e, s)
	return nil
}

func parseFlags(args []string, stderr io.Writer) (settings, error) {
	var s settings
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.out, "out", "", "write the figures as JSON to this file")
	fs.StringVar(&s.relayBin, "relay", "", "relay binary to run (default: go build ./cmd/relay into a temporary folder; the thin reference is always built)")
	fs.IntVar(&s.rounds, "rounds", 3, "ingest and delivery rounds, each measuring the relay, then the thin reference, then the ceiling")
	fs.IntVar(&s.ingestN, "ingest", 20000, "registrations posted in the ingest phase (and enqueued for its ceiling)")
	fs.IntVar(&s.clients, "clients", 16, "concurrent HTTP clients, and goroutines enqueuing for the ceilings")
	fs.IntVar(&s.deliveryN, "delivery", 20000, "registrations queued before the worker starts in the delivery phase")
	fs.IntVar(&s.workers, "workers", 1, "worker processes (relay work, and thin work) draining the queue in the delivery phase")
	fs.IntVar(&s.memoryN, "memory", 10000, "registrations delivered before Redis's memory and keys are counted")
	fs.IntVar(&s.burstN, "burst", 10000, "registrations posted in the end-to-end burst")
	fs.IntVar(&s.exams, "exams", 20, "exams the burst's registrations are spread over")
	fs.BoolVar(&s.aof, "aof", false, "run Redis as production does: appendonly yes, appendfsync everysec")
	fs.DurationVar(&s.timeout, "timeout", 5*time.Minute, "give up on a phase after this long")
	fs.BoolVar(&s.keep, "keep", false, "keep the work folder (child logs, Redis log) and print where it is")
	phases := fs.String("phases", strings.Join(allPhases, ","), "comma-separated phases to run, e.g. -phases ingest or -phases delivery,memory; the others are skipped and left out of the table and the JSON")
	fs.Var(&s.env, "set", "RELAY_NAME=value for relay serve and relay work, not the thin reference (repeatable), e.g. -set RELAY_WORKER_CONCURRENCY=20")
	if err := fs.Parse(args[1:]); err != nil {
		return s, err
	}
	if s.rounds < 1 || s.ingestN < 1 || s.clients < 1 || s.deliveryN < 1 || s.workers < 1 || s.memoryN < 1 || s.burstN < 1 || s.exams < 1 {
		return s, errors.New("sizes must be at least 1")
	}
	var err error
	s.phases, err = parsePhases(*phases)
	return s, err
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "relay-bench-")
	if err != nil {
		return err
	}
	if s.keep {
		fmt.Fprintln(stderr, "work folder:", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	b, err := newBench(ctx, s, dir, stderr)
	if err != nil {
		return err
	}
	defer b.close()

	res, err := b.runAll(ctx)
	if err != nil {
		return err
	}
	printTable(stdout, res)
	if s.out != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(s.out, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
