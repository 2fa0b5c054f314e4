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
	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/tasks"
)

// The credentials relay serve is given and the harness posts with.
const (
	webhookUser     = "synap"
	webhookPassword = "bench-password"
	webhookPath     = "/webhooks/synap/user-registered-for-exam"
)

// bench holds the parts every phase shares: one Redis, one SMTP sink, one
// Slack stand-in, the relay binary.
type bench struct {
	s        settings
	dir      string
	progress io.Writer

	redis     *child
	redisAddr string
	rdb       *redis.Client
	queue     *asynq.Client
	inspector *asynq.Inspector
	smtp      *smtpSink
	slack     *slackSink
	relayBin  string
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
		if b.relayBin, err = buildRelay(ctx, dir); err != nil {
			return nil, err
		}
	}
	if b.redis, b.redisAddr, err = startRedis(ctx, dir, s.aof); err != nil {
		return nil, err
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: b.redisAddr})
	b.queue = asynq.NewClientFromRedisClient(b.rdb)
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
		"RELAY_EMAIL_FROM=Exams Office <exams@example.edu>",
		"RELAY_SLACK_WEBHOOK_URL=" + b.slack.url,
	}, s.env...)

	// The ceilings enqueue with the options the relay would use.
	cfg, err := config.Load("", lookup(b.relayEnv))
	if err != nil {
		return nil, fmt.Errorf("relay settings: %w", err)
	}
	b.opts = tasks.Options{Retention: time.Duration(cfg.Retention), MaxRetry: cfg.Worker.MaxRetry}
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
	if b.queue != nil {
		_ = b.queue.Close()
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

// startRelay runs `relay serve` or `relay work` on a free port with its own
// spool folder and waits until it answers /healthz.
func (b *bench) startRelay(ctx context.Context, sub string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	b.started++
	name := fmt.Sprintf("%s-%d", sub, b.started)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var env []string
	for _, kv := range os.Environ() {
		// Only what the harness chose: not the RELAY_CONFIG of whoever runs it.
		if !strings.HasPrefix(kv, "RELAY_") {
			env = append(env, kv)
		}
	}
	env = append(env, "RELAY_HTTP_ADDR="+addr, "RELAY_SPOOL_DIR="+filepath.Join(b.dir, "spool-"+name))
	env = append(env, b.relayEnv...)
	c, err := startChild(name, b.dir, env, b.relayBin, sub)
	if err != nil {
		return nil, "", err
	}
	base := "http://" + addr
	if err := c.waitHTTP(ctx, base+"/healthz", 30*time.Second); err != nil {
		_ = c.stop(5 * time.Second)
		return nil, "", err
	}
	return c, base, nil
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

// enqueueAll is the ingest ceiling: raw asynq enqueues, as many at once
// as there are clients.
func (b *bench) enqueueAll(ctx context.Context, ts []*asynq.Task) int {
	return parallel(len(ts), b.s.clients, func(i int) error {
		_, err := b.queue.EnqueueContext(ctx, ts[i])
		return err
	})
}

// postAll posts every body to relay serve from keep-alive clients and
// returns each request's latency and how many were not answered 202.
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

// runAll runs the phases in order, each on a flushed Redis.
func (b *bench) runAll(ctx context.Context) (results, error) {
	res := results{Machine: b.machine(ctx)}
	var err error
	if res.Ingest, err = b.ingest(ctx); err != nil {
		return res, fmt.Errorf("ingest: %w", err)
	}
	if res.Delivery, err = b.delivery(ctx); err != nil {
		return res, fmt.Errorf("delivery: %w", err)
	}
	if res.Burst, err = b.burst(ctx); err != nil {
		return res, fmt.Errorf("burst: %w", err)
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

// ingest: relay serve against raw enqueues of the same tasks.
func (b *bench) ingest(ctx context.Context) (ingest, error) {
	n := b.s.ingestN
	res := ingest{Registrations: n, Clients: b.s.clients}
	bodies := registrations("ingest", n, b.s.exams)
	ts, err := b.registrationTasks(bodies)
	if err != nil {
		return res, err
	}

	b.logf("ingest ceiling: %d raw asynq enqueues from %d goroutines", n, b.s.clients)
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	start := time.Now()
	cpu := b.meter()
	res.CeilingErrors = b.enqueueAll(ctx, ts)
	res.CeilingPerSecond = perSecond(n-res.CeilingErrors, time.Since(start))
	res.CeilingCPU = cpu.cores()

	b.logf("ingest: %d POSTs to relay serve from %d clients", n, b.s.clients)
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	serve, base, err := b.startRelay(ctx, "serve")
	if err != nil {
		return res, err
	}
	start = time.Now()
	cpu = b.meter(serve)
	latencies, errs := b.postAll(ctx, base, bodies)
	elapsed := time.Since(start)
	res.CPU = cpu.cores()
	rss, rssErr := serve.peakRSS()
	if err := serve.stop(30 * time.Second); err != nil {
		return res, err
	}
	if rssErr != nil {
		return res, rssErr
	}
	slices.Sort(latencies)
	res.Errors = errs
	res.PerSecond = perSecond(n-errs, elapsed)
	res.P50Millis = percentile(latencies, 0.50)
	res.P99Millis = percentile(latencies, 0.99)
	res.Ratio = ratio(res.PerSecond, res.CeilingPerSecond)
	res.ServePeakRSSMB = megabytes(rss)
	info, err := b.inspector.GetQueueInfo(tasks.QueueRegistrations)
	if err != nil {
		return res, err
	}
	res.Queued = info.Size
	return res, b.flush(ctx)
}

// delivery: relay work draining a full queue against raw go-mail sends of
// the same message over as many connections as the worker used.
func (b *bench) delivery(ctx context.Context) (delivery, error) {
	n := b.s.deliveryN
	res := delivery{Emails: n, Workers: b.s.workers, SlackMode: b.slackMode()}
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	ts, err := b.registrationTasks(registrations("delivery", n, b.s.exams))
	if err != nil {
		return res, err
	}
	if failed := b.enqueueAll(ctx, ts); failed > 0 {
		return res, fmt.Errorf("%d of %d registrations could not be queued", failed, n)
	}

	b.logf("delivery: relay work drains %d queued registrations", n)
	b.smtp.reset()
	b.slack.reset()
	start := time.Now()
	var workers []*child
	for range b.s.workers {
		work, _, err := b.startRelay(ctx, "work")
		if err != nil {
			return res, err
		}
		// Stopped below; this is for a phase that ends early.
		defer func() {
			if !work.exited() {
				_ = work.stop(5 * time.Second)
			}
		}()
		workers = append(workers, work)
	}
	cpu := b.meter(workers...)
	waitErr := b.waitFor(ctx, fmt.Sprintf("%d emails", n), func() bool { return b.smtp.stats().count >= n })
	res.CPU = cpu.cores()
	var rss int64
	var rssErr, stopErr error
	for _, work := range workers {
		peak, err := work.peakRSS()
		rss, rssErr = max(rss, peak), cmp.Or(rssErr, err)
		stopErr = cmp.Or(stopErr, work.stop(30*time.Second))
	}
	st := b.smtp.stats()
	switch {
	case waitErr != nil:
		return res, fmt.Errorf("%w (got %d)", waitErr, st.count)
	case rssErr != nil:
		return res, rssErr
	case stopErr != nil:
		return res, stopErr
	}
	res.PerSecond = perSecond(n, st.last.Sub(start))
	res.Duplicates = st.dups
	res.Connections = st.peakOpen
	res.MessageBytes = int(st.bytes / int64(st.count))
	res.WorkPeakRSSMB = megabytes(rss)

	b.logf("delivery ceiling: %d go-mail sends over %d connections", n, res.Connections)
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	msgs, err := ceilingMessages(b.smtp.sampleMessage(), n)
	if err != nil {
		return res, err
	}
	b.smtp.reset()
	start = time.Now()
	cpu = b.meter()
	if err := sendAll(ctx, b.smtp.addr, msgs, res.Connections); err != nil {
		return res, err
	}
	res.CeilingCPU = cpu.cores()
	st = b.smtp.stats()
	if st.count != n {
		return res, fmt.Errorf("ceiling: the sink got %d of %d messages", st.count, n)
	}
	res.CeilingPerSecond = perSecond(n, st.last.Sub(start))
	res.CeilingMessageBytes = int(st.bytes / int64(st.count))
	res.Ratio = ratio(res.PerSecond, res.CeilingPerSecond)
	return res, nil
}

func (b *bench) slackMode() string {
	if m := lookup(b.relayEnv)("RELAY_SLACK_MODE"); m != "" {
		return m
	}
	return "digest"
}

// ceilingMessages are n copies of a message the relay sent, each to its own
// recipient, built before the clock starts.
func ceilingMessages(sample []byte, n int) ([]*mail.Msg, error) {
	if sample == nil {
		return nil, fmt.Errorf("no sample message from the relay")
	}
	msgs := make([]*mail.Msg, n)
	for i := range msgs {
		m, err := mail.EMLToMsgFromString(string(sample))
		if err != nil {
			return nil, fmt.Errorf("read the relay's message back: %w", err)
		}
		if err := m.To(fmt.Sprintf("ceiling%d@example.edu", i)); err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

// sendAll sends msgs over conns reused go-mail connections.
func sendAll(ctx context.Context, addr string, msgs []*mail.Msg, conns int) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	clients := make(chan *mail.Client, conns)
	for range conns {
		c, err := mail.NewClient(host, mail.WithPort(port), mail.WithTLSPolicy(mail.NoTLS), mail.WithTimeout(30*time.Second))
		if err != nil {
			return err
		}
		if err := c.DialWithContext(ctx); err != nil {
			return err
		}
		clients <- c
	}
	close(clients)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			defer c.Close()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(msgs) {
					return
				}
				if c.Send(msgs[i]) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d sends failed", n)
	}
	return nil
}

// burst: serve and work together, from the first POST to the last email
// and the last digest.
func (b *bench) burst(ctx context.Context) (burst, error) {
	n := b.s.burstN
	res := burst{Registrations: n, Exams: b.s.exams, SlackMode: b.slackMode()}
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	b.smtp.reset()
	b.slack.reset()
	work, _, err := b.startRelay(ctx, "work")
	if err != nil {
		return res, err
	}
	defer work.stop(30 * time.Second)
	serve, base, err := b.startRelay(ctx, "serve")
	if err != nil {
		return res, err
	}
	defer serve.stop(30 * time.Second)
	bodies := registrations("burst", n, b.s.exams)

	b.logf("burst: %d registrations over %d exams through serve and work", n, b.s.exams)
	start := time.Now()
	cpu := b.meter(serve, work)
	_, errs := b.postAll(ctx, base, bodies)
	res.PostSeconds = time.Since(start).Seconds()
	res.Errors = errs
	accepted := n - errs
	err = b.waitFor(ctx, fmt.Sprintf("%d emails", accepted), func() bool { return b.smtp.stats().count >= accepted })
	res.CPU = cpu.cores()
	if err == nil && res.SlackMode != "off" {
		err = b.waitFor(ctx, fmt.Sprintf("digests for %d students", accepted), func() bool {
			_, students, _ := b.slack.stats()
			return students >= accepted
		})
	}
	// Anything sent twice would come soon after: give it the time.
	time.Sleep(2 * time.Second)
	st := b.smtp.stats()
	res.Digests, res.DigestStudents, _ = b.slack.stats()
	res.Emails, res.Duplicates = st.count, st.dups
	if err != nil {
		return res, fmt.Errorf("%w (got %d emails, digests for %d students)", err, res.Emails, res.DigestStudents)
	}
	_, _, lastPost := b.slack.stats()
	res.LastEmailSeconds = st.last.Sub(start).Seconds()
	if !lastPost.IsZero() {
		res.LastDigestSeconds = lastPost.Sub(start).Seconds()
	}
	serveRSS, err := serve.peakRSS()
	if err != nil {
		return res, err
	}
	workRSS, err := work.peakRSS()
	if err != nil {
		return res, err
	}
	res.ServePeakRSSMB, res.WorkPeakRSSMB = megabytes(serveRSS), megabytes(workRSS)
	return res, nil
}
