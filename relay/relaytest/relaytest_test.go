package relaytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/smtp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"
	"github.com/slack-go/slack"
)

func TestRedisStopStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	r := StartRedis(t)
	ctx := context.Background()

	if !r.external {
		if want := "redis://" + r.Addr + "/0"; r.URL != want {
			t.Errorf("URL = %q, want %q", r.URL, want)
		}
	}
	// A client built from URL, the way the relay will connect.
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", r.URL, err)
	}
	if opt.Addr != r.Addr {
		t.Errorf("URL %q gives addr %q, want %q", r.URL, opt.Addr, r.Addr)
	}
	c := redis.NewClient(opt)
	defer c.Close()

	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := r.Client().Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET k = %q, %v; want v", got, err)
	}

	r.Stop() // skips the rest with RELAY_TEST_REDIS_URL
	// Retries off: go-redis would otherwise spend seconds redialling.
	fast := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialerRetries: 1})
	defer fast.Close()
	if err := fast.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded after Stop")
	}

	r.Start()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	// A new process, not the old one still running: the data is gone.
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET k after restart: err = %v, want redis.Nil", err)
	}
}

func TestRedisExternal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server")
	}
	owned := StartRedis(t)
	if owned.external {
		t.Skip("RELAY_TEST_REDIS_URL is set; this test sets it itself")
	}
	ctx := context.Background()
	db3 := redis.NewClient(&redis.Options{Addr: owned.Addr, DB: 3})
	defer db3.Close()
	if err := db3.Set(ctx, "old", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := owned.Client().Set(ctx, "other-db", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}

	url := fmt.Sprintf("redis://%s/3", owned.Addr)
	t.Setenv(RedisURLEnv, url)

	var sub *testing.T
	t.Run("stop", func(t *testing.T) {
		sub = t
		ext := StartRedis(t)
		if ext.URL != url || ext.Addr != owned.Addr {
			t.Errorf("got URL %q Addr %q, want %q %q", ext.URL, ext.Addr, url, owned.Addr)
		}
		if n, err := ext.Client().Exists(ctx, "old").Result(); err != nil || n != 0 {
			t.Errorf("EXISTS old in DB 3 = %d, %v; want 0 after FLUSHDB", n, err)
		}
		ext.Stop()
		t.Error("Stop on an external server did not skip")
	})
	if !sub.Skipped() {
		t.Error("subtest was not skipped")
	}
	// FLUSHDB, not FLUSHALL: other DBs are left alone.
	if n, err := owned.Client().Exists(ctx, "other-db").Result(); err != nil || n != 1 {
		t.Errorf("EXISTS other-db in DB 0 = %d, %v; want 1", n, err)
	}
}

func TestSMTPSend(t *testing.T) {
	s := StartSMTP(t)
	if want := "smtp://" + s.Addr + "?tls=none"; s.URL() != want {
		t.Errorf("URL() = %q, want %q", s.URL(), want)
	}

	// net/smtp only sends PLAIN credentials in clear text to localhost,
	// which 127.0.0.1 is.
	auth := smtp.PlainAuth("", "relay-user", "secret", "127.0.0.1")
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(auth); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	// Two messages on one connection.
	sendOn(t, c, "a@example.com", []string{"b@example.com", "c@example.com"}, "Subject: one\r\n\r\nbody one\r\n")
	sendOn(t, c, "a@example.com", []string{"d@example.com"}, "Subject: two\r\n\r\nbody two\r\n")
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}

	msgs := s.WaitFor(t, 2, 5*time.Second)
	if len(msgs) != 2 || s.Count() != 2 {
		t.Fatalf("got %d messages (Count %d), want 2", len(msgs), s.Count())
	}
	m := msgs[0]
	if m.From != "a@example.com" || strings.Join(m.To, ",") != "b@example.com,c@example.com" || m.Username != "relay-user" {
		t.Errorf("message 0 = from %q to %q user %q", m.From, m.To, m.Username)
	}
	if !bytes.Contains(m.Data, []byte("Subject: one")) || !bytes.Contains(m.Data, []byte("body one")) {
		t.Errorf("message 0 data = %q", m.Data)
	}
	if strings.Join(msgs[1].To, ",") != "d@example.com" || msgs[1].Username != "relay-user" {
		t.Errorf("message 1 = to %q user %q; want only d@example.com, same user", msgs[1].To, msgs[1].Username)
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections() = %d, want 1", n)
	}
	// The second began after the first was taken, and each before it
	// was taken.
	if m.Began.IsZero() || m.At.Before(m.Began) || msgs[1].Began.Before(m.At) || msgs[1].At.Before(msgs[1].Began) {
		t.Errorf("message 0 began %v, taken %v; message 1 began %v, taken %v", m.Began, m.At, msgs[1].Began, msgs[1].At)
	}

	// Messages returns a copy.
	msgs[0].To[0] = "changed"
	if s.Messages()[0].To[0] != "b@example.com" {
		t.Error("changing the result of Messages changed the sink")
	}

	// No AUTH is fine too, and a new connection is counted.
	if err := smtp.SendMail(s.Addr, nil, "x@example.com", []string{"y@example.com"}, []byte("Subject: three\r\n\r\nthree\r\n")); err != nil {
		t.Fatalf("SendMail without auth: %v", err)
	}
	if m := s.Messages()[2]; m.Username != "" || m.From != "x@example.com" {
		t.Errorf("message 2 = from %q user %q; want x@example.com, no user", m.From, m.Username)
	}
	if n := s.Connections(); n != 2 {
		t.Errorf("Connections() = %d, want 2", n)
	}
}

func sendOn(t *testing.T, c *smtp.Client, from string, to []string, data string) {
	t.Helper()
	if err := c.Mail(from); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			t.Fatalf("RCPT %s: %v", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := io.WriteString(w, data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("end of DATA: %v", err)
	}
}

func TestSMTPRcptHook(t *testing.T) {
	s := StartSMTP(t)
	var seen []string
	var mu sync.Mutex
	s.SetRcptHook(func(rcpt string) *gosmtp.SMTPError {
		mu.Lock()
		seen = append(seen, rcpt)
		mu.Unlock()
		if rcpt == "gone@example.com" {
			return &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil // a nil hook result must let the recipient through
	})

	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.com"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt("gone@example.com")
	if err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Fatalf("RCPT gone@example.com: err = %v, want 550", err)
	}
	if err := c.Rcpt("ok@example.com"); err != nil {
		t.Fatalf("RCPT ok@example.com: %v", err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	if n := s.Count(); n != 0 {
		t.Errorf("Count() = %d, want 0", n)
	}
	if n := s.Rejected(); n != 1 {
		t.Errorf("Rejected() = %d, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "gone@example.com,ok@example.com" {
		t.Errorf("hook saw %q", seen)
	}
}

func TestSMTPDataHook(t *testing.T) {
	s := StartSMTP(t)
	var gotFrom string
	var gotTo []string
	s.SetDataHook(func(from string, to []string) *gosmtp.SMTPError {
		gotFrom, gotTo = from, to
		return &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	})
	err := smtp.SendMail(s.Addr, nil, "a@example.com", []string{"b@example.com"}, []byte("Subject: x\r\n\r\nx\r\n"))
	if err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("SendMail: err = %v, want 451", err)
	}
	// SendMail has returned, so the hook has run.
	if gotFrom != "a@example.com" || strings.Join(gotTo, ",") != "b@example.com" {
		t.Errorf("hook got from %q to %q", gotFrom, gotTo)
	}
	if s.Count() != 0 || s.Rejected() != 1 {
		t.Errorf("Count() = %d, Rejected() = %d; want 0, 1", s.Count(), s.Rejected())
	}

	s.SetDataHook(nil)
	if err := smtp.SendMail(s.Addr, nil, "a@example.com", []string{"b@example.com"}, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatalf("SendMail after removing the hook: %v", err)
	}
	if s.Count() != 1 {
		t.Errorf("Count() = %d, want 1", s.Count())
	}
}

// fakeTB catches the Fatalf of a WaitFor that gives up.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// callFailing runs f, which is expected to call tb.Fatalf, on a goroutine
// of its own (Fatalf ends the goroutine) and returns the failure message.
func callFailing(f func(tb testing.TB)) string {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
	return tb.msg
}

func TestWaitForFails(t *testing.T) {
	s := StartSMTP(t)
	if err := smtp.SendMail(s.Addr, nil, "a@example.com", []string{"b@example.com"}, []byte("x\r\n")); err != nil {
		t.Fatal(err)
	}
	msg := callFailing(func(tb testing.TB) { s.WaitFor(tb, 2, 50*time.Millisecond) })
	if !strings.Contains(msg, "got 1") {
		t.Errorf("SMTPSink.WaitFor failure = %q, want it to say it got 1", msg)
	}

	sl := StartSlack(t)
	msg = callFailing(func(tb testing.TB) { sl.WaitFor(tb, 1, 50*time.Millisecond) })
	if !strings.Contains(msg, "got 0") {
		t.Errorf("Slack.WaitFor failure = %q, want it to say it got 0", msg)
	}
}

func postJSON(t *testing.T, url, body string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestSlackWebhook(t *testing.T) {
	s := StartSlack(t)
	body := `{"text":"hello","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]}`

	// Sent in the background so that WaitFor has something to wait for.
	go func() {
		resp, err := http.Post(s.WebhookURL(), "application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
	}()
	posts := s.WaitFor(t, 1, 5*time.Second)

	p := posts[0]
	if p.Kind != KindWebhook || p.Path != "/services/T000/B000/XXXX" || p.Text != "hello" || string(p.Body) != body {
		t.Errorf("post = %+v", p)
	}
	var blocks []map[string]any
	if err := json.Unmarshal(p.Blocks, &blocks); err != nil || len(blocks) != 1 || blocks[0]["type"] != "section" {
		t.Errorf("Blocks = %s (%v)", p.Blocks, err)
	}
	if p.At.IsZero() {
		t.Error("At not set")
	}

	resp, got := postJSON(t, s.WebhookURL(), `{"text":"again"}`)
	if resp.StatusCode != 200 || got != "ok" {
		t.Errorf("webhook answer = %d %q, want 200 ok", resp.StatusCode, got)
	}

	// Refusals like Slack's, not recorded.
	if resp, got := postJSON(t, s.WebhookURL(), `not json`); resp.StatusCode != 400 || got != "invalid_payload" {
		t.Errorf("bad JSON answer = %d %q", resp.StatusCode, got)
	}
	if resp, got := postJSON(t, s.WebhookURL(), `{}`); resp.StatusCode != 400 || got != "no_text" {
		t.Errorf("empty message answer = %d %q", resp.StatusCode, got)
	}
	if n := len(s.Posts()); n != 2 {
		t.Errorf("len(Posts()) = %d, want 2", n)
	}
	if n := s.Attempts(); n != 4 {
		t.Errorf("Attempts() = %d, want 4", n)
	}
}

func TestSlackWebhookFaults(t *testing.T) {
	s := StartSlack(t)

	s.RateLimit(1, 2*time.Second)
	resp, got := postJSON(t, s.WebhookURL(), `{"text":"a"}`)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" || got != "rate_limited" {
		t.Errorf("rate limited answer = %d Retry-After %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), got)
	}
	if resp, _ := postJSON(t, s.WebhookURL(), `{"text":"b"}`); resp.StatusCode != 200 {
		t.Errorf("after the rate limit: status %d, want 200", resp.StatusCode)
	}

	s.FailWith(2, http.StatusNotFound)
	s.FailWith(1, http.StatusInternalServerError)
	for i, want := range []int{404, 404, 500, 200} {
		resp, got := postJSON(t, s.WebhookURL(), `{"text":"c"}`)
		if resp.StatusCode != want {
			t.Errorf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
		if want == 404 && got != "no_service" {
			t.Errorf("request %d: body %q, want no_service", i, got)
		}
	}

	posts := s.Posts()
	if len(posts) != 2 || posts[0].Text != "b" || posts[1].Text != "c" {
		t.Errorf("posts = %+v, want b then c", posts)
	}
	if n := s.Attempts(); n != 6 {
		t.Errorf("Attempts() = %d, want 6", n)
	}

	// slack-go reads the Retry-After header; 1.5s rounds up to 2.
	s.RateLimit(1, 1500*time.Millisecond)
	err := slack.PostWebhook(s.WebhookURL(), &slack.WebhookMessage{Text: "d"})
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Errorf("PostWebhook: err = %v, want RateLimitedError of 2s", err)
	}
}

func TestSlackAPI(t *testing.T) {
	s := StartSlack(t)
	ctx := context.Background()
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))

	ch, ts, err := api.PostMessageContext(ctx, "C123", slack.MsgOptionText("hi", false))
	if err != nil {
		t.Fatalf("PostMessage: %v", err)
	}
	if ch != "C123" || ts != "1700000000.000100" {
		t.Errorf("PostMessage = %q, %q", ch, ts)
	}

	block := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*new*", false, false), nil, nil)
	_, ts2, _, err := api.UpdateMessageContext(ctx, "C123", ts, slack.MsgOptionText("edited", false), slack.MsgOptionBlocks(block))
	if err != nil {
		t.Fatalf("UpdateMessage: %v", err)
	}
	if ts2 != ts {
		t.Errorf("UpdateMessage returned ts %q, want %q", ts2, ts)
	}

	_, ts3, err := api.PostMessageContext(ctx, "C123", slack.MsgOptionText("second", false))
	if err != nil || ts3 != "1700000000.000101" {
		t.Errorf("second PostMessage = %q, %v; want the next ts", ts3, err)
	}

	posts := s.Posts()
	if len(posts) != 3 {
		t.Fatalf("got %d posts, want 3: %+v", len(posts), posts)
	}
	if p := posts[0]; p.Kind != KindPostMessage || p.Path != "/api/chat.postMessage" || p.Channel != "C123" || p.Text != "hi" || p.TS != ts || p.Blocks != nil {
		t.Errorf("post 0 = %+v", p)
	}
	p := posts[1]
	if p.Kind != KindUpdate || p.Channel != "C123" || p.Text != "edited" || p.TS != ts {
		t.Errorf("post 1 = %+v", p)
	}
	var blocks []map[string]any
	if err := json.Unmarshal(p.Blocks, &blocks); err != nil || len(blocks) != 1 || blocks[0]["type"] != "section" {
		t.Errorf("post 1 Blocks = %s (%v)", p.Blocks, err)
	}
}

func TestSlackAPIErrors(t *testing.T) {
	s := StartSlack(t)
	ctx := context.Background()
	good := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
	bad := slack.New("xoxb-wrong", slack.OptionAPIURL(s.APIURL()))

	if _, _, err := bad.PostMessageContext(ctx, "C123", slack.MsgOptionText("hi", false)); err == nil || err.Error() != "invalid_auth" {
		t.Errorf("wrong token: err = %v, want invalid_auth", err)
	}
	if _, _, err := good.PostMessageContext(ctx, SlackMissingChannel, slack.MsgOptionText("hi", false)); err == nil || err.Error() != "channel_not_found" {
		t.Errorf("missing channel: err = %v, want channel_not_found", err)
	}
	if _, _, _, err := good.UpdateMessageContext(ctx, "C123", "1.000001", slack.MsgOptionText("hi", false)); err == nil || err.Error() != "message_not_found" {
		t.Errorf("update of an unknown ts: err = %v, want message_not_found", err)
	}

	s.RateLimit(1, 2*time.Second)
	_, _, err := good.PostMessageContext(ctx, "C123", slack.MsgOptionText("hi", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Errorf("rate limited: err = %v, want RateLimitedError of 2s", err)
	}

	s.FailWith(1, http.StatusInternalServerError)
	_, _, err = good.PostMessageContext(ctx, "C123", slack.MsgOptionText("hi", false))
	var sc slack.StatusCodeError
	if !errors.As(err, &sc) || sc.Code != 500 {
		t.Errorf("failing: err = %v, want StatusCodeError 500", err)
	}

	if n := len(s.Posts()); n != 0 {
		t.Errorf("len(Posts()) = %d, want 0", n)
	}
	if n := s.Attempts(); n != 5 {
		t.Errorf("Attempts() = %d, want 5", n)
	}

	// The Web API also takes JSON with the token in a Bearer header.
	req, _ := http.NewRequest("POST", s.APIURL()+"chat.postMessage", strings.NewReader(`{"channel":"C9","text":"json"}`))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer xoxb-test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		OK      bool   `json:"ok"`
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || !answer.OK || answer.Channel != "C9" || answer.TS == "" {
		t.Errorf("JSON post answer = %+v, %v", answer, err)
	}
	if posts := s.Posts(); len(posts) != 1 || posts[0].Text != "json" {
		t.Errorf("posts = %+v", posts)
	}
}

func TestSlackConcurrent(t *testing.T) {
	// Many clients at once, for the race detector, and every ts unique.
	s := StartSlack(t)
	api := slack.New("xoxb-test", slack.OptionAPIURL(s.APIURL()))
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, _, err := api.PostMessage("C1", slack.MsgOptionText(fmt.Sprint(i), false)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	posts := s.WaitFor(t, n, 5*time.Second)
	seen := map[string]bool{}
	for _, p := range posts {
		if seen[p.TS] {
			t.Errorf("ts %s given twice", p.TS)
		}
		seen[p.TS] = true
	}
}

func TestSentinelsFailOverAndTakeTheOldMasterBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five redis-server processes")
	}
	started := time.Now()
	s := StartSentinels(t, SentinelOptions{Password: "redis-pw", SentinelPassword: "sentinel-pw"})
	t.Logf("started in %v", time.Since(started))
	ctx := context.Background()
	if !strings.Contains(s.URL, ":redis-pw@") || !strings.HasSuffix(s.URL, "?master=relay&sentinel_password=sentinel-pw") {
		t.Errorf("URL = %s", s.URL)
	}
	first := s.Master()
	if first != s.Servers[0] {
		t.Fatalf("master is %s, want the first server %s", first.Addr, s.Servers[0].Addr)
	}
	if err := first.Client().Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := first.Client().Wait(ctx, 1, 5*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	// No password, no answer.
	open := redis.NewClient(&redis.Options{Addr: first.Addr, MaxRetries: -1})
	defer open.Close()
	if err := open.Ping(ctx).Err(); !redis.IsAuthError(err) {
		t.Errorf("PING without a password: %v, want NOAUTH", err)
	}

	killed := s.KillMaster()
	began := time.Now()
	second := s.WaitForFailover(killed, 30*time.Second)
	t.Logf("failover to %s took %v", second.Addr, time.Since(began).Round(time.Millisecond))
	if got, err := second.Client().Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET k on the new master = %q, %v", got, err)
	}

	killed.Start()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		info, _ := killed.Client().Info(ctx, "replication").Result()
		if strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old master did not become a replica:\n%s\n%s", info, s.Logs())
		}
	}
	t.Logf("old master back as a replica %v after the kill", time.Since(began).Round(time.Millisecond))
	if got, err := killed.Client().Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET k on the old master, now a replica = %q, %v", got, err)
	}
}
