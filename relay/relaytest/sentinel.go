package relaytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the Sentinels of StartSentinels monitor the
// master by.
const MasterName = "relay"

// SentinelOptions say what StartSentinels starts.
type SentinelOptions struct {
	// Password is the Redis servers' (requirepass and masterauth).
	Password string
	// SentinelPassword is the Sentinels' own; empty: Password.
	SentinelPassword string
	// Replicas is how many replicas the master has; 0 means 1.
	Replicas int
}

// Sentinels is a replicated Redis for one test: a master, its replicas and
// three Sentinels watching them, each a redis-server process of its own on
// 127.0.0.1. The Sentinels call a server down after one second without an
// answer, so a failover takes a few seconds.
type Sentinels struct {
	// URL is the relay's redis-sentinel:// URL for them.
	URL string
	// Servers are the master and then its replicas, as started; which is
	// master changes with a failover.
	Servers []*Redis
	// Sentinels are the Sentinel processes.
	Sentinels []*Redis

	t       testing.TB
	clients []*redis.SentinelClient
}

// StartSentinels starts a master, its replicas and three Sentinels, and
// returns once the replicas hold the master's data and every Sentinel
// knows the others: a master killed after that fails over. Everything is
// killed when t ends.
func StartSentinels(t testing.TB, o SentinelOptions) *Sentinels {
	t.Helper()
	if u := os.Getenv(RedisURLEnv); u != "" {
		t.Skipf("needs redis-server processes the test owns, not %s", RedisURLEnv)
	}
	if o.SentinelPassword == "" {
		o.SentinelPassword = o.Password
	}
	s := &Sentinels{t: t}
	master := StartRedisWith(t, RedisOptions{Password: o.Password})
	s.Servers = append(s.Servers, master)
	for range max(o.Replicas, 1) {
		s.Servers = append(s.Servers, StartRedisWith(t, RedisOptions{Password: o.Password, ReplicaOf: master.Addr}))
	}

	// Sentinels told of each other and of the replicas at start know them
	// at once, instead of after the seconds of hello messages and INFO
	// polls that discovery takes.
	sentinels := make([]*Redis, 3)
	ids := make([]string, 3)
	for i := range sentinels {
		sentinels[i] = newRedis(t, RedisOptions{Password: o.SentinelPassword})
		id := make([]byte, 20)
		_, _ = rand.Read(id)
		ids[i] = hex.EncodeToString(id)
	}
	for i, sn := range sentinels {
		host, port, _ := net.SplitHostPort(master.Addr)
		conf := []string{
			"port " + strconv.Itoa(sn.port),
			"bind 127.0.0.1",
			"dir " + sn.dir,
			"sentinel myid " + ids[i],
			fmt.Sprintf("sentinel monitor %s %s %s 2", MasterName, host, port),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", MasterName),
			fmt.Sprintf("sentinel failover-timeout %s 5000", MasterName),
		}
		if o.Password != "" {
			conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", MasterName, o.Password))
		}
		if o.SentinelPassword != "" {
			conf = append(conf, "requirepass "+o.SentinelPassword)
		}
		for _, replica := range s.Servers[1:] {
			host, port, _ := net.SplitHostPort(replica.Addr)
			conf = append(conf, fmt.Sprintf("sentinel known-replica %s %s %s", MasterName, host, port))
		}
		for j, other := range sentinels {
			if j != i {
				host, port, _ := net.SplitHostPort(other.Addr)
				conf = append(conf, fmt.Sprintf("sentinel known-sentinel %s %s %s %s", MasterName, host, port, ids[j]))
			}
		}
		sn.conf = filepath.Join(sn.dir, "sentinel.conf")
		if err := os.WriteFile(sn.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		sn.Start()
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, Password: o.SentinelPassword})
		t.Cleanup(func() { c.Close() })
		s.clients = append(s.clients, c)
	}
	s.Sentinels = sentinels

	addrs := make([]string, len(sentinels))
	for i, sn := range sentinels {
		addrs[i] = sn.Addr
	}
	s.URL = fmt.Sprintf("redis-sentinel://:%s@%s/0?master=%s", url.PathEscape(o.Password), strings.Join(addrs, ","), MasterName)
	if o.SentinelPassword != o.Password {
		s.URL += "&sentinel_password=" + url.QueryEscape(o.SentinelPassword)
	}
	s.waitReady(30 * time.Second)
	return s
}

// waitReady polls until every replica is in sync and every Sentinel sees
// the others.
func (s *Sentinels) waitReady(timeout time.Duration) {
	s.t.Helper()
	ctx := context.Background()
	var problem string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		problem = ""
		for _, replica := range s.Servers[1:] {
			info, err := replica.client.Info(ctx, "replication").Result()
			if err != nil || !strings.Contains(info, "master_link_status:up") {
				problem = fmt.Sprintf("replica %s not in sync (%v)", replica.Addr, err)
			}
		}
		for i, c := range s.clients {
			others, err := c.Sentinels(ctx, MasterName).Result()
			if err != nil || len(others) != len(s.clients)-1 {
				problem = fmt.Sprintf("sentinel %s knows %d others (%v)", s.Sentinels[i].Addr, len(others), err)
				continue
			}
			for _, other := range others {
				if other["flags"] != "sentinel" {
					problem = fmt.Sprintf("sentinel %s sees %s as %s", s.Sentinels[i].Addr, other["name"], other["flags"])
				}
			}
		}
		if problem == "" {
			return
		}
	}
	s.t.Fatalf("sentinels not ready after %v: %s", timeout, problem)
}

// Master is the server most Sentinels name as master now.
func (s *Sentinels) Master() *Redis {
	s.t.Helper()
	votes := s.votes()
	for _, server := range s.Servers {
		if votes[server.Addr] > len(s.clients)/2 {
			return server
		}
	}
	s.t.Fatalf("no master named by most sentinels: %v", votes)
	return nil
}

// KillMaster kills the master with SIGKILL, as a crashed machine would
// stop, and returns it; Start brings it back, and the Sentinels make it a
// replica of the new master.
func (s *Sentinels) KillMaster() *Redis {
	s.t.Helper()
	m := s.Master()
	m.Stop()
	return m
}

// WaitForFailover polls until every Sentinel names a master other than
// old and that server says it is a master, and returns it.
//
// Every Sentinel, not most: a Sentinel still on the old configuration
// when old comes back sees old as the master and the promoted server as a
// replica claiming to be one, and makes it old's replica, undoing the
// failover. Redis's own Sentinel tests wait for every Sentinel too.
func (s *Sentinels) WaitForFailover(old *Redis, timeout time.Duration) *Redis {
	s.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, server := range s.Servers {
			if server == old || server.cmd == nil {
				continue
			}
			if s.votes()[server.Addr] < len(s.clients) {
				continue
			}
			if info, err := server.client.Info(context.Background(), "replication").Result(); err == nil && strings.Contains(info, "role:master") {
				return server
			}
		}
	}
	s.t.Fatalf("no failover from %s within %v", old.Addr, timeout)
	return nil
}

// Logs are the Sentinels' logs, for a test's failure message.
func (s *Sentinels) Logs() string {
	var b strings.Builder
	for _, sn := range s.Sentinels {
		out, _ := os.ReadFile(filepath.Join(sn.dir, "redis-server.log"))
		fmt.Fprintf(&b, "sentinel %s:\n%s\n", sn.Addr, out)
	}
	return b.String()
}

// votes counts the Sentinels that name each address as the master.
func (s *Sentinels) votes() map[string]int {
	votes := map[string]int{}
	for _, c := range s.clients {
		addr, err := c.GetMasterAddrByName(context.Background(), MasterName).Result()
		if err == nil && len(addr) == 2 {
			votes[net.JoinHostPort(addr[0], addr[1])]++
		}
	}
	return votes
}
