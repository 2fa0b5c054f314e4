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

	"github.com/exam-relay/relay/templates"
)

const usage = `relay receives Synap's "User Registered for Exam" webhooks and sends each
student a confirmation email and staff a Slack message.

Usage: relay <command> [-config FILE]

Commands:
  run     receiver and worker in one process (with nothing configured: an
          in-memory Redis, emails as .eml files in ./outbox, Slack to stdout)
  serve   the webhook receiver only
  work    the worker only (run as many as you like on one Redis)
  check   validate config and templates, reach Redis and SMTP; print the
          config with secrets redacted
  tasks   list failed deliveries; tasks retry ID|-all; tasks delete ID;
          tasks -scheduled lists reminders waiting for their time
  templates export DIR
          write the default templates to DIR, to edit and use with
          RELAY_TEMPLATES_DIR
  help    this text

Settings come from the config file (-config or RELAY_CONFIG), then from
RELAY_* environment variables; the README lists them all.
`

// errUsage means the command line was wrong; usage has been printed.
var errUsage = errors.New("see usage above")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd := args[1]
	flags := flag.NewFlagSet("relay "+cmd, flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", getenv("RELAY_CONFIG"), "YAML config file (or RELAY_CONFIG)")
	asJSON := flags.Bool("json", false, "relay tasks: print JSON for scripts")
	scheduled := flags.Bool("scheduled", false, "relay tasks: list scheduled reminders")

	var m mode
	switch cmd {
	case "run":
		m = mode{serve: true, work: true, embedded: true}
	case "serve":
		m = mode{serve: true}
	case "work":
		m = mode{work: true}
	case "check", "tasks":
	case "templates":
		return templatesCommand(args[2:], stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
	if err := flags.Parse(args[2:]); err != nil {
		return err
	}
	if cmd == "tasks" {
		return tasksCommand(ctx, *configPath, *asJSON, *scheduled, flags.Args(), getenv, stdout)
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("relay %s: unexpected arguments %q", cmd, flags.Args())
	}
	if cmd == "check" {
		return check(ctx, *configPath, getenv, stdout)
	}
	return runRelay(ctx, m, *configPath, getenv, stdout, stderr)
}

func templatesCommand(args []string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "export" {
		return errors.New("usage: relay templates export DIR")
	}
	written, err := templates.Export(args[1])
	for _, path := range written {
		fmt.Fprintln(stdout, "wrote", path)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Edit them, then set RELAY_TEMPLATES_DIR=%s; files you delete fall back to the defaults.\n", args[1])
	return nil
}
