package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/config"
)

const usage = `relay receives Synap's "User Registered for Exam" webhooks and sends each
student a confirmation email and staff a Slack message.

Usage: relay <command> [-config FILE] [flags]

Commands:
  run     receiver and worker in one process (with nothing configured: an
          in-memory Redis, emails as .eml files in ./outbox, Slack to stdout)
  serve   the webhook receiver only
  work    the worker only (run as many as you like on one Redis)
  check   validate config and templates, reach Redis and SMTP; print the
          config with secrets redacted
  tasks   list failed deliveries; tasks retry ID|-all; tasks delete ID;
          tasks -scheduled lists reminders waiting for their time
  history (-email ADDR | -user ID | -exam ID) [-json]
          what the relay sent (or could not) for a student or an exam,
          newest first
  forget  -email ADDR [-json]
          erase everything the relay holds about a student (queue,
          history, marks, spool, outbox) and say what was removed
  render  -payload FILE [-route NAME] [-html OUT]
          print the email and Slack message a webhook body would produce
          (and write the email's HTML to OUT)
  route   -payload FILE
          say which route a webhook body takes, and why
  templates export [-language fr] DIR
          write the default templates to DIR, to edit and use with
          RELAY_TEMPLATES_DIR or a route's templates folder
  help    this text

relay <command> -h lists the command's flags.

SIGHUP makes a running worker re-read the config and templates; if they
fail to load, it keeps the ones it has and logs why.

Settings come from the config file (-config or RELAY_CONFIG), then from
RELAY_* environment variables; the README lists them all.
`

// env is what a command may use of its process: main passes the real one,
// tests their own.
type env struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

// commands are the subcommands, each in a file of its own with its own
// flags.
var commands = map[string]func(ctx context.Context, args []string, e env) error{
	"run":       runCommand,
	"serve":     serveCommand,
	"work":      workCommand,
	"check":     checkCommand,
	"tasks":     tasksCommand,
	"history":   historyCommand,
	"forget":    forgetCommand,
	"render":    renderCommand,
	"route":     routeCommand,
	"templates": templatesCommand,
}

// errUsage means the command line was wrong; usage has been printed.
var errUsage = errors.New("see usage above")

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	name := args[1]
	switch name {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	command, ok := commands[name]
	if !ok {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", name)
	}
	return command(ctx, args[2:], env{getenv: getenv, stdin: stdin, stdout: stdout, stderr: stderr})
}

// newFlags is the flag set of `relay name`, with the -config flag every
// command that reads the config has.
func newFlags(name string, e env) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("relay "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs, fs.String("config", e.getenv("RELAY_CONFIG"), "YAML config file (or RELAY_CONFIG)")
}

// parseFlags parses args and refuses arguments the command does not take.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", fs.Name(), fs.Args())
	}
	return nil
}

// loadWithRedis loads the config and opens the Redis it names, for the
// commands that read or change what the relay keeps there; what says what
// the command does there, for the error when no Redis is configured.
func loadWithRedis(ctx context.Context, configPath string, e env, what string) (config.Config, redis.UniversalClient, error) {
	cfg, err := config.Load(configPath, e.getenv)
	if err != nil {
		return cfg, nil, err
	}
	if cfg.RedisURL == "" {
		return cfg, nil, fmt.Errorf("RELAY_REDIS_URL is not set: %s in Redis", what)
	}
	rdb, err := openRedis(ctx, cfg.RedisURL)
	return cfg, rdb, err
}
