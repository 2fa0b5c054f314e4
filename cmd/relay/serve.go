package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/webhook"
)

// runCommand is `relay run`: the receiver and the worker in one process,
// on embedded defaults when nothing is configured.
func runCommand(ctx context.Context, args []string, e env) error {
	return serveRelay(ctx, "run", args, e, func(p *relayProcess) error {
		if err := p.startReceiver(ctx); err != nil {
			return err
		}
		return p.startWorker()
	})
}

// serveCommand is `relay serve`: the receiver only.
func serveCommand(ctx context.Context, args []string, e env) error {
	return serveRelay(ctx, "serve", args, e, func(p *relayProcess) error { return p.startReceiver(ctx) })
}

// workCommand is `relay work`: the worker only, with the operational
// endpoints.
func workCommand(ctx context.Context, args []string, e env) error {
	return serveRelay(ctx, "work", args, e, (*relayProcess).startWorker)
}

// serveRelay starts the parts start adds and serves HTTP until ctx ends,
// then shuts down in order: stop taking webhooks, let deliveries finish,
// close.
func serveRelay(ctx context.Context, name string, args []string, e env, start func(*relayProcess) error) error {
	flags, configPath := newFlags(name, e)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	load := func() (config.Config, error) { return config.Load(*configPath, e.getenv) }
	cfg, err := load()
	if err != nil {
		return err
	}
	p, err := openRelay(ctx, cfg, e, name == "run")
	if err != nil {
		return err
	}
	defer p.close()
	if err := start(p); err != nil {
		return err
	}
	if cfg.DebugAddr != "" {
		go serveDebug(ctx, cfg.DebugAddr, p.log)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go reloadOnHangup(ctx, hup, p, load)
	return listenAndServe(ctx, p)
}

// listenAndServe serves p's HTTP API on RELAY_HTTP_ADDR until ctx ends.
func listenAndServe(ctx context.Context, p *relayProcess) error {
	cfg := p.cfg
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (RELAY_HTTP_ADDR): %w", cfg.HTTPAddr, err)
	}
	srv := &http.Server{
		Handler:           p.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLS.Cert != "" {
			serveErr <- srv.ServeTLS(ln, cfg.TLS.Cert, cfg.TLS.Key)
			return
		}
		serveErr <- srv.Serve(ln)
	}()
	receiving := p.http.Receiver != nil
	p.log.Info("relay started", "addr", ln.Addr().String(), "receiver", receiving, "worker", p.worker != nil)
	scheme := "http"
	if cfg.TLS.Cert != "" {
		scheme = "https"
	}
	if receiving {
		fmt.Fprintf(p.stdout, "Listening on %s://%s%s\n", scheme, displayAddr(ln.Addr()), webhook.Path)
	}
	if p.http.Admin != nil {
		fmt.Fprintf(p.stdout, "Admin page on %s://%s%s\n", scheme, displayAddr(ln.Addr()), webhook.AdminPath)
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}
	p.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		p.log.Warn("http shutdown", "err", err)
	}
	return nil
}

// reloadOnHangup re-reads the config and templates on each SIGHUP and
// swaps them in whole; a config that fails leaves the running one.
func reloadOnHangup(ctx context.Context, hup <-chan os.Signal, p *relayProcess, load func() (config.Config, error)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if p.worker == nil {
			p.log.Info("SIGHUP: the receiver has nothing to reload; routes and templates live in the worker")
			continue
		}
		cfg, err := load()
		if err == nil {
			err = p.reload(cfg)
		}
		if err != nil {
			p.log.Error("reload failed; still running on the previous config and templates", "err", err)
			continue
		}
		p.log.Info("reloaded routes and templates; other settings change at restart", "routes", len(cfg.Routes))
	}
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
