package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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
  render  -payload FILE [-route NAME] [-html OUT]
          print the email and Slack message a webhook body would produce
          (and write the email's HTML to OUT)
  route   -payload FILE
          say which route a webhook body takes, and why
  templates export [-language fr] DIR
          write the default templates to DIR, to edit and use with
          RELAY_TEMPLATES_DIR or a route's templates folder
  help    this text

SIGHUP makes a running worker re-read the config and templates; if they
fail to load, it keeps the ones it has and logs why.

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
	payload := flags.String("payload", "", "relay render, relay route: a webhook body (- for standard input)")
	routeName := flags.String("route", "", "relay render: use this route instead of the one the body matches")
	htmlOut := flags.String("html", "", "relay render: write the email's HTML to this file")

	var m mode
	switch cmd {
	case "run":
		m = mode{serve: true, work: true, embedded: true}
	case "serve":
		m = mode{serve: true}
	case "work":
		m = mode{work: true}
	case "check", "tasks", "render", "route":
	case "templates":
		return templatesCommand(args[2:], stderr, stdout)
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
	switch cmd {
	case "check":
		return check(ctx, *configPath, getenv, stdout)
	case "render":
		return renderCommand(*configPath, *payload, *routeName, *htmlOut, getenv, os.Stdin, stdout)
	case "route":
		return routeCommand(*configPath, *payload, getenv, os.Stdin, stdout)
	}
	return runRelay(ctx, m, *configPath, getenv, stdout, stderr)
}

func templatesCommand(args []string, stderr, stdout io.Writer) error {
	const usage = "usage: relay templates export [-language fr] DIR"
	if len(args) == 0 || args[0] != "export" {
		return errors.New(usage)
	}
	flags := flag.NewFlagSet("relay templates export", flag.ContinueOnError)
	flags.SetOutput(stderr)
	tag := flags.String("language", "en", "whose defaults: "+strings.Join(templates.Languages(), ", ")+" (only en and fr have their own wording)")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		return errors.New(usage)
	}
	lang, err := templates.ParseLanguage(*tag)
	if err != nil {
		return err
	}
	dir := flags.Arg(0)
	written, err := templates.Export(dir, lang)
	for _, path := range written {
		fmt.Fprintln(stdout, "wrote", path)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Edit them, then set RELAY_TEMPLATES_DIR=%s (or a route's templates: %s); files you delete fall back to the defaults.\n", dir, dir)
	return nil
}
