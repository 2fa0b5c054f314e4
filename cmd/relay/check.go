package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/email"
	"github.com/exam-relay/relay/templates"
)

// checkCommand is `relay check`: it validates what can be validated
// without sending anything and says what it found; any problem makes it
// fail.
func checkCommand(ctx context.Context, args []string, e env) error {
	flags, configPath := newFlags("check", e)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	cfg, err := config.Load(*configPath, e.getenv)
	if err != nil {
		return err
	}
	stdout := e.stdout
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE")
	for _, s := range config.Settings {
		fmt.Fprintf(tw, "%s\t%s\n", s.Env, s.Value(cfg))
	}
	tw.Flush()
	fmt.Fprintln(stdout)

	var problems []error
	report := func(what string, err error) {
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", what, err))
			fmt.Fprintf(stdout, "FAIL  %s: %v\n", what, err)
			return
		}
		fmt.Fprintf(stdout, "ok    %s\n", what)
	}

	// Building the routing parses every route's templates and executes
	// them against sample registrations.
	routing, err := newRouting(cfg, nil)
	report("templates of every route", err)
	if routing != nil {
		printRoutes(stdout, routing)
	}

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if cfg.RedisURL == "" {
		fmt.Fprintln(stdout, "note  redis: not set; relay run would use an in-memory Redis that keeps nothing")
	} else {
		rdb, err := openRedis(ctx, cfg.RedisURL)
		if err == nil {
			defer rdb.Close()
			err = pingRedis(ctx, rdb)
		}
		report("redis", err)
		if err == nil {
			lines, warnings := replication(ctx, rdb, cfg)
			for _, line := range lines {
				fmt.Fprintf(stdout, "      %s\n", line)
			}
			for _, warning := range append(warnings, redisWarnings(ctx, rdb)...) {
				fmt.Fprintf(stdout, "WARN  redis: %s\n", warning)
			}
		}
	}
	if cfg.SMTP.URL == "" {
		fmt.Fprintf(stdout, "note  smtp: not set; emails would be written to %s/\n", cfg.SMTP.OutboxDir)
	} else {
		checkSMTP(ctx, cfg, report)
	}
	_, limits, _ := newMailer(cfg)
	if limits.Rate > 0 {
		fmt.Fprintf(stdout, "note  smtp rate: %s shared by every worker; a cohort of 1,000 takes about %v to send\n",
			cfg.SMTP.Rate, limits.TimeFor(1000).Round(time.Second))
	} else {
		fmt.Fprintln(stdout, "note  smtp rate: none; set RELAY_SMTP_RATE to what the provider allows (Amazon SES often 14/s, Microsoft 365 30/m)")
	}
	if cfg.SMTP.DailyLimit > 0 {
		fmt.Fprintf(stdout, "note  smtp daily limit: %d emails per rolling 24 hours; past it emails wait\n", cfg.SMTP.DailyLimit)
	}
	if cfg.Email.DKIM.KeyFile != "" {
		_, err := newDKIM(cfg)
		report(fmt.Sprintf("dkim: signs for each From domain with selector %s", cfg.Email.DKIM.Selector), err)
	}
	if cfg.Slack.WebhookURL == "" && cfg.Slack.Token == "" {
		fmt.Fprintln(stdout, "note  slack: not set; staff messages would be printed")
	}
	return errors.Join(problems...)
}

// checkSMTP logs in to the SMTP server as a worker would. With
// auth=xoauth2 it tells a refused client id or secret (the token endpoint)
// from a refused login (the mail service), which have different fixes.
func checkSMTP(ctx context.Context, cfg config.Config, report func(string, error)) {
	server, err := config.ParseSMTPURL(cfg.SMTP.URL)
	if err != nil || server.Auth != config.AuthXOAUTH2 {
		if err == nil {
			err = email.NewPool(server, 1, nil).Ping(ctx)
		}
		report("smtp", err)
		return
	}
	tokens := email.NewOAuthTokens(cfg.SMTP.OAuth)
	tokenHost := cfg.SMTP.OAuth.TokenURL
	if u, err := url.Parse(tokenHost); err == nil {
		tokenHost = u.Host
	}
	if _, err := tokens.Token(ctx); err != nil {
		report("smtp: OAuth2 token from "+tokenHost, err)
		return
	}
	report("smtp: OAuth2 token from "+tokenHost, nil)
	report(fmt.Sprintf("smtp: XOAUTH2 login as %s at %s:%d", server.Username, server.Host, server.Port),
		email.NewPool(server, 1, tokens).Ping(ctx))
}

// printRoutes shows what each route does, and warns where wording stays
// English around dates in another language.
func printRoutes(stdout io.Writer, routing *relay.Routing) {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nROUTE\tMATCH\tEMAIL\tLANGUAGE\tZONE\tFROM\tSLACK\tTEAMS\tTEMPLATES")
	for _, r := range routing.All() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, matchSummary(r), onOff(r.Email), r.Language,
			r.Location, r.Sender.From, staffSummary(r.Slack), staffSummary(r.Teams), templateSources(templateSet(r)))
	}
	tw.Flush()
	for _, r := range routing.All() {
		if names := templateSet(r).Untranslated(); len(names) > 0 {
			fmt.Fprintf(stdout, "WARN  route %s: no default templates in %s; %s stay English (export them with relay templates export and translate)\n",
				r.Name, r.Language, strings.Join(names, ", "))
		}
	}
	fmt.Fprintln(stdout)
}

// matchSummary is the route's conditions as the config gives them.
func matchSummary(r *relay.Route) string {
	if r.Name == relay.DefaultRoute {
		return "(anything no route matches)"
	}
	return r.Match.String()
}

// staffSummary is a destination as relay check shows it: its mode and its
// name, never its URL.
func staffSummary(d relay.Destination) string {
	if d.Name == "" || d.Mode == relay.ModeOff {
		return "off"
	}
	return string(d.Mode) + " → " + d.Name
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// templateSources says where a set's files come from: the defaults of a
// language, and any folder that replaces some of them.
func templateSources(set *templates.Set) string {
	count := map[string]int{}
	var order []string
	for _, name := range templates.Names {
		src := set.Source[name]
		if !strings.HasPrefix(src, "default") {
			src = filepath.Dir(src)
		}
		if count[src] == 0 {
			order = append(order, src)
		}
		count[src]++
	}
	parts := make([]string, len(order))
	for i, src := range order {
		parts[i] = fmt.Sprintf("%s (%d)", src, count[src])
	}
	return strings.Join(parts, ", ")
}

func pingRedis(ctx context.Context, rdb redis.UniversalClient) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return redisProblem(err)
	}
	return checkRedisVersion(ctx, rdb)
}

// replication says which server is the master and how far behind it each
// replica is; for redis-sentinel://, which master each Sentinel names.
// The warnings are what can lose or slow registrations.
func replication(ctx context.Context, rdb redis.UniversalClient, cfg config.Config) (lines, warnings []string) {
	target, _ := config.ParseRedisURL(cfg.RedisURL)
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		return nil, []string{fmt.Sprintf("could not read INFO replication (%v)", err)}
	}
	master := parseReplication(info)
	if master.role != "master" {
		warnings = append(warnings, fmt.Sprintf("RELAY_REDIS_URL reaches a %s, not a master: the relay writes to it", master.role))
	}

	// The replicas the Sentinels know, connected or not; with one server,
	// those connected to it.
	known := map[string]string{}
	var order []string
	for _, r := range master.replicas {
		order = append(order, r.addr)
	}
	if f := target.Failover; f != nil {
		named := map[string]int{}
		for _, addr := range f.SentinelAddrs {
			sc := redis.NewSentinelClient(&redis.Options{Addr: addr, Username: f.SentinelUsername, Password: f.SentinelPassword,
				DialTimeout: 2 * time.Second, MaxRetries: -1})
			m, err := sc.GetMasterAddrByName(ctx, f.MasterName).Result()
			if err != nil {
				lines = append(lines, fmt.Sprintf("sentinel %s: %v", addr, sentinelProblem(err)))
				sc.Close()
				continue
			}
			at := net.JoinHostPort(m[0], m[1])
			named[at]++
			lines = append(lines, fmt.Sprintf("sentinel %s: master %s is %s", addr, f.MasterName, at))
			if len(known) == 0 {
				replicas, _ := sc.Replicas(ctx, f.MasterName).Result()
				for _, r := range replicas {
					addr := net.JoinHostPort(r["ip"], r["port"])
					known[addr] = r["flags"]
					if !slices.Contains(order, addr) {
						order = append(order, addr)
					}
				}
			}
			sc.Close()
		}
		if len(named) > 1 {
			warnings = append(warnings, fmt.Sprintf("the Sentinels name different masters %v: a failover is under way, or they do not see each other", named))
		}
		if n := len(f.SentinelAddrs); n < 3 {
			warnings = append(warnings, fmt.Sprintf("%d Sentinel(s) in the URL: with fewer than 3, losing one can stop a failover; list them all", n))
		}
	}

	online := 0
	lines = append(lines, fmt.Sprintf("%s: %d replica(s) connected, replication offset %d", master.role, len(master.replicas), master.offset))
	for _, addr := range order {
		r, connected := master.replica(addr)
		switch {
		case !connected:
			lines = append(lines, fmt.Sprintf("replica %s: not connected to the master (Sentinel flags: %s)", addr, known[addr]))
		case r.state != "online":
			lines = append(lines, fmt.Sprintf("replica %s: %s", addr, r.state))
		default:
			online++
			lines = append(lines, fmt.Sprintf("replica %s: online, %d bytes behind, last acknowledged %d s ago", addr, max(0, master.offset-r.offset), r.lag))
		}
	}
	if want := cfg.Redis.MinReplicas; want > online {
		warnings = append(warnings, fmt.Sprintf("RELAY_REDIS_MIN_REPLICAS is %d but %d replica(s) are online: registrations get a copy in the spool folder, kept until that many replicas hold them", want, online))
	}
	return lines, warnings
}

// sentinelProblem says plainly that a Sentinel refused the password.
func sentinelProblem(err error) string {
	if redis.IsAuthError(err) {
		return "refused the password (WRONGPASS/NOAUTH): " + sentinelPasswordHint
	}
	return err.Error()
}

// replicationInfo is what INFO replication says of a server and its
// replicas.
type replicationInfo struct {
	role     string
	offset   int64
	replicas []replicaInfo
}

type replicaInfo struct {
	addr, state string
	offset, lag int64
}

func (ri replicationInfo) replica(addr string) (replicaInfo, bool) {
	for _, r := range ri.replicas {
		if r.addr == addr {
			return r, true
		}
	}
	return replicaInfo{}, false
}

// parseReplication reads INFO replication; a replica's line looks like
// slave0:ip=10.0.0.2,port=6379,state=online,offset=1234,lag=0.
func parseReplication(info string) replicationInfo {
	var ri replicationInfo
	for _, line := range strings.Split(info, "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		switch {
		case !ok:
		case key == "role":
			ri.role = value
		case key == "master_repl_offset":
			ri.offset, _ = strconv.ParseInt(value, 10, 64)
		case strings.HasPrefix(key, "slave") && strings.Contains(value, "ip="):
			fields := map[string]string{}
			for _, kv := range strings.Split(value, ",") {
				k, v, _ := strings.Cut(kv, "=")
				fields[k] = v
			}
			r := replicaInfo{addr: net.JoinHostPort(fields["ip"], fields["port"]), state: fields["state"]}
			r.offset, _ = strconv.ParseInt(fields["offset"], 10, 64)
			r.lag, _ = strconv.ParseInt(fields["lag"], 10, 64)
			ri.replicas = append(ri.replicas, r)
		}
	}
	return ri
}

// redisWarnings names Redis settings that can lose registrations: the
// queue is the only copy of an accepted one.
func redisWarnings(ctx context.Context, rdb redis.UniversalClient) []string {
	get := func(key string) (string, bool) {
		v, err := rdb.ConfigGet(ctx, key).Result()
		if err != nil || v[key] == "" && key != "save" {
			return "", false
		}
		return v[key], true
	}
	var warnings []string
	if policy, ok := get("maxmemory-policy"); !ok {
		warnings = append(warnings, "could not read maxmemory-policy (CONFIG GET refused?); make sure it is noeviction")
	} else if policy != "noeviction" {
		warnings = append(warnings, fmt.Sprintf("maxmemory-policy is %s: a full Redis would evict queued registrations; set it to noeviction", policy))
	}
	aof, aofOK := get("appendonly")
	save, saveOK := get("save")
	if aofOK && saveOK && aof != "yes" && strings.TrimSpace(save) == "" {
		warnings = append(warnings, "keeps nothing on disk (appendonly no, no save points): a Redis restart loses every queued registration; set appendonly yes")
	} else if aofOK && aof != "yes" {
		warnings = append(warnings, "appendonly is no: snapshots alone lose what arrived since the last one; set appendonly yes")
	}
	return warnings
}
