package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// child is a process the harness started: redis-server, or serve or work
// of the relay or the thin reference.
type child struct {
	name string
	// role is serve or work: what its CPU time is counted as.
	role string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // once done is closed
}

func startChild(name, dir string, env []string, bin string, args ...string) (*child, error) {
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// peakRSS is the process's high-water resident set (VmHWM) in bytes.
func (c *child) peakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// stop asks the process to finish (SIGTERM) and kills it if it takes
// longer than grace.
func (c *child) stop(grace time.Duration) error {
	select {
	case <-c.done:
		return fmt.Errorf("%s had already exited: %v", c.name, c.err)
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not stop within %v", c.name, grace)
	}
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitHTTP waits until the child answers GET url with 200.
func (c *child) waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		if c.exited() {
			return fmt.Errorf("%s exited: %v (see its log)", c.name, c.err)
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s within %v", c.name, url, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startRedis runs a private redis-server on a free port. Without aof it
// keeps nothing on disk; with it, it runs as production should.
func startRedis(ctx context.Context, dir string, aof bool) (*child, string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, "", errors.New("redis-server not found: apt-get install -y redis-server")
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	args := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir,
		"--maxmemory-policy", "noeviction", "--appendonly", "no",
	}
	if aof {
		args = append(args[:len(args)-1], "yes", "--appendfsync", "everysec")
	}
	c, err := startChild("redis", dir, os.Environ(), bin, args...)
	if err != nil {
		return nil, "", err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if rdb.Ping(ctx).Err() == nil {
			return c, addr, nil
		}
		if c.exited() || time.Now().After(deadline) {
			_ = c.stop(time.Second)
			return nil, "", fmt.Errorf("redis-server on %s did not start (see redis.log)", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort asks the kernel for a port nobody listens on. Another process
// could take it before the child does; on a benchmark machine none will.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// build builds the command pkg into dir as name, as users build it.
func build(ctx context.Context, dir, name, pkg string) (string, error) {
	bin := filepath.Join(dir, name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// cpuTime is the user and system CPU time the process has used so far.
func (c *child) cpuTime() time.Duration {
	return processCPU(c.cmd.Process.Pid)
}

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat times; it is
// 100 on every architecture Go supports.
const clockTicks = 100

func processCPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	_, rest, ok := strings.Cut(string(data), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// selfCPU is the harness's own CPU time: HTTP clients, the SMTP sink and
// the Slack stand-in.
func selfCPU() time.Duration {
	return processCPU(os.Getpid())
}

// machineCPU is the CPU time every process on the machine has used since
// boot: /proc/stat's user, nice, system, irq and softirq (guest time is in
// user already; idle, iowait and steal are not ours).
func machineCPU() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// cpuMeter tells how many CPUs each process kept busy during a phase:
// what limits a figure on a small machine. "others" is every other
// process on the machine: what disturbed the figure.
type cpuMeter struct {
	start  time.Time
	procs  map[string]func() time.Duration
	before map[string]time.Duration
}

// meter starts measuring redis, the harness, the given children and the
// machine.
func (b *bench) meter(children ...*child) *cpuMeter {
	m := &cpuMeter{start: time.Now(), procs: map[string]func() time.Duration{
		"redis":   b.redis.cpuTime,
		"harness": selfCPU,
	}, before: map[string]time.Duration{}}
	for _, c := range children {
		// Processes of one role (several workers) count together.
		if other, ok := m.procs[c.role]; ok {
			m.procs[c.role] = func() time.Duration { return other() + c.cpuTime() }
			continue
		}
		m.procs[c.role] = c.cpuTime
	}
	for name, cpu := range m.procs {
		m.before[name] = cpu()
	}
	m.before["machine"] = machineCPU()
	return m
}

// cores is CPU time over wall time for each process since meter, and for
// all others together.
func (m *cpuMeter) cores() map[string]float64 {
	wall := time.Since(m.start).Seconds()
	round := func(d time.Duration) float64 { return math.Round(d.Seconds()/wall*100) / 100 }
	out := map[string]float64{}
	others := machineCPU() - m.before["machine"]
	for name, cpu := range m.procs {
		used := cpu() - m.before[name]
		out[name] = round(used)
		others -= used
	}
	out["others"] = round(max(others, 0))
	return out
}
