package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/tasks"
)

// mode says which parts a command runs.
type mode struct {
	serve, work bool
	// embedded allows the in-memory defaults when Redis is not configured.
	embedded bool
}

// runRelay runs the receiver, the worker or both until ctx ends, then shuts
// down in order: stop taking webhooks, let deliveries finish, close.
func runRelay(ctx context.Context, m mode, configPath string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(configPath, getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)

	rdb, closeRedis, err := connectRedis(ctx, cfg, m.embedded, log, stdout)
	if err != nil {
		return err
	}
	defer closeRedis()

	opts := tasks.Options{Retention: time.Duration(cfg.Retention), MaxRetry: cfg.Worker.MaxRetry}
	queue := asynq.NewClientFromRedisClient(rdb)
	defer queue.Close()
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	defer inspector.Close()
	mets := relay.NewMetrics()
	mets.Registry.MustRegister(metrics.NewQueueMetricsCollector(inspector))

	deps := relay.ServerDeps{
		Ready:   func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		Metrics: mets,
		Log:     log,
	}
	if m.serve {
		creds, err := credentials(cfg, m.embedded && cfg.RedisURL == "", stdout)
		if err != nil {
			return err
		}
		spool, err := relay.OpenSpool(cfg.Spool.Dir, cfg.Spool.Max, log)
		if err != nil {
			return err
		}
		defer spool.Close()
		mets.ObserveSpool(spool)
		receiver := relay.NewReceiver(queue, opts, spool, log, mets)
		if keys, _ := cfg.Webhook.SigningKeys(); len(keys) > 0 {
			receiver.Signatures = relay.NewStandardWebhooks(keys)
		}
		go spool.RunDrainer(ctx, time.Second, receiver.EnqueueSpooled)
		deps.Credentials, deps.Receiver, deps.Spool = creds, receiver, spool
	}

	var worker *asynq.Server
	var w *relay.Worker
	if m.work {
		var closeWorker func()
		w, closeWorker, err = newWorker(cfg, rdb, queue, inspector, opts, log, mets, stdout)
		if err != nil {
			return err
		}
		defer closeWorker()
		settings := relay.WorkerSettings{
			Concurrency:     cfg.Worker.Concurrency,
			ShutdownTimeout: time.Duration(cfg.Worker.ShutdownTimeout),
			RetrySchedule:   cfg.Worker.RetrySchedule.Std(),
			// Always: a reload may turn digests on for a route.
			Aggregator: asynq.GroupAggregatorFunc(w.Aggregate),
			Digest: relay.DigestWindow{
				Grace:    time.Duration(cfg.Slack.Digest.Grace),
				MaxDelay: time.Duration(cfg.Slack.Digest.MaxDelay),
				MaxSize:  cfg.Slack.Digest.MaxSize,
			},
		}
		worker = asynq.NewServerFromRedisClient(rdb, relay.ServerConfig(settings, log))
		if err := worker.Start(w.Mux()); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
		// Shutdown waits for in-flight deliveries up to ShutdownTimeout
		// and hands the rest back to the queue.
		defer worker.Shutdown()
	}

	if cfg.DebugAddr != "" {
		go serveDebug(ctx, cfg.DebugAddr, log)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHangup(ctx, hup, w, func() (config.Config, error) { return config.Load(configPath, getenv) }, log, stdout)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (RELAY_HTTP_ADDR): %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           relay.NewServer(deps),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLS.Cert != "" {
			serveErr <- srv.ServeTLS(ln, cfg.TLS.Cert, cfg.TLS.Key)
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	log.Info("relay started", "addr", ln.Addr().String(), "receiver", m.serve, "worker", m.work)
	if m.serve {
		scheme := "http"
		if cfg.TLS.Cert != "" {
			scheme = "https"
		}
		fmt.Fprintf(stdout, "Listening on %s://%s%s\n", scheme, displayAddr(ln.Addr()), relay.WebhookPath)
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	return nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// credentials are the configured ones, or on embedded defaults a password
// made up for this run and printed, so a newcomer can try the relay at once.
func credentials(cfg config.Config, embedded bool, stdout io.Writer) (relay.Credentials, error) {
	c := relay.Credentials{Username: cfg.Webhook.Username, Password: cfg.Webhook.Password}
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

func newWorker(cfg config.Config, rdb redis.UniversalClient, queue relay.Enqueuer, inspector *asynq.Inspector,
	opts tasks.Options, log *slog.Logger, mets *relay.Metrics, stdout io.Writer) (*relay.Worker, func(), error) {
	routing, err := newRouting(cfg, log, stdout)
	if err != nil {
		return nil, nil, err
	}
	mailer, err := newMailer(cfg)
	if err != nil {
		return nil, nil, err
	}
	if cfg.SMTP.URL == "" {
		fmt.Fprintf(stdout, "No RELAY_SMTP_URL set: emails are written to %s/ as .eml files\n", strings.TrimSuffix(cfg.SMTP.OutboxDir, "/"))
	}
	w := relay.NewWorker(routing)
	w.Queue, w.Options, w.Mailer = queue, opts, mailer
	w.SlackLimit = relay.NewSlackLimiter(rdb)
	w.Sent = relay.SentLog{Redis: rdb, TTL: time.Duration(cfg.Retention)}
	w.Schedules = &relay.ScheduleLog{Redis: rdb, TTL: time.Duration(cfg.Retention)}
	w.Reminders = &relay.Reminders{
		BeforeOpen: cfg.Reminders.BeforeOpen.Std(), BeforeClose: cfg.Reminders.BeforeClose.Std(), Inspector: inspector,
	}
	w.Log, w.Metrics = log, mets
	if cfg.Slack.Token != "" {
		w.Board = &relay.DigestBoard{Redis: rdb, Location: cfg.Location()}
	}
	return w, func() { _ = mailer.Close() }, nil
}

// newRouting resolves the routes of cfg, templates parsed and checked, and
// warns of wording that stays English in a route of another language.
func newRouting(cfg config.Config, log *slog.Logger, stdout io.Writer) (*relay.Routing, error) {
	routing, err := relay.NewRouting(cfg, relay.NewSlackFor(cfg.Slack.Token, cfg.Slack.APIURL, &http.Client{Timeout: 30 * time.Second}, stdout))
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	for _, route := range routing.All() {
		if names := route.Templates.Untranslated(); len(names) > 0 {
			log.Warn("route's language has no default templates; their wording stays English", "route", route.Name, "language", route.Templates.Language.Tag, "files", names)
		}
	}
	return routing, nil
}

// reloadOnHangup re-reads the config and templates on each SIGHUP and
// swaps them in whole; a config that fails leaves the running one.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, w *relay.Worker, load func() (config.Config, error), log *slog.Logger, stdout io.Writer) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if w == nil {
			log.Info("SIGHUP: the receiver has nothing to reload; routes and templates live in the worker")
			continue
		}
		cfg, err := load()
		var routing *relay.Routing
		if err == nil {
			routing, err = newRouting(cfg, log, stdout)
		}
		if err != nil {
			log.Error("reload failed; still running on the previous config and templates", "err", err)
			continue
		}
		w.SetRouting(routing)
		log.Info("reloaded routes and templates; other settings change at restart", "routes", len(routing.Routes))
	}
}

func newMailer(cfg config.Config) (relay.Mailer, error) {
	if cfg.SMTP.URL == "" {
		return relay.Outbox{Dir: cfg.SMTP.OutboxDir}, nil
	}
	server, err := config.ParseSMTPURL(cfg.SMTP.URL)
	if err != nil {
		return nil, err
	}
	return relay.NewSMTPPool(server, cfg.SMTP.PoolSize), nil
}

// serveDebug serves Go's profiler on its own address, never on the
// webhook's: a profile shows memory, and so personal data.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	log.Info("profiler listening", "addr", addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("profiler", "err", err)
	}
}

func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
