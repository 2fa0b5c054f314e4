package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay/relaytest"
)

func TestMain(m *testing.M) {
	if args := os.Getenv(asRelayEnv); args != "" {
		// This test binary is standing in for the relay binary: see
		// startProcess.
		if err := run(context.Background(), append([]string{"relay"}, strings.Fields(args)...), os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "relay:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	redis.SetLogger(relaytest.QuietRedisLogger{})
	// The relay verifies the SMTP sink's certificate when it logs in
	// with XOAUTH2, in this process and in the ones it starts.
	code := relaytest.RunTrustingSinkCertificate(m)
	stopBrowser() // the one the admin page's tests share, if they started it
	os.Exit(code)
}

// process is `relay <command>` running in this test, as main would run it.
type process struct {
	t      *testing.T
	cancel context.CancelFunc
	done   chan error
	stdout *relaytest.SyncBuffer
	base   string // http://host:port
}

func start(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{t: t, cancel: cancel, done: make(chan error, 1), stdout: &relaytest.SyncBuffer{}}
	// Nothing of a test's is left in the working tree.
	for _, k := range []string{"RELAY_SPOOL_DIR", "RELAY_OUTBOX_DIR"} {
		if env[k] == "" {
			env[k] = t.TempDir()
		}
	}
	getenv := func(k string) string { return env[k] }
	go func() { p.done <- run(ctx, append([]string{"relay"}, args...), getenv, nil, p.stdout, io.Discard) }()
	t.Cleanup(func() { p.stop() })

	// `relay work` takes no webhooks; it says where it listens only when
	// it serves the admin page.
	up := regexp.MustCompile(`(?:Listening|Admin page) on (https?://[^/\s]+)`)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("relay %s ended at start: %v\n%s", args[0], err, p.stdout.String())
		default:
		}
		if m := up.FindStringSubmatch(p.stdout.String()); m != nil {
			p.base = m[1]
			if resp, err := http.Get(p.base + "/healthz"); err == nil {
				resp.Body.Close()
				return p
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("relay did not come up:\n%s", p.stdout.String())
	return nil
}

// stop is SIGTERM: run must return nil once it has shut down.
func (p *process) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("relay ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		p.t.Error("relay did not shut down within 30s")
	}
}

func (p *process) post(user, password string, body []byte) int {
	p.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.base+"/webhooks/synap/user-registered-for-exam", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (p *process) get(path string) string {
	p.t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRunTurnsThreeIdenticalPostsIntoOneEmailAndOneSlackMessage(t *testing.T) {
	rds := relaytest.StartRedis(t)
	sink := relaytest.StartSMTP(t)
	slack := relaytest.StartSlack(t)
	p := start(t, map[string]string{
		"RELAY_HTTP_ADDR":         "127.0.0.1:0",
		"RELAY_REDIS_URL":         rds.URL,
		"RELAY_SMTP_URL":          sink.URL(),
		"RELAY_EMAIL_FROM":        "Exams Office <exams@example.edu>",
		"RELAY_SLACK_WEBHOOK_URL": slack.WebhookURL(),
		"RELAY_WEBHOOK_USERNAME":  "synap",
		"RELAY_WEBHOOK_PASSWORD":  "correct horse",
		"RELAY_TIMEZONE":          "Europe/London",
	}, "run")

	body := readExample(t, "registration.json")
	var codes []int
	for range 3 {
		codes = append(codes, p.post("synap", "correct horse", body))
	}
	if codes[0] != 202 || !isSuccess(codes[1]) || !isSuccess(codes[2]) {
		t.Fatalf("codes %v, want 202 then 200 or 202", codes)
	}
	for _, creds := range [][2]string{{"", ""}, {"synap", "wrong"}} {
		if code := p.post(creds[0], creds[1], body); code != http.StatusUnauthorized {
			t.Errorf("credentials %q: %d, want 401", creds, code)
		}
	}

	msgs := sink.WaitFor(t, 1, 15*time.Second)
	// The default Slack mode is a digest, posted once the exam has had no
	// new registration for RELAY_DIGEST_GRACE (5 s).
	slack.WaitFor(t, 1, 30*time.Second)
	waitIdle(t, asynq.NewInspectorFromRedisClient(rds.Client()), 15*time.Second)
	if n := sink.Count(); n != 1 {
		t.Errorf("%d emails, want 1", n)
	}
	if n := len(slack.Posts()); n != 1 {
		t.Errorf("%d Slack posts, want 1", n)
	}

	e := relaytest.ParseEmail(t, msgs[0].Data)
	if !strings.Contains(e.Subject, "Organic Chemistry II — Final") {
		t.Errorf("subject %q does not name the exam", e.Subject)
	}
	// The student's timezone attribute (Europe/Berlin) wins over the config's.
	if !strings.Contains(e.Text, "Monday, 14 December 2026, 10:00 CET") || !strings.Contains(e.Text, "Monday, 14 December 2026, 12:30 CET") {
		t.Errorf("text lacks the dates in the student's zone:\n%s", e.Text)
	}
	if e.HTML == "" || !strings.Contains(e.Calendar, "BEGIN:VEVENT") {
		t.Errorf("parts %v", e.ContentTypes)
	}
	if !strings.Contains(string(slack.Posts()[0].Body), "Organic Chemistry II — Final") {
		t.Errorf("Slack message does not name the exam: %s", slack.Posts()[0].Body)
	}

	metrics := p.get("/metrics")
	for _, want := range []string{webhooksCounted("accepted", codes, 202), webhooksCounted("duplicate", codes, 200),
		`relay_webhooks_total{outcome="unauthorized"} 2`, `relay_deliveries_total{channel="email",outcome="sent"} 1`, `asynq_tasks_processed_total`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if ready := p.get("/readyz"); !strings.Contains(ready, `"redis":"ok"`) {
		t.Errorf("/readyz = %s", ready)
	}
}

func TestRunWorksOnEmbeddedDefaults(t *testing.T) {
	outbox := t.TempDir()
	p := start(t, map[string]string{"RELAY_HTTP_ADDR": "127.0.0.1:0", "RELAY_OUTBOX_DIR": outbox}, "run")
	m := regexp.MustCompile(`password: (\S+)`).FindStringSubmatch(p.stdout.String())
	if m == nil || !strings.Contains(p.stdout.String(), "in-memory Redis") {
		t.Fatalf("no generated password or Redis warning printed:\n%s", p.stdout.String())
	}
	if code := p.post("synap", m[1], readExample(t, "registration.json")); code != http.StatusAccepted {
		t.Fatalf("POST = %d", code)
	}
	var files []string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline) && len(files) == 0; time.Sleep(50 * time.Millisecond) {
		files, _ = filepath.Glob(filepath.Join(outbox, "*.eml"))
	}
	if len(files) != 1 {
		t.Fatalf("outbox holds %v", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if e := relaytest.ParseEmail(t, raw); !strings.Contains(e.Subject, "Organic Chemistry II") {
		t.Errorf("subject %q", e.Subject)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(p.stdout.String(), "Slack (not configured") {
			return
		}
	}
	t.Errorf("the Slack message was not printed:\n%s", p.stdout.String())
}

func TestServeAndWorkRefuseToGuess(t *testing.T) {
	rds := relaytest.StartRedis(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"serve without credentials", map[string]string{"RELAY_REDIS_URL": rds.URL}, []string{"serve"}, "RELAY_WEBHOOK_PASSWORD"},
		{"serve without redis", map[string]string{"RELAY_WEBHOOK_PASSWORD": "x"}, []string{"serve"}, "RELAY_REDIS_URL"},
		{"work without redis", nil, []string{"work"}, "RELAY_REDIS_URL"},
		{"bad zone", map[string]string{"RELAY_TIMEZONE": "Mars/Olympus"}, []string{"run"}, "RELAY_TIMEZONE"},
		{"bad smtp url", map[string]string{"RELAY_SMTP_URL": "smtp://host?tls=maybe"}, []string{"run"}, "tls=maybe"},
		{"unknown command", nil, []string{"deliver"}, "unknown command"},
		{"another command's flag", map[string]string{"RELAY_REDIS_URL": rds.URL, "RELAY_WEBHOOK_PASSWORD": "x"}, []string{"serve", "-html", "x"}, "-html"},
		{"stray argument", nil, []string{"check", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"RELAY_HTTP_ADDR": "127.0.0.1:0"}
			for k, v := range tt.env {
				env[k] = v
			}
			err := run(context.Background(), append([]string{"relay"}, tt.args...), func(k string) string { return env[k] }, nil, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %s", err, tt.want)
			}
		})
	}
}

func TestCheckRedactsSecretsAndNamesBrokenTemplates(t *testing.T) {
	rds := relaytest.StartRedis(t)
	sink := relaytest.StartSMTP(t)
	env := map[string]string{
		"RELAY_REDIS_URL":         rds.URL,
		"RELAY_SMTP_URL":          "smtp://mailer:smtp-pass-123@" + sink.Addr + "?tls=none",
		"RELAY_WEBHOOK_PASSWORD":  "hook-pass-456",
		"RELAY_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B2/slack-secret-789",
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"relay", "check"}, func(k string) string { return env[k] }, nil, &out, io.Discard); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	for _, secret := range []string{"smtp-pass-123", "hook-pass-456", "slack-secret-789"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("check printed the secret %q:\n%s", secret, out.String())
		}
	}
	for _, want := range []string{"ok    templates", "ok    redis", "ok    smtp", "hooks.slack.com"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}

	dir := t.TempDir()
	broken := filepath.Join(dir, "confirmation.text.tmpl")
	if err := os.WriteFile(broken, []byte("Hello {{.Student.FullName}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env["RELAY_TEMPLATES_DIR"] = dir
	out.Reset()
	err := run(context.Background(), []string{"relay", "check"}, func(k string) string { return env[k] }, nil, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), broken) || !strings.Contains(err.Error(), "FullName") {
		t.Errorf("check with a broken template = %v", err)
	}
}

func readExample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestServeHTTPSWithItsOwnCertificate(t *testing.T) {
	cert, key := selfSignedCertificate(t)
	rds := relaytest.StartRedis(t)
	p := start(t, map[string]string{
		"RELAY_HTTP_ADDR": "127.0.0.1:0", "RELAY_REDIS_URL": rds.URL, "RELAY_WEBHOOK_PASSWORD": "pw",
		"RELAY_TLS_CERT": cert, "RELAY_TLS_KEY": key,
	}, "serve")
	if !strings.HasPrefix(p.base, "https://") {
		t.Fatalf("listening on %s", p.base)
	}
	if code := p.post("synap", "pw", readExample(t, "registration.json")); code != http.StatusAccepted {
		t.Errorf("POST over HTTPS: %d", code)
	}
}

// selfSignedCertificate writes a certificate for 127.0.0.1 and its key.
func selfSignedCertificate(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)

	// The test's client trusts it.
	pool := x509.NewCertPool()
	parsed, _ := x509.ParseCertificate(der)
	pool.AddCert(parsed)
	old := http.DefaultClient.Transport
	http.DefaultClient.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(func() { http.DefaultClient.Transport = old })
	return certFile, keyFile
}

func TestTasksScheduledListsRemindersNotYetDue(t *testing.T) {
	rds := relaytest.StartRedis(t)
	env := map[string]string{
		"RELAY_HTTP_ADDR": "127.0.0.1:0", "RELAY_REDIS_URL": rds.URL, "RELAY_WEBHOOK_PASSWORD": "pw",
		"RELAY_REMINDER_BEFORE_OPEN": "24h,1h", "RELAY_REMINDER_BEFORE_CLOSE": "30m",
	}
	p := start(t, env, "run")
	register := func(user string, opens time.Time, closes string) {
		body := fmt.Sprintf(`{"user":{"id":%q,"email":"%s@example.edu"},"exam":{"objectId":"e1","name":"Quiz",
			"schedule":{"openDate":%q,"closeDate":%q}}}`, user, user, opens.UTC().Format(time.RFC3339), closes)
		if code := p.post("synap", "pw", []byte(body)); code != http.StatusAccepted {
			t.Fatalf("POST %s: %d", user, code)
		}
	}
	register("in3days", time.Now().Add(72*time.Hour), time.Now().Add(80*time.Hour).UTC().Format(time.RFC3339))
	register("in2hours", time.Now().Add(2*time.Hour), "")

	var out bytes.Buffer
	getenv := func(k string) string { return env[k] }
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out.Reset()
		if err := run(context.Background(), []string{"relay", "tasks", "-scheduled", "-json"}, getenv, nil, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		if strings.Count(out.String(), `"id"`) >= 4 {
			break
		}
	}
	var got []struct{ UserID, Event, Before string }
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	// in3days: 24h and 1h before opening, 30m before closing; in2hours:
	// only 1h before (24h has passed, and it never closes).
	want := map[string]bool{"in3days open 24h0m0s": true, "in3days open 1h0m0s": true, "in3days close 30m0s": true, "in2hours open 1h0m0s": true}
	for _, r := range got {
		key := r.UserID + " " + r.Event + " " + r.Before
		if !want[key] {
			t.Errorf("unexpected reminder %s", key)
		}
		delete(want, key)
	}
	if len(want) != 0 {
		t.Errorf("missing reminders %v in %s", want, out.String())
	}
	out.Reset()
	run(context.Background(), []string{"relay", "tasks", "-scheduled"}, getenv, nil, &out, io.Discard)
	if !strings.Contains(out.String(), "SEND AT") || strings.Count(out.String(), "before open") != 3 {
		t.Errorf("relay tasks -scheduled:\n%s", out.String())
	}
}

// webhooksCounted is the metric line that counts the answers with status
// among codes as outcome; a zero count is not printed.
func webhooksCounted(outcome string, codes []int, status int) string {
	n := 0
	for _, c := range codes {
		if c == status {
			n++
		}
	}
	if n == 0 {
		return "relay_webhooks_total"
	}
	return fmt.Sprintf(`relay_webhooks_total{outcome=%q} %d`, outcome, n)
}
