package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/email"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/slack"
	"github.com/exam-relay/relay/relay/teams"
	"github.com/exam-relay/relay/relay/webhook"
	"github.com/exam-relay/relay/relay/worker"
	"github.com/exam-relay/relay/tasks"
	"github.com/exam-relay/relay/templates"
)

// relayProcess is a relay being run: the parts that `relay run`, `serve`
// or `work` started from one config, and how to stop them in order. The
// tests start the same parts.
type relayProcess struct {
	cfg    config.Config
	log    *slog.Logger
	stdout io.Writer
	// embedded is true when Redis runs in this process: nothing was
	// configured, and `relay run` may then make up the rest too.
	embedded  bool
	redis     redis.UniversalClient
	queue     *asynq.Client
	inspector *asynq.Inspector
	options   tasks.Options
	store     *redisstore.Store
	history   *redisstore.History
	registry  *prometheus.Registry
	http      webhook.ServerDeps
	worker    *worker.Worker
	// stops undo what was started, last first.
	stops []func()
}

// openRelay connects to Redis and makes what the receiver and the worker
// share: the queue, its inspector and the metrics. With allowEmbedded
// and no RELAY_REDIS_URL, Redis runs in memory in this process.
func openRelay(ctx context.Context, cfg config.Config, e env, allowEmbedded bool) (*relayProcess, error) {
	p := &relayProcess{cfg: cfg, log: newLogger(cfg, e.stderr), stdout: e.stdout}
	p.embedded = allowEmbedded && cfg.RedisURL == ""
	rdb, closeRedis, err := connectRedis(ctx, cfg, p.embedded, p.log, e.stdout)
	if err != nil {
		return nil, err
	}
	p.redis = rdb
	p.onClose(closeRedis)
	p.queue = asynq.NewClientFromRedisClient(p.redis)
	p.onClose(func() { _ = p.queue.Close() })
	p.inspector = asynq.NewInspectorFromRedisClient(p.redis)
	p.onClose(func() { _ = p.inspector.Close() })
	p.options = tasks.Options{MaxRetry: cfg.Worker.MaxRetry}
	p.store = redisstore.New(p.redis, time.Duration(cfg.Retention))
	p.history = p.store.NewHistory(time.Duration(cfg.History.Retention))

	p.registry = prometheus.NewRegistry()
	p.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewQueueMetricsCollector(p.inspector))
	p.http = webhook.ServerDeps{
		Ready:    func(ctx context.Context) error { return p.redis.Ping(ctx).Err() },
		Metrics:  webhook.NewMetrics(p.registry),
		Gatherer: p.registry,
		Log:      p.log,
	}
	// The admin page is served wherever HTTP is (run, serve and work), and
	// only once it has a password of its own.
	if cfg.Admin.Password != "" {
		p.http.Admin, err = webhook.NewAdmin(webhook.AdminDeps{
			Credentials:      webhook.Credentials{Username: cfg.Admin.Username, Password: cfg.Admin.Password},
			History:          p.history,
			Inspector:        p.inspector,
			Zone:             cfg.Location(),
			HistoryRetention: cfg.History.Retention.String(),
			Log:              p.log,
		})
		if err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// replicaWait bounds how long a webhook waits for RELAY_REDIS_MIN_REPLICAS
// replicas before a copy of its registration is kept until they hold it.
const replicaWait = time.Second

// startReceiver adds the webhook receiver, with its spool, and the
// drainers that move the spool into Redis and drop the copies the
// replicas hold, running until ctx ends.
func (p *relayProcess) startReceiver(ctx context.Context) error {
	creds, err := credentials(p.cfg, p.embedded, p.stdout)
	if err != nil {
		return err
	}
	keys, err := p.cfg.Webhook.SigningKeys()
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		p.http.Signatures = webhook.NewStandardWebhooks(keys)
	}
	spool, err := webhook.OpenSpool(p.cfg.Spool.Dir, p.cfg.Spool.Max, p.log)
	if err != nil {
		return err
	}
	p.onClose(func() { _ = spool.Close() })
	p.http.Metrics.ObserveSpool(spool)
	deps := webhook.ReceiverDeps{Queue: p.queue, Options: p.options, Spool: spool, Metrics: p.http.Metrics, Log: p.log}
	// Copies left by a run with RELAY_REDIS_MIN_REPLICAS are drained even
	// when it is off now.
	if deps.Unreplicated, err = webhook.OpenUnreplicated(p.cfg.Spool.Dir, p.cfg.Spool.Max, p.cfg.Redis.MinReplicas > 0, p.log); err != nil {
		return err
	}
	if deps.Unreplicated != nil {
		p.onClose(func() { _ = deps.Unreplicated.Close() })
	}
	// Exposed without the setting too, at 0, for one alert rule to fit all.
	p.http.Metrics.ObserveUnreplicated(deps.Unreplicated)
	if n := p.cfg.Redis.MinReplicas; n > 0 {
		deps.Replicas = redisstore.NewReplicas(p.redis, n, replicaWait)
	}
	receiver, err := webhook.NewReceiver(deps)
	if err != nil {
		return err
	}
	drainCtx, stopDraining := context.WithCancel(ctx)
	var drainers sync.WaitGroup
	drainers.Go(func() { spool.RunDrainer(drainCtx, time.Second, receiver.EnqueueSpooled) })
	if deps.Unreplicated != nil {
		drainers.Go(func() { deps.Unreplicated.RunSweeper(drainCtx, time.Second, receiver.ConfirmUnreplicated) })
	}
	p.onClose(func() { stopDraining(); drainers.Wait() })
	p.http.Credentials, p.http.Receiver = creds, receiver
	p.http.Spool, p.http.Unreplicated = spool, deps.Unreplicated
	return nil
}

// startWorker adds the worker and starts the asynq server that feeds it.
func (p *relayProcess) startWorker() error {
	cfg := p.cfg
	routing, err := newRouting(cfg, newPosters(cfg, p.stdout))
	if err != nil {
		return fmt.Errorf("templates: %w", err)
	}
	warnUntranslated(routing, p.log)
	mailer, limits, err := newMailer(cfg)
	if err != nil {
		return err
	}
	p.onClose(func() { _ = mailer.Close() })
	dkim, err := newDKIM(cfg)
	if err != nil {
		return err
	}
	if cfg.SMTP.URL == "" {
		fmt.Fprintf(p.stdout, "No RELAY_SMTP_URL set: emails are written to %s/ as .eml files\n", strings.TrimSuffix(cfg.SMTP.OutboxDir, "/"))
	}
	p.worker, err = worker.NewWorker(worker.Deps{
		Queue:     p.queue,
		Inspector: p.inspector,
		Store:     p.store,
		History:   p.history,
		Mailer:    mailer,
		Routing:   routing,
		Options:   p.options,
		Reminders: relay.Reminders{BeforeOpen: cfg.Reminders.BeforeOpen.Std(), BeforeClose: cfg.Reminders.BeforeClose.Std()},
		Today:     cfg.Location(),
		SMTP:      limits,
		DKIM:      dkim,
		Settings: worker.Settings{
			Concurrency:     cfg.Worker.Concurrency,
			ShutdownTimeout: time.Duration(cfg.Worker.ShutdownTimeout),
			RetrySchedule:   cfg.Worker.RetrySchedule.Std(),
			Digest: redisstore.DigestWindow{
				Grace:    time.Duration(cfg.Slack.Digest.Grace),
				MaxDelay: time.Duration(cfg.Slack.Digest.MaxDelay),
				MaxSize:  cfg.Slack.Digest.MaxSize,
			},
		},
		Metrics: worker.NewMetrics(p.registry),
		Log:     p.log,
	})
	if err != nil {
		return err
	}
	servers, err := p.worker.Start(p.redis)
	if err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	// Shutdown waits for in-flight deliveries up to ShutdownTimeout and
	// hands the rest back to the queue.
	p.onClose(servers.Shutdown)
	digestsCtx, stopDigests := context.WithCancel(context.Background())
	digestsDone := make(chan struct{})
	go func() { p.worker.RunDigests(digestsCtx); close(digestsDone) }()
	p.onClose(func() { stopDigests(); <-digestsDone })
	return nil
}

// handler is the HTTP API of what was started.
func (p *relayProcess) handler() http.Handler { return webhook.NewServer(p.http) }

// reload swaps the worker's routes and templates for cfg's, whole; a
// config that fails leaves the running ones. Only a worker has them.
func (p *relayProcess) reload(cfg config.Config) error {
	routing, err := newRouting(cfg, newPosters(cfg, p.stdout))
	if err != nil {
		return err
	}
	warnUntranslated(routing, p.log)
	p.worker.SetRouting(routing)
	return nil
}

func (p *relayProcess) onClose(stop func()) { p.stops = append(p.stops, stop) }

// close stops what was started, last first: the worker finishes its
// deliveries before the mailer and Redis go.
func (p *relayProcess) close() {
	for i := len(p.stops) - 1; i >= 0; i-- {
		p.stops[i]()
	}
	p.stops = nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// credentials are the configured ones, or on embedded defaults a password
// made up for this run and printed, so a newcomer can try the relay at once.
func credentials(cfg config.Config, embedded bool, stdout io.Writer) (webhook.Credentials, error) {
	c := webhook.Credentials{Username: cfg.Webhook.Username, Password: cfg.Webhook.Password}
	if c.Password != "" || len(cfg.Webhook.Secrets) > 0 {
		return c, nil
	}
	if !embedded {
		return c, errors.New("RELAY_WEBHOOK_PASSWORD is not set: Synap authenticates with Basic auth; set RELAY_WEBHOOK_USERNAME and RELAY_WEBHOOK_PASSWORD to what its webhook subscription sends (or RELAY_WEBHOOK_SECRETS for a signing sender)")
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	c.Password = base64.RawURLEncoding.EncodeToString(b)
	fmt.Fprintf(stdout, "No RELAY_WEBHOOK_PASSWORD set: this run accepts webhooks with\n  username: %s\n  password: %s\n", c.Username, c.Password)
	return c, nil
}

// newMailer is the SMTP pool, or the outbox folder when no server is
// configured, and the limits the worker keeps to when sending through it.
func newMailer(cfg config.Config) (email.Mailer, worker.SMTPLimits, error) {
	limits := worker.SMTPLimits{Server: "outbox", Rate: cfg.SMTP.Rate.N, Per: cfg.SMTP.Rate.Per, DailyLimit: cfg.SMTP.DailyLimit}
	if cfg.SMTP.URL == "" {
		return email.Outbox{Dir: cfg.SMTP.OutboxDir}, limits, nil
	}
	server, err := config.ParseSMTPURL(cfg.SMTP.URL)
	if err != nil {
		return nil, limits, err
	}
	limits.Server, limits.Mailbox = net.JoinHostPort(server.Host, strconv.Itoa(server.Port)), server.Username
	var tokens *email.OAuthTokens
	if server.Auth == config.AuthXOAUTH2 {
		tokens = email.NewOAuthTokens(cfg.SMTP.OAuth)
	}
	return email.NewPool(server, cfg.SMTP.PoolSize, tokens), limits, nil
}

// newDKIM is the configured DKIM key, or the zero DKIM that signs nothing.
func newDKIM(cfg config.Config) (email.DKIM, error) {
	if cfg.Email.DKIM.KeyFile == "" {
		return email.DKIM{}, nil
	}
	return email.LoadDKIM(cfg.Email.DKIM.KeyFile, cfg.Email.DKIM.Selector)
}

// posters make the clients that post to staff destinations.
type posters struct {
	slack  slack.Posters
	client *http.Client
}

func newPosters(cfg config.Config, console io.Writer) *posters {
	client := &http.Client{Timeout: 30 * time.Second}
	return &posters{slack: slack.NewPosters(cfg.Slack.Token, cfg.Slack.APIURL, client, console), client: client}
}

func (p *posters) teams(webhookURL string) relay.Poster {
	return teams.Webhook{URL: webhookURL, Client: p.client}
}

// newRouting resolves every route of cfg, what a route leaves out taken
// from the top level: its templates parsed and checked against sample
// registrations, its zone loaded, its Slack and Teams destinations named
// and, with posters, made (relay check and render need none).
func newRouting(cfg config.Config, posters *posters) (*relay.Routing, error) {
	sets := map[string]*templates.Set{}
	made := map[string]relay.Poster{}
	var errs []error
	resolve := func(c config.Route) *relay.Route {
		name := cmp.Or(c.Name, relay.DefaultRoute)
		lang, err := templates.ParseLanguage(cmp.Or(c.Language, cfg.Language))
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", name, err))
			return nil
		}
		loc, err := time.LoadLocation(cmp.Or(c.TimeZone, cfg.TimeZone))
		if err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", name, err))
			return nil
		}
		// Routes that share folders and a language share one parsed set.
		opts := templates.Options{Dirs: []string{c.Templates, cfg.TemplatesDir}, Language: lang, DigestList: cfg.Slack.Digest.List}
		key := strings.Join(opts.Dirs, "\x00") + "\x00" + lang.Tag
		set, ok := sets[key]
		if !ok {
			if set, err = templates.Load(opts); err == nil {
				err = set.Check()
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("route %s (language %s): %w", name, lang.Tag, err))
				return nil
			}
			sets[key] = set
		}
		webhookURL, channel := cfg.Slack.WebhookURL, cfg.Slack.Channel
		if c.Slack.WebhookURL != "" || c.Slack.Channel != "" {
			webhookURL, channel = c.Slack.WebhookURL, c.Slack.Channel
		}
		slackDest := relay.Destination{
			Channel: relay.Slack,
			Name:    slack.DestinationName(webhookURL, channel),
			Mode:    relay.StaffMode(cmp.Or(c.Slack.Mode, cfg.Slack.Mode)),
		}
		teamsURL := cmp.Or(c.Teams.WebhookURL, cfg.Teams.WebhookURL)
		teamsDest := relay.Destination{Channel: relay.Teams, Mode: relay.ModeOff}
		if teamsURL != "" {
			teamsDest.Name, teamsDest.Mode = teams.DestinationName(teamsURL), relay.StaffMode(cmp.Or(c.Teams.Mode, cfg.Teams.Mode))
		}
		if posters != nil {
			if _, ok := made[slackDest.Name]; !ok {
				made[slackDest.Name] = posters.slack(webhookURL, channel)
			}
			slackDest.Poster = made[slackDest.Name]
			if teamsURL != "" {
				teamsDest.Poster = posters.teams(teamsURL)
			}
		}
		return &relay.Route{
			Name:          name,
			Match:         c.Match.Conditions(),
			Email:         c.EmailOn(),
			Sender:        relay.Sender{From: cmp.Or(c.From, cfg.Email.From), ReplyTo: cmp.Or(c.ReplyTo, cfg.Email.ReplyTo)},
			Language:      lang.Tag,
			Location:      loc,
			ZoneAttribute: cfg.TimeZoneAttribute,
			Templates:     set,
			Slack:         slackDest,
			Teams:         teamsDest,
		}
	}
	routing := &relay.Routing{Default: resolve(config.Route{})}
	for _, c := range cfg.Routes {
		if route := resolve(c); route != nil {
			routing.Routes = append(routing.Routes, route)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return routing, nil
}

// templateSet is the parsed set behind a route made by newRouting.
func templateSet(route *relay.Route) *templates.Set {
	return route.Templates.(*templates.Set)
}

// warnUntranslated logs the routes whose language has no default
// templates of its own: their wording stays English around dates that
// are not.
func warnUntranslated(routing *relay.Routing, log *slog.Logger) {
	for _, route := range routing.All() {
		if names := templateSet(route).Untranslated(); len(names) > 0 {
			log.Warn("route's language has no default templates; their wording stays English", "route", route.Name, "language", route.Language, "files", names)
		}
	}
}
