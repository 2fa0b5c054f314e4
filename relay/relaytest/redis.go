// Package relaytest starts the real parts the relay's tests talk to: a
// redis-server, an SMTP server and a Slack stand-in.
package relaytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisURLEnv names the environment variable that points the tests at an
// existing Redis server instead of starting one.
const RedisURLEnv = "RELAY_TEST_REDIS_URL"

// Redis is a Redis server for one test.
//
// By default StartRedis runs a private redis-server on a free port of
// 127.0.0.1, with no persistence, and kills it when the test ends.
//
// If RELAY_TEST_REDIS_URL is set (for example redis://127.0.0.1:6379/3),
// that server and DB are used instead and the DB is flushed by every
// StartRedis. go test runs the test binaries of different packages in
// parallel, and they would flush each other's data, so run
// `go test -p 1 ./...` in that mode, and do not call StartRedis from
// parallel tests.
type Redis struct {
	URL  string // redis://[:password@]host:port/db, for the code under test
	Addr string // host:port

	t        testing.TB
	external bool
	client   *redis.Client

	// Only for a server we own.
	opts RedisOptions
	bin  string
	dir  string
	port int
	// conf is a Sentinel's config file, which it rewrites as it learns.
	conf string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// RedisOptions are what StartRedisWith changes in the server StartRedis
// starts.
type RedisOptions struct {
	// Persistent keeps an append-only file synced on every write: what
	// the server acknowledged survives Stop and Start.
	Persistent bool
	// Password is asked of every client (requirepass), and given to the
	// master when the server replicates one (masterauth).
	Password string
	// ReplicaOf is a master's host:port: the server starts as its replica.
	ReplicaOf string
}

// StartRedis returns a running, empty Redis server for t. The server and
// the client returned by Client are closed when t ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{})
}

// StartReplica starts a replica of master and returns once it has
// master's data and follows its writes: its link is up, and the master
// counts it online, as WAIT does (after a diskless sync, only from the
// replica's first acknowledgement).
func StartReplica(t testing.TB, master *Redis) *Redis {
	t.Helper()
	replica := StartRedisWith(t, RedisOptions{ReplicaOf: master.Addr, Password: master.opts.Password})
	_, port, _ := net.SplitHostPort(replica.Addr)
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		linked, _ := replica.client.Info(ctx, "replication").Result()
		counted, _ := master.client.Info(ctx, "replication").Result()
		if strings.Contains(linked, "master_link_status:up") && strings.Contains(counted, ",port="+port+",state=online,") {
			return replica
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica on %s did not sync with %s within 10 s", replica.Addr, master.Addr)
		}
	}
}

// StartPersistentRedis is StartRedis with an append-only file synced on
// every write, as production runs it (there, every second): what it
// acknowledged survives Stop and Start. Tests use it to check that a Redis
// restart loses nothing the relay accepted.
func StartPersistentRedis(t testing.TB) *Redis {
	t.Helper()
	return StartRedisWith(t, RedisOptions{Persistent: true})
}

// StartRedisWith is StartRedis with a password, persistence or as a
// replica. With RELAY_TEST_REDIS_URL set, it skips a test that asks for
// any of them.
func StartRedisWith(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	if u := os.Getenv(RedisURLEnv); u != "" {
		if o.Password != "" || o.ReplicaOf != "" {
			t.Skipf("needs a redis-server the test owns, not %s", RedisURLEnv)
		}
		return useExternalRedis(t, u)
	}
	r := newRedis(t, o)
	r.Start()
	r.client = redis.NewClient(&redis.Options{Addr: r.Addr, Password: o.Password})
	t.Cleanup(func() { r.client.Close() })
	return r
}

// newRedis is a server on a free port, not yet started.
func newRedis(t testing.TB, o RedisOptions) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server not found: install it (apt-get install -y redis-server) or set %s", RedisURLEnv)
	}
	port := freePort(t)
	r := &Redis{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		t:    t,
		opts: o,
		bin:  bin,
		dir:  t.TempDir(),
		port: port,
	}
	r.URL = "redis://" + r.Addr + "/0"
	if o.Password != "" {
		r.URL = "redis://:" + url.PathEscape(o.Password) + "@" + r.Addr + "/0"
	}
	t.Cleanup(r.kill)
	return r
}

func useExternalRedis(t testing.TB, rawURL string) *Redis {
	t.Helper()
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		t.Fatalf("%s=%q: %v", RedisURLEnv, rawURL, err)
	}
	r := &Redis{URL: rawURL, Addr: opt.Addr, t: t, external: true}
	r.client = redis.NewClient(opt)
	t.Cleanup(func() { r.client.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.client.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("FLUSHDB on %s=%q: %v", RedisURLEnv, rawURL, err)
	}
	return r
}

// Client returns a client connected to the server, for tests that look at
// keys directly. It is shared; do not close it.
func (r *Redis) Client() *redis.Client {
	return r.client
}

// Info is one section of rdb's INFO, by field name.
func Info(t testing.TB, rdb redis.UniversalClient, section string) map[string]string {
	t.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for line := range strings.Lines(info) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

// Stop kills the server, as a crash would. Its data is lost, unless it
// was started with StartPersistentRedis. Tests use it
// to check how the relay behaves while Redis is down.
//
// Stop and Start may fail or skip the test given to StartRedis, so call
// them from that test's goroutine.
func (r *Redis) Stop() {
	r.t.Helper()
	if r.external {
		r.t.Skip("needs a redis-server the test owns")
	}
	r.kill()
}

// Pause stops the server's process without ending it (SIGSTOP), as a hung
// machine would: its connections stay open and nothing is answered.
// Resume it before the test ends.
func (r *Redis) Pause() {
	r.t.Helper()
	if r.cmd == nil {
		r.t.Skip("needs a redis-server the test owns")
	}
	if err := r.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		r.t.Fatal(err)
	}
}

// Resume lets a paused server run again (SIGCONT).
func (r *Redis) Resume() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		r.t.Fatal(err)
	}
}

// Start starts the server again on the same port and waits until it
// answers PING. StartRedis calls it once; call it again after Stop.
// It does nothing if the server is already running.
func (r *Redis) Start() {
	r.t.Helper()
	if r.external {
		r.t.Skip("needs a redis-server the test owns")
	}
	if r.cmd != nil {
		return
	}

	// The log goes to a file rather than a bytes.Buffer: a buffer would be
	// written by os/exec's copying goroutine while we read it to report a
	// failure, which the race detector rightly rejects.
	logPath := filepath.Join(r.dir, "redis-server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logFile.Close() // the child has its own copy

	cmd := exec.Command(r.bin, r.args()...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	r.cmd, r.done = cmd, done

	if err := r.waitReady(10 * time.Second); err != nil {
		r.kill()
		out, _ := os.ReadFile(logPath)
		r.t.Fatalf("redis-server on %s: %v\n%s", r.Addr, err, out)
	}
}

// args are redis-server's: a Sentinel's come from its config file.
func (r *Redis) args() []string {
	if r.conf != "" {
		return []string{r.conf, "--sentinel"}
	}
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--dir", r.dir,
		"--maxmemory-policy", "noeviction",
		// A replica syncs at once, not after Redis's 5 s wait for more
		// replicas to share the transfer.
		"--repl-diskless-sync-delay", "0",
	}
	if r.opts.Persistent {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if r.opts.Password != "" {
		args = append(args, "--requirepass", r.opts.Password, "--masterauth", r.opts.Password)
	}
	if r.opts.ReplicaOf != "" {
		host, port, _ := net.SplitHostPort(r.opts.ReplicaOf)
		args = append(args, "--replicaof", host, port)
	}
	return args
}

// waitReady polls until the server answers PING, it exits or the timeout
// passes.
func (r *Redis) waitReady(timeout time.Duration) error {
	// A client of its own, with retries off, so that each try fails at
	// once while the port is still closed.
	c := redis.NewClient(&redis.Options{
		Addr:          r.Addr,
		Password:      r.opts.Password,
		MaxRetries:    -1,
		DialerRetries: 1,
		DialTimeout:   time.Second,
	})
	defer c.Close()

	deadline := time.Now().Add(timeout)
	for {
		// go-redis logs every failed dial, so knock with a plain TCP dial
		// until the port is open and only then PING.
		err := dialOnce(r.Addr)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = c.Ping(ctx).Err()
			cancel()
			if err == nil {
				return nil
			}
		}
		select {
		case <-r.done:
			return errors.New("redis-server exited before answering PING")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dialOnce(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// kill kills the server if it is running and waits for it to exit, so that
// its port is free when kill returns.
func (r *Redis) kill() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.done
	r.cmd, r.done = nil, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
// Another process could take it before redis-server binds it; the window
// is small and the failure is loud, so we accept it.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is a 127.0.0.1 address nothing listened on a moment ago: a
// connection to it is refused, as to a service that is down.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

// QuietRedisLogger discards go-redis's own log lines (one per failed dial),
// for tests that stop Redis on purpose: redis.SetLogger(QuietRedisLogger{}).
type QuietRedisLogger struct{}

func (QuietRedisLogger) Printf(context.Context, string, ...any) {}
