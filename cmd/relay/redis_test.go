package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay/relaytest"
)

// A worker whose password Redis refuses must wait between tries as it does
// while Redis is away, not spin. Redis counts both sides: the commands an
// idle worker sends while it is let in, and the refusals once its password
// is rotated away. A worker that backs off knocks less often than it polls.
func TestWorkerBacksOffWhileRedisRefusesItsPassword(t *testing.T) {
	rds := relaytest.StartRedisWith(t, relaytest.RedisOptions{Password: "old-pw"})
	f := newFixture(t, rds)
	worker := startProcess(t, f.env, "work")
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); rds.Client().ZCard(ctx, "asynq:servers").Val() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker did not register with asynq")
		}
	}

	const window = 3 * time.Second
	admin := rds.Client()
	before, cpuBefore := commandsSeen(t, admin), cpuTicks(t, worker)
	time.Sleep(window)
	polled, cpuPolling := commandsSeen(t, admin)-before, cpuTicks(t, worker)-cpuBefore

	// Rotate the password away from the worker: connections already let
	// in stay in, so close them.
	if err := admin.ConfigSet(ctx, "requirepass", "new-pw").Err(); err != nil {
		t.Fatal(err)
	}
	admin = redis.NewClient(&redis.Options{Addr: rds.Addr, Password: "new-pw"})
	defer admin.Close()
	if err := admin.ClientKillByFilter(ctx, "TYPE", "normal").Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	before, cpuBefore = refusals(t, admin), cpuTicks(t, worker)
	time.Sleep(window)
	refused, cpuRefused := refusals(t, admin)-before, cpuTicks(t, worker)-cpuBefore

	t.Logf("over %v: %d commands and %d CPU ticks while let in; %d refusals and %d CPU ticks while refused", window, polled, cpuPolling, refused, cpuRefused)
	if refused == 0 {
		t.Error("Redis refused nothing: the worker stopped trying, or the password was not rotated")
	}
	if refused > polled {
		t.Errorf("the refused worker tried %d times, more than the %d commands it sends while idle: it does not back off", refused, polled)
	}
	logs, _ := os.ReadFile(worker.log)
	if bytes.Contains(logs, []byte("old-pw")) {
		t.Error("the worker's log shows the password")
	}
}

// commandsSeen is how many commands Redis has run, less the INFO calls
// that ask.
func commandsSeen(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	stats := relaytest.Info(t, rdb, "commandstats")
	n := 0
	for name, v := range stats {
		if name == "cmdstat_info" {
			continue
		}
		var calls int
		fmt.Sscanf(v, "calls=%d", &calls)
		n += calls
	}
	return n
}

// refusals is how many times Redis refused a password, or a command for
// want of one.
func refusals(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	stats := relaytest.Info(t, rdb, "errorstats")
	n := 0
	for _, name := range []string{"errorstat_WRONGPASS", "errorstat_NOAUTH"} {
		var count int
		fmt.Sscanf(stats[name], "count=%d", &count)
		n += count
	}
	return n
}

// cpuTicks is the user and system CPU time the process has used, in clock
// ticks (1/100 s on Linux).
func cpuTicks(t *testing.T, p *osProcess) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stat, _ := io.ReadAll(f)
	// The command name, in parentheses, may hold spaces: count fields
	// after it. utime and stime are fields 14 and 15.
	_, rest, _ := bytes.Cut(stat, []byte(") "))
	fields := strings.Fields(string(rest))
	if len(fields) < 13 {
		t.Fatalf("/proc/%d/stat: %q", p.cmd.Process.Pid, stat)
	}
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return utime + stime
}

func TestCheckSaysWhichMasterTheSentinelsNameAndHowFarBehindTheReplicaIs(t *testing.T) {
	s := relaytest.StartSentinels(t, relaytest.SentinelOptions{Password: "redis-pw-123", SentinelPassword: "sentinel-pw-456"})
	check := func(url string, more ...string) (string, error) {
		env := map[string]string{"RELAY_REDIS_URL": url}
		for i := 0; i+1 < len(more); i += 2 {
			env[more[i]] = more[i+1]
		}
		var out bytes.Buffer
		err := run(context.Background(), []string{"relay", "check"}, func(k string) string { return env[k] }, nil, &out, io.Discard)
		if strings.Contains(out.String(), "redis-pw-123") || strings.Contains(out.String(), "sentinel-pw-456") {
			t.Errorf("check shows a password:\n%s", out.String())
		}
		return out.String(), err
	}

	out, err := check(s.URL, "RELAY_REDIS_MIN_REPLICAS", "2")
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	master, replica := s.Servers[0].Addr, s.Servers[1].Addr
	for _, want := range []string{
		"redis-sentinel://:redacted@" + s.Sentinels[0].Addr,
		"sentinel_password=redacted",
		"ok    redis",
		"sentinel " + s.Sentinels[2].Addr + ": master relay is " + master,
		"master: 1 replica(s) connected",
		"replica " + replica + ": online, ",
		"RELAY_REDIS_MIN_REPLICAS is 2 but 1 replica(s) are online",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check lacks %q:\n%s", want, out)
		}
	}

	wrong := strings.Replace(s.URL, "redis-pw-123", "wrong-pw", 1)
	out, err = check(wrong)
	if want := "RELAY_REDIS_URL: Redis refused the password (WRONGPASS/NOAUTH): check the password in the URL"; err == nil || !strings.Contains(out, want) {
		t.Errorf("check with a wrong Redis password = %v, want %q in:\n%s", err, want, out)
	}
	wrong = strings.Replace(s.URL, "sentinel-pw-456", "wrong-pw", 1)
	out, err = check(wrong)
	if want := "the Sentinels refused the password: check sentinel_password"; err == nil || !strings.Contains(out, want) {
		t.Errorf("check with a wrong Sentinel password = %v, want %q in:\n%s", err, want, out)
	}
	out, err = check("redis://" + master + "/0")
	if want := "Redis refused the password (WRONGPASS/NOAUTH)"; err == nil || !strings.Contains(out, want) {
		t.Errorf("check without a password = %v, want %q in:\n%s", err, want, out)
	}
}

// A receiver started with a wrong password says so plainly and still
// keeps what it is sent, in its spool: Synap does not send twice.
func TestServeWithAWrongRedisPasswordSaysSoAndSpools(t *testing.T) {
	rds := relaytest.StartRedisWith(t, relaytest.RedisOptions{Password: "right-pw"})
	f := newFixture(t, rds)
	serve := startProcess(t, f.with("RELAY_REDIS_URL", strings.Replace(rds.URL, "right-pw", "wrong-pw", 1)), "serve")
	base := serve.waitForLog(t, listening, 30*time.Second)[1]
	serve.waitForLog(t, regexp.MustCompile(`RELAY_REDIS_URL: Redis refused the password \(WRONGPASS/NOAUTH\): check the password in the URL`), 30*time.Second)
	if accepted := postAll(t, base, 0, 3); len(accepted) != 3 {
		t.Errorf("%d of 3 registrations answered 2xx", len(accepted))
	}
	if logs, _ := os.ReadFile(serve.log); bytes.Contains(logs, []byte("wrong-pw")) {
		t.Error("the log shows the password")
	}
}
