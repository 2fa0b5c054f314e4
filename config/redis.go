package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RedisTarget is the Redis that RELAY_REDIS_URL names: one server
// (redis://, rediss://), or a replicated one whose master Sentinel names
// (redis-sentinel://). Exactly one field is set.
type RedisTarget struct {
	Server   *redis.Options
	Failover *redis.FailoverOptions
}

// DefaultSentinelPort is the port of a Sentinel given without one.
const DefaultSentinelPort = "26379"

const redisURLExamples = "redis://:PASSWORD@host:6379/0 or redis-sentinel://:PASSWORD@host1:26379,host2:26379,host3:26379/0?master=mymaster"

// ParseRedisURL reads RELAY_REDIS_URL. Its errors never quote the URL: it
// holds the password.
//
// redis:// and rediss:// are go-redis's own form. redis-sentinel:// is
// ours, because asynq's parser gives the password only to the Sentinels
// and drops the database number:
//
//	redis-sentinel://[[USER]:PASSWORD@]host1[:26379],host2,…[/DB]?master=NAME[&sentinel_password=P]
//
// USER and PASSWORD are for the Redis servers, and for the Sentinels too
// unless sentinel_password is given.
func ParseRedisURL(raw string) (RedisTarget, error) {
	scheme, _, _ := strings.Cut(raw, "://")
	switch scheme {
	case "redis", "rediss":
		opt, err := redis.ParseURL(raw)
		if err != nil {
			return RedisTarget{}, fmt.Errorf("%s; want a URL such as %s", redisParseProblem(err, raw), redisURLExamples)
		}
		return RedisTarget{Server: opt}, nil
	case "redis-sentinel":
		opt, err := parseSentinelURL(raw)
		if err != nil {
			return RedisTarget{}, fmt.Errorf("%w; want a URL such as redis-sentinel://:PASSWORD@host1:26379,host2:26379,host3:26379/0?master=mymaster", err)
		}
		return RedisTarget{Failover: opt}, nil
	}
	return RedisTarget{}, fmt.Errorf("the scheme is not redis://, rediss:// or redis-sentinel://; want a URL such as %s", redisURLExamples)
}

// redisParseProblem is what go-redis found wrong, unless its message could
// hold a secret: url.Parse's errors quote the whole URL.
func redisParseProblem(err error, raw string) string {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return "not a URL (percent-encode / ? # @ and % in the password)"
	}
	msg := strings.TrimPrefix(err.Error(), "redis: ")
	if u, perr := url.Parse(raw); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" && strings.Contains(msg, pw) {
			return "not a URL go-redis can read"
		}
	}
	return msg
}

func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	rest := strings.TrimPrefix(raw, "redis-sentinel://")
	rest, rawQuery, _ := strings.Cut(rest, "?")
	if strings.Contains(rawQuery, "#") || strings.Contains(rest, "#") {
		return nil, errors.New("a fragment (#…) has no meaning here (percent-encode # in a password as %23)")
	}
	hostList, path, _ := strings.Cut(rest, "/")
	opt := &redis.FailoverOptions{}

	if at := strings.LastIndex(hostList, "@"); at >= 0 {
		userinfo := hostList[:at]
		hostList = hostList[at+1:]
		user, password, hasPassword := strings.Cut(userinfo, ":")
		if !hasPassword {
			return nil, errors.New("the part before @ has no password: write :PASSWORD@ (with the colon)")
		}
		var err1, err2 error
		opt.Username, err1 = url.PathUnescape(user)
		opt.Password, err2 = url.PathUnescape(password)
		if err1 != nil || err2 != nil {
			return nil, errors.New("the user or password has a bad %-escape")
		}
	}

	if hostList == "" {
		return nil, errors.New("no Sentinel addresses")
	}
	for _, host := range strings.Split(hostList, ",") {
		addr, err := sentinelAddr(host)
		if err != nil {
			return nil, err
		}
		opt.SentinelAddrs = append(opt.SentinelAddrs, addr)
	}

	if path != "" {
		db, err := strconv.Atoi(path)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("the database %q is not a number such as /0", path)
		}
		opt.DB = db
	}

	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errors.New("the query is not name=value pairs joined by & (percent-encode & = % in sentinel_password)")
	}
	for name, values := range query {
		if len(values) != 1 {
			return nil, fmt.Errorf("%s is given %d times", name, len(values))
		}
		switch name {
		case "master":
			opt.MasterName = values[0]
		case "sentinel_password":
			opt.SentinelPassword = values[0]
		default:
			return nil, fmt.Errorf("unknown parameter %q (want master and, if the Sentinels have a password of their own, sentinel_password)", name)
		}
	}
	if opt.MasterName == "" {
		return nil, errors.New("no ?master=NAME: the name the Sentinels monitor the master by")
	}
	if _, own := query["sentinel_password"]; !own {
		opt.SentinelUsername, opt.SentinelPassword = opt.Username, opt.Password
	}
	return opt, nil
}

// sentinelAddr is host:port, the port 26379 when host has none.
func sentinelAddr(host string) (string, error) {
	if host == "" {
		return "", errors.New("an empty Sentinel address (two commas, or a comma at an end)")
	}
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		// No port: a name, an IPv4 address, or an IPv6 one with or
		// without brackets.
		h, port = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), DefaultSentinelPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("the Sentinel address %q has no valid port", host)
	}
	if h == "" || strings.ContainsAny(h, "[]/ ") || strings.Contains(h, ":") && net.ParseIP(h) == nil {
		return "", fmt.Errorf("the Sentinel address %q has no valid host", host)
	}
	return net.JoinHostPort(h, port), nil
}

// redactRedisURL shows where RELAY_REDIS_URL points, without its
// passwords: a Sentinel URL as it was understood, with the default ports
// filled in.
func redactRedisURL(raw string) string {
	target, err := ParseRedisURL(raw)
	if err != nil || target.Failover == nil {
		return redactURL(raw)
	}
	f := target.Failover
	var b strings.Builder
	b.WriteString("redis-sentinel://")
	if f.Password != "" {
		b.WriteString(url.PathEscape(f.Username) + ":redacted@")
	}
	b.WriteString(strings.Join(f.SentinelAddrs, ","))
	fmt.Fprintf(&b, "/%d?master=%s", f.DB, url.QueryEscape(f.MasterName))
	if f.SentinelPassword != "" && f.SentinelPassword != f.Password {
		b.WriteString("&sentinel_password=redacted")
	}
	return b.String()
}
