package config

import (
	"crypto/tls"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParseSentinelURL(t *testing.T) {
	tests := []struct {
		url  string
		want redis.FailoverOptions
	}{
		{"redis-sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380,10.0.0.3:26381/2?master=relay",
			redis.FailoverOptions{SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26380", "10.0.0.3:26381"}, MasterName: "relay",
				Password: "s3cret", SentinelPassword: "s3cret", DB: 2}},
		// The Sentinels' own password, and ports left to their default.
		{"redis-sentinel://:redis-pw@s1,s2,s3?master=mymaster&sentinel_password=sentinel-pw",
			redis.FailoverOptions{SentinelAddrs: []string{"s1:26379", "s2:26379", "s3:26379"}, MasterName: "mymaster",
				Password: "redis-pw", SentinelPassword: "sentinel-pw"}},
		// Sentinels without a password in front of a Redis with one.
		{"redis-sentinel://:redis-pw@s1?master=m&sentinel_password=",
			redis.FailoverOptions{SentinelAddrs: []string{"s1:26379"}, MasterName: "m", Password: "redis-pw"}},
		{"redis-sentinel://s1:26379,[::1]:26380,::2?master=m",
			redis.FailoverOptions{SentinelAddrs: []string{"s1:26379", "[::1]:26380", "[::2]:26379"}, MasterName: "m"}},
		// An ACL user, and a password with escaped characters.
		{"redis-sentinel://relay:p%40ss%2Fw%3Fd@s1/0?master=m",
			redis.FailoverOptions{SentinelAddrs: []string{"s1:26379"}, MasterName: "m",
				Username: "relay", Password: "p@ss/w?d", SentinelUsername: "relay", SentinelPassword: "p@ss/w?d"}},
		{"redis-sentinel://:a@b@s1/0?master=m",
			redis.FailoverOptions{SentinelAddrs: []string{"s1:26379"}, MasterName: "m", Password: "a@b", SentinelPassword: "a@b"}},
	}
	for _, tt := range tests {
		got, err := ParseRedisURL(tt.url)
		if err != nil {
			t.Errorf("ParseRedisURL(%q): %v", tt.url, err)
			continue
		}
		if got.Server != nil || got.Failover == nil || !reflect.DeepEqual(*got.Failover, tt.want) {
			t.Errorf("ParseRedisURL(%q) = %+v\nwant %+v", tt.url, got.Failover, tt.want)
		}
	}
}

func TestParseRedisURLKeepsGoRedisForms(t *testing.T) {
	tests := []struct {
		url                  string
		addr, user, password string
		db                   int
		tls                  bool
	}{
		{"redis://127.0.0.1:6379/0", "127.0.0.1:6379", "", "", 0, false},
		{"redis://:s3cret@redis:6379/3", "redis:6379", "", "s3cret", 3, false},
		{"redis://relay:s3cret@redis", "redis:6379", "relay", "s3cret", 0, false},
		{"rediss://:s3cret@redis.example.edu:6380/1", "redis.example.edu:6380", "", "s3cret", 1, true},
	}
	for _, tt := range tests {
		got, err := ParseRedisURL(tt.url)
		if err != nil || got.Failover != nil {
			t.Errorf("ParseRedisURL(%q) = %+v, %v", tt.url, got, err)
			continue
		}
		o := got.Server
		if o.Addr != tt.addr || o.Username != tt.user || o.Password != tt.password || o.DB != tt.db || (o.TLSConfig != nil) != tt.tls {
			t.Errorf("ParseRedisURL(%q) = addr %s user %q password %q db %d tls %v", tt.url, o.Addr, o.Username, o.Password, o.DB, o.TLSConfig != nil)
		}
		if tt.tls && o.TLSConfig.MinVersion < tls.VersionTLS12 {
			t.Errorf("%s: TLS below 1.2 allowed", tt.url)
		}
	}
}

func TestParseRedisURLErrorsNameTheProblemNotThePassword(t *testing.T) {
	const pw = "Pa55word"
	tests := []struct{ url, want string }{
		{"redis-sentinel://:" + pw + "@s1,s2,s3/0", "?master=NAME"},
		{"redis-sentinel://:" + pw + "@s1,s2,s3/x?master=m", `database "x"`},
		{"redis-sentinel://:" + pw + "@s1,,s3/0?master=m", "empty Sentinel address"},
		{"redis-sentinel://:" + pw + "@s1:port/0?master=m", `"s1:port" has no valid port`},
		{"redis-sentinel://:" + pw + "@s1:99999/0?master=m", "no valid port"},
		{"redis-sentinel://:" + pw + "@/0?master=m", "no Sentinel addresses"},
		{"redis-sentinel://" + pw + "@s1/0?master=m", ":PASSWORD@"},
		{"redis-sentinel://:" + pw + "%zz@s1/0?master=m", "bad %-escape"},
		{"redis-sentinel://:" + pw + "@s1/0?master=m&password=" + pw, `unknown parameter "password"`},
		{"redis-sentinel://:x@s1/0?master=m&sentinel_password=" + pw + "%zz", "not name=value pairs"},
		{"redis-sentinel://:x@s1/0?master=m&master=n", "master is given 2 times"},
		{"redis-sentinel://:" + pw + "#@s1/0?master=m", "fragment"},
		{"redis://:" + pw + "@redis:6379/x", "invalid database number"},
		{"redis://:" + pw + "@redis:port/0", "not a URL"},
		{"redis://:" + pw + "@redis:6379/0?master=m", "unexpected option"},
		{"sentinel://:" + pw + "@redis:26379", "redis-sentinel://"},
		{"redis-socket://:" + pw + "@/run/redis.sock", "scheme"},
		{"127.0.0.1:6379", "scheme"},
	}
	for _, tt := range tests {
		_, err := ParseRedisURL(tt.url)
		switch {
		case err == nil:
			t.Errorf("ParseRedisURL(%q) accepted", tt.url)
		case !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "such as"):
			t.Errorf("ParseRedisURL(%q) = %v\nwant it to say %q and give an example", tt.url, err, tt.want)
		case strings.Contains(err.Error(), pw):
			t.Errorf("ParseRedisURL(%q) shows the password: %v", tt.url, err)
		}
	}
	_, err := Load("", env(map[string]string{"RELAY_REDIS_URL": "redis-sentinel://:" + pw + "@s1/0"}))
	if err == nil || !strings.Contains(err.Error(), "RELAY_REDIS_URL (redis_url)") || strings.Contains(err.Error(), pw) {
		t.Errorf("Load = %v, want RELAY_REDIS_URL (redis_url) named and the password hidden", err)
	}
}

func TestRedisURLShownWithoutPasswords(t *testing.T) {
	tests := []struct{ url, want string }{
		{"redis-sentinel://:redis-pw@s1,s2:26380/1?master=relay&sentinel_password=sentinel-pw",
			"redis-sentinel://:redacted@s1:26379,s2:26380/1?master=relay&sentinel_password=redacted"},
		{"redis-sentinel://:redis-pw@s1?master=relay", "redis-sentinel://:redacted@s1:26379/0?master=relay"},
		{"redis-sentinel://s1?master=relay", "redis-sentinel://s1:26379/0?master=relay"},
		{"redis://:redis-pw@redis:6379/0", "redis://:redacted@redis:6379/0"},
	}
	for _, tt := range tests {
		cfg, err := Load("", env(map[string]string{"RELAY_REDIS_URL": tt.url}))
		if err != nil {
			t.Fatal(err)
		}
		if got := settingNamed(t, "RELAY_REDIS_URL").Value(cfg); got != tt.want {
			t.Errorf("%s shown as %s, want %s", tt.url, got, tt.want)
		}
	}
}

func TestMinReplicasNeedsARedis(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"RELAY_REDIS_MIN_REPLICAS": "1"}, "needs RELAY_REDIS_URL"},
		{map[string]string{"RELAY_REDIS_MIN_REPLICAS": "-1", "RELAY_REDIS_URL": "redis://r:6379/0"}, "want 0 (don't wait) or more"},
		{map[string]string{"RELAY_REDIS_MIN_REPLICAS": "one", "RELAY_REDIS_URL": "redis://r:6379/0"}, "RELAY_REDIS_MIN_REPLICAS"},
	} {
		if _, err := Load("", env(tt.env)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%v) = %v, want %q", tt.env, err, tt.want)
		}
	}
	cfg, err := Load("", env(map[string]string{"RELAY_REDIS_MIN_REPLICAS": "1", "RELAY_REDIS_URL": "redis://r:6379/0"}))
	if err != nil || cfg.Redis.MinReplicas != 1 {
		t.Errorf("Load = %+v, %v", cfg.Redis, err)
	}
}

func settingNamed(t *testing.T, env string) Setting {
	t.Helper()
	for _, s := range Settings {
		if s.Env == env {
			return s
		}
	}
	t.Fatalf("no setting %s", env)
	return Setting{}
}
