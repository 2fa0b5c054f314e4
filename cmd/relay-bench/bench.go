package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/tasks"
)

// The credentials relay serve and the thin receiver are given and the
// harness posts with; the sender of every email.
const (
	webhookUser     = "synap"
	webhookPassword = "bench-password"
	webhookPath     = "/webhooks/synap/user-registered-for-exam"
	emailFrom       = "Exams Office <exams@example.edu>"
)

// impl is what runs as serve and work: the relay, or the thin reference
// it is measured against.
type impl string

const (
	relayImpl impl = "relay"
	thinImpl  impl = "thin"
)

// bench holds the parts every phase shares: one Redis, one SMTP sink, one
// Slack stand-in, the relay and thin binaries.
type bench struct {
	s        settings
	dir      string
	progress io.Writer

	redis     *child
	redisAddr string
	rdb       *redis.Client
	inspector *asynq.Inspector
	smtp      *smtpSink
	slack     *slackSink
	relayBin  string
	thinBin   string
	// relayEnv is the RELAY_* settings every child gets.
	relayEnv []string
	opts     tasks.Options
	started  int // children started, to name their logs and spools
}

func newBench(ctx context.Context, s settings, dir string, progress io.Writer) (_ *bench, err error) {
	b := &bench{s: s, dir: dir, progress: progress}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.relayBin = s.relayBin; b.relayBin == "" {
		b.logf("building ./cmd/relay")
		if b.relayBin, err = build(ctx, dir, "relay", "github.com/exam-relay/relay/cmd/relay"); err != nil {
			return nil, err
		}
	}
	b.logf("building ./cmd/relay-bench/thin")
	if b.thinBin, err = build(ctx, dir, "thin", "github.com/exam-relay/relay/cmd/relay-bench/thin"); err != nil {
		return nil, err
	}
	if b.redis, b.redisAddr, err = startRedis(ctx, dir, s.aof); err != nil {
		return nil, err
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: b.redisAddr})
	b.inspector = asynq.NewInspectorFromRedisClient(b.rdb)
	if b.smtp, err = startSMTPSink(); err != nil {
		return nil, err
	}
	if b.slack, err = startSlackSink(); err != nil {
		return nil, err
	}
	b.relayEnv = append([]string{
		"RELAY_REDIS_URL=redis://" + b.redisAddr + "/0",
		"RELAY_WEBHOOK_USERNAME=" + webhookUser,
		"RELAY_WEBHOOK_PASSWORD=" + webhookPassword,
		"RELAY_SMTP_URL=" + b.smtp.url(),
		"RELAY_EMAIL_FROM=" + emailFrom,
		"RELAY_SLACK_WEBHOOK_URL=" + b.slack.url,
	}, s.env...)

	// The ceilings enqueue with the options the relay would use.
	cfg, err := config.Load("", lookup(b.relayEnv))
	if err != nil {
		return nil, fmt.Errorf("relay settings: %w", err)
	}
	b.opts = tasks.Options{MaxRetry: cfg.Worker.MaxRetry}
	return b, nil
}

// lookup is getenv over KEY=VALUE pairs; the last one wins, as in exec.
func lookup(env []string) func(string) string {
	return func(key string) string {
		v := ""
		for _, kv := range env {
			if k, val, _ := strings.Cut(kv, "="); k == key {
				v = val
			}
		}
		return v
	}
}

func (b *bench) close() {
	if b.slack != nil {
		b.slack.close()
	}
	if b.smtp != nil {
		b.smtp.close()
	}
	if b.inspector != nil {
		_ = b.inspector.Close()
	}
	if b.rdb != nil {
		_ = b.rdb.Close()
	}
	if b.redis != nil {
		_ = b.redis.stop(5 * time.Second)
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "relay-bench: "+format+"\n", args...)
}

// start runs which's serve or work (role) on a free port, the relay with
// its own spool folder, and waits until it answers /healthz.
func (b *bench) start(ctx context.Context, which impl, role string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	b.started++
	name := fmt.Sprintf("%s-%s-%d", which, role, b.started)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var env []string
	for _, kv := range os.Environ() {
		// Only what the harness chose: not the RELAY_CONFIG of whoever runs it.
		if !strings.HasPrefix(kv, "RELAY_") {
			env = append(env, kv)
		}
	}
	bin, args := b.relayBin, []string{role}
	switch {
	case which == relayImpl:
		env = append(env, "RELAY_HTTP_ADDR="+addr, "RELAY_SPOOL_DIR="+filepath.Join(b.dir, "spool-"+name))
		env = append(env, b.relayEnv...)
	case role == "serve":
		bin, args = b.thinBin, append(args, "-addr", addr, "-redis", b.redisAddr, "-user", webhookUser, "-password", webhookPassword)
	default:
		bin, args = b.thinBin, append(args, "-addr", addr, "-redis", b.redisAddr, "-smtp", b.smtp.addr, "-from", emailFrom)
	}
	c, err := startChild(name, b.dir, env, bin, args...)
	if err != nil {
		return nil, "", err
	}
	c.role = role
	base := "http://" + addr
	if err := c.waitHTTP(ctx, base+"/healthz", 30*time.Second); err != nil {
		_ = c.stop(5 * time.Second)
		return nil, "", err
	}
	return c, base, nil
}

// startWorkers starts n of which's workers.
func (b *bench) startWorkers(ctx context.Context, which impl, n int) ([]*child, error) {
	var workers []*child
	for range n {
		work, _, err := b.start(ctx, which, "work")
		if err != nil {
			_, _ = stopAll(workers)
			return nil, err
		}
		workers = append(workers, work)
	}
	return workers, nil
}

// stopAll stops children that still run and gives the highest peak RSS
// among them.
func stopAll(children []*child) (int64, error) {
	var peak int64
	var firstErr error
	for _, c := range children {
		if c.exited() {
			firstErr = cmp.Or(firstErr, fmt.Errorf("%s exited early: %v", c.name, c.err))
			continue
		}
		rss, err := c.peakRSS()
		peak = max(peak, rss)
		firstErr = cmp.Or(firstErr, err, c.stop(30*time.Second))
	}
	return peak, firstErr
}

// queueThrough posts bodies to which's receiver while no worker runs, so
// they wait in Redis stored as that receiver stores them.
func (b *bench) queueThrough(ctx context.Context, which impl, bodies [][]byte) error {
	serve, base, err := b.start(ctx, which, "serve")
	if err != nil {
		return err
	}
	_, failed := b.postAll(ctx, base, bodies)
	if err := serve.stop(30 * time.Second); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%s serve refused %d of %d registrations (see its log)", which, failed, len(bodies))
	}
	return nil
}

// queued counts the tasks in every queue that are not completed: pending,
// active, scheduled, retrying, aggregating or archived.
func (b *bench) queued() (int, error) {
	queues, err := b.inspector.Queues()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, q := range queues {
		info, err := b.inspector.GetQueueInfo(q)
		if err != nil {
			return 0, err
		}
		// asynq's Size counts the completed tasks kept for retention too.
		n += info.Size - info.Completed
	}
	return n, nil
}

func (b *bench) flush(ctx context.Context) error {
	return b.rdb.FlushAll(ctx).Err()
}

// waitFor polls cond until it holds, the phase times out or ctx ends.
func (b *bench) waitFor(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(b.s.timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", b.s.timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// registrations makes n distinct webhook bodies spread over exams, shaped
// like examples/registration.json. phase keeps ids apart between phases.
func registrations(phase string, n, exams int) [][]byte {
	open := time.Date(2027, 1, 11, 9, 0, 0, 0, time.UTC)
	bodies := make([][]byte, n)
	for i := range n {
		exam := i % exams
		examID := fmt.Sprintf("exm_%s_%02d", phase, exam)
		opens := open.Add(time.Duration(exam) * 24 * time.Hour)
		bodies[i] = fmt.Appendf(nil, `{"user":{"id":"usr_%[1]s_%[2]d","name":"Student %[2]d","email":"student%[2]d.%[1]s@example.edu",`+
			`"customAttributes":{"candidateNumber":"C-%05[2]d"}},"portal":{"id":"portal_bench"},`+
			`"meta":{"timestamp":"2026-11-27T10:02:11.204Z"},"exam":{"objectId":"%[3]s","url":"https://exams.example.edu/exams/%[3]s",`+
			`"name":"Bench Exam %02[4]d","schedule":{"openDate":"%[5]s","closeDate":"%[6]s"}},`+
			`"userGroup":{"objectId":"grp_bench","name":"Benchmark Cohort"}}`,
			phase, i, examID, exam+1, opens.Format(time.RFC3339), opens.Add(150*time.Minute).Format(time.RFC3339))
	}
	return bodies
}

// registrationTasks are the tasks relay serve would enqueue for bodies.
func (b *bench) registrationTasks(bodies [][]byte) ([]*asynq.Task, error) {
	out := make([]*asynq.Task, len(bodies))
	for i, body := range bodies {
		reg, err := relay.DecodeRegistration(body)
		if err != nil {
			return nil, err
		}
		if out[i], err = tasks.NewRegistrationTask(reg, b.opts); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parallel runs do(i) for i in [0, n) on workers goroutines and returns
// how many failed.
func parallel(n, workers int, do func(i int) error) int {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if do(i) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// postAll posts every body to a receiver, the relay's or the thin one,
// from keep-alive clients and returns each request's latency and how many
// were not answered 202.
//
// Each client is one connection speaking plain HTTP/1.1 with its requests
// written out before the clock starts, as load generators such as wrk do:
// on a small machine every cycle the clients spend is taken from the relay.
func (b *bench) postAll(ctx context.Context, base string, bodies [][]byte) ([]time.Duration, int) {
	addr := strings.TrimPrefix(base, "http://")
	auth := base64.StdEncoding.EncodeToString([]byte(webhookUser + ":" + webhookPassword))
	requests := make([][]byte, len(bodies))
	for i, body := range bodies {
		requests[i] = append(fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Basic %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", webhookPath, addr, auth, len(body)), body...)
	}
	latencies := make([]time.Duration, len(bodies))
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range b.s.clients {
		wg.Go(func() {
			var conn net.Conn
			var r *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(requests) {
					return
				}
				start := time.Now()
				status, err := 0, error(nil)
				if conn == nil {
					if conn, err = net.Dial("tcp", addr); err == nil {
						r = bufio.NewReader(conn)
					}
				}
				if err == nil {
					status, err = roundTrip(conn, r, requests[i])
				}
				latencies[i] = time.Since(start)
				if err != nil && conn != nil {
					conn.Close()
					conn = nil
				}
				if err != nil || status != http.StatusAccepted {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return latencies, int(failed.Load())
}

// roundTrip writes one request and reads its answer.
func roundTrip(conn net.Conn, r *bufio.Reader, request []byte) (int, error) {
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := conn.Write(request); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.Close {
		err = errors.New("server closed the connection")
	}
	return resp.StatusCode, err
}

// percentile of sorted durations, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(float64(len(sorted))*p), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func megabytes(n int64) float64 { return float64(n) / (1 << 20) }

// medianOf is the median of f over rounds; of an even count, the mean of
// the middle two.
func medianOf[R any](rounds []R, f func(R) float64) float64 {
	if len(rounds) == 0 {
		return 0
	}
	xs := make([]float64, len(rounds))
	for i, r := range rounds {
		xs[i] = f(r)
	}
	slices.Sort(xs)
	mid := len(xs) / 2
	if len(xs)%2 == 0 {
		return (xs[mid-1] + xs[mid]) / 2
	}
	return xs[mid]
}

// runAll runs the phases asked for, in order, each on a flushed Redis.
func (b *bench) runAll(ctx context.Context) (results, error) {
	res := results{Machine: b.machine(ctx)}
	var err error
	if b.s.phases["ingest"] {
		if res.Ingest, err = b.ingest(ctx); err != nil {
			return res, fmt.Errorf("ingest: %w", err)
		}
	}
	if b.s.phases["delivery"] {
		if res.Delivery, err = b.delivery(ctx); err != nil {
			return res, fmt.Errorf("delivery: %w", err)
		}
	}
	if b.s.phases["memory"] {
		if res.Memory, err = b.memory(ctx); err != nil {
			return res, fmt.Errorf("memory: %w", err)
		}
	}
	if b.s.phases["burst"] {
		if res.Burst, err = b.burst(ctx); err != nil {
			return res, fmt.Errorf("burst: %w", err)
		}
	}
	return res, nil
}

func (b *bench) machine(ctx context.Context) machine {
	m := machine{
		CPUs:      runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		RedisAOF:  b.s.aof,
		Settings:  b.s.env,
		Date:      time.Now().UTC().Format(time.RFC3339),
	}
	if info, err := b.rdb.Info(ctx, "server").Result(); err == nil {
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m.Redis = v
			}
		}
	}
	return m
}
