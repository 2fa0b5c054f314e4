// Command relay receives Synap's exam registration webhooks and turns each
// into a confirmation email for the student and a Slack message for staff.
package main

import (
	"context"
	"fmt"
	"os"
	// Time zones work on hosts and images without /usr/share/zoneinfo.
	_ "time/tzdata"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}
