package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
)

const (
	// concurrency and poolSize are the relay's defaults.
	concurrency = 10
	poolSize    = 4
)

// work sends an email for each queued registration until ctx ends.
func work(ctx context.Context, addr, redisAddr, smtpAddr, from string) error {
	host, portText, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		return fmt.Errorf("-smtp: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("-smtp: %w", err)
	}
	pool := newPool(host, port, poolSize)
	defer pool.close()
	mux := asynq.NewServeMux()
	mux.HandleFunc(taskType, func(ctx context.Context, t *asynq.Task) error {
		var reg registration
		if err := json.Unmarshal(t.Payload(), &reg); err != nil {
			// It will never read better: archive it.
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		id, _ := asynq.GetTaskID(ctx)
		msg, err := confirmation(from, id, reg, time.Now())
		if err != nil {
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		return pool.send(ctx, msg)
	})
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: redisAddr}, asynq.Config{Concurrency: concurrency})
	if err := srv.Start(mux); err != nil {
		return err
	}
	// Stops taking tasks, then waits for those in flight.
	defer srv.Shutdown()
	health := &http.Server{Addr: addr, Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), ReadHeaderTimeout: 10 * time.Second}
	return serveUntil(ctx, health)
}
