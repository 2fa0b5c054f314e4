package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/templates"
)

// check validates what can be validated without sending anything and says
// what it found; any problem makes it fail.
func check(ctx context.Context, configPath string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(configPath, getenv)
	if err != nil {
		return err
	}
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

	tmpl, err := templates.Load(cfg.TemplatesDir)
	if err == nil {
		err = tmpl.Check()
	}
	report("templates", err)

	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if cfg.RedisURL == "" {
		fmt.Fprintln(stdout, "note  redis: not set; relay run would use an in-memory Redis that keeps nothing")
	} else {
		report("redis", pingRedis(ctx, cfg.RedisURL))
	}
	if cfg.SMTP.URL == "" {
		fmt.Fprintf(stdout, "note  smtp: not set; emails would be written to %s/\n", cfg.SMTP.OutboxDir)
	} else {
		server, err := config.ParseSMTPURL(cfg.SMTP.URL)
		if err == nil {
			err = relay.NewSMTPPool(server, 1).Ping(ctx)
		}
		report("smtp", err)
	}
	if cfg.Slack.WebhookURL == "" && cfg.Slack.Token == "" {
		fmt.Fprintln(stdout, "note  slack: not set; staff messages would be printed")
	}
	return errors.Join(problems...)
}

func pingRedis(ctx context.Context, url string) error {
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		return err
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return errors.New("unsupported kind of Redis")
	}
	defer rdb.Close()
	return rdb.Ping(ctx).Err()
}
