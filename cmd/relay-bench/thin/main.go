// Command thin is the yardstick relay-bench holds the relay against: the
// least a correct implementation of the relay's design must do, and
// nothing more (issue 15).
//
//	thin serve -addr 127.0.0.1:8081 -redis 127.0.0.1:6379 -user synap -password secret
//	thin work  -addr 127.0.0.1:8082 -redis 127.0.0.1:6379 -smtp 127.0.0.1:2525
//
// serve takes the webhook: Basic auth compared in constant time, a 1 MiB
// body limit, the JSON fields it needs with a check of the email address
// and the open date, and one asynq enqueue with a deterministic task id
// and 7 days' retention; it logs nothing per request. work is an asynq
// server (concurrency 10) that sends each registration one email (text,
// HTML and an .ics) over 4 reused go-mail connections.
//
// It imports none of the relay's packages, so that nothing the relay does
// slips into the measure of what it should cost. Both serve GET /healthz so
// the harness knows when they are up.
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "thin:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) < 2 {
		return errors.New("usage: thin serve|work -h")
	}
	fs := flag.NewFlagSet("thin "+args[1], flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "address to serve HTTP on")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "Redis host:port")
	switch args[1] {
	case "serve":
		user := fs.String("user", "synap", "Basic auth username")
		password := fs.String("password", "", "Basic auth password (required)")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		if *password == "" {
			return errors.New("-password is required: an open webhook would let anyone email students")
		}
		return serve(ctx, *addr, *redisAddr, *user, *password)
	case "work":
		smtpAddr := fs.String("smtp", "127.0.0.1:2525", "SMTP server host:port (plain SMTP, no login)")
		from := fs.String("from", "Exams Office <exams@example.edu>", "From address")
		if err := fs.Parse(args[2:]); err != nil {
			return err
		}
		return work(ctx, *addr, *redisAddr, *smtpAddr, *from)
	}
	return fmt.Errorf("unknown command %q: want serve or work", args[1])
}
