package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
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
	stats := infoFields(t, rdb, "commandstats")
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
	stats := infoFields(t, rdb, "errorstats")
	n := 0
	for _, name := range []string{"errorstat_WRONGPASS", "errorstat_NOAUTH"} {
		var count int
		fmt.Sscanf(stats[name], "count=%d", &count)
		n += count
	}
	return n
}

func infoFields(t *testing.T, rdb *redis.Client, section string) map[string]string {
	t.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields
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
