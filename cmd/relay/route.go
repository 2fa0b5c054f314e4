package main

import (
	"context"
	"fmt"
)

// routeCommand is `relay route`: it says which route a registration takes,
// and why each route before it did not match.
func routeCommand(_ context.Context, args []string, e env) error {
	flags, configPath := newFlags("route", e)
	payload := flags.String("payload", "", "a webhook body (- for standard input)")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	routing, reg, err := loadPayload(*configPath, *payload, e)
	if err != nil {
		return err
	}
	route, lines := routing.Explain(reg)
	for _, line := range lines {
		fmt.Fprintln(e.stdout, line)
	}
	fmt.Fprintf(e.stdout, "\n→ %s: email %s, language %s, zone %s, from %s, slack %s, teams %s\n", route.Name, onOff(route.Email),
		route.Language, route.Zone(reg), route.Sender.From, staffSummary(route.Slack), staffSummary(route.Teams))
	return nil
}
