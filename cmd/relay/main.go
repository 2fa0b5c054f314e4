// Command relay receives Synap's exam registration webhooks and turns each
// into a confirmation email for the student and a Slack message for staff.
//
// main.go and run.go read the command line; each subcommand has a file of
// its own; wire.go turns a config into the running parts.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	// Time zones work on hosts and images without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/redis/go-redis/v9"
)

func main() {
	redis.SetLogger(redisLogger{slog.New(slog.NewJSONHandler(os.Stderr, nil))})
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}
