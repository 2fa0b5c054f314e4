package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
)

// renderCommand is `relay render`: it prints what a registration would
// produce, the email's headers, subject and text and the Slack message,
// and writes the email's HTML.
func renderCommand(_ context.Context, args []string, e env) error {
	flags, configPath := newFlags("render", e)
	payload := flags.String("payload", "", "a webhook body (- for standard input)")
	name := flags.String("route", "", "use this route instead of the one the body matches")
	htmlPath := flags.String("html", "", "write the email's HTML to this file")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	routing, reg, err := loadPayload(*configPath, *payload, e)
	if err != nil {
		return err
	}
	route := routing.Match(reg)
	if *name != "" {
		var ok bool
		if route, ok = routing.Named(*name); !ok {
			return fmt.Errorf("no route named %q in the config (have %s)", *name, routeNames(routing))
		}
	}

	stdout := e.stdout
	fmt.Fprintf(stdout, "Route:     %s (language %s, zone %s)\n", route.Name, route.Language, route.Zone(reg))
	if problem := reg.Exam.Schedule.Problem(); problem != "" {
		fmt.Fprintf(stdout, "Warning:   %s\n", problem)
	}
	if !route.Email {
		fmt.Fprintln(stdout, "Email:     off for this route; the student gets none")
	} else {
		email, err := route.Confirmation(reg)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "From:      %s\n", route.Sender.From)
		if route.Sender.ReplyTo != "" {
			fmt.Fprintf(stdout, "Reply-To:  %s\n", route.Sender.ReplyTo)
		}
		fmt.Fprintf(stdout, "To:        %s <%s>\n", reg.User.Name, reg.User.Email)
		fmt.Fprintf(stdout, "Subject:   %s\n\n%s\n", email.Subject, email.Text)
		if *htmlPath != "" {
			if err := os.WriteFile(*htmlPath, []byte(email.HTML), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "(HTML written to %s)\n", *htmlPath)
		}
	}

	for _, dest := range []relay.Destination{route.Slack, route.Teams} {
		if dest.Channel == relay.Teams && dest.Name == "" {
			continue // no Teams configured: nothing to show
		}
		if err := renderStaff(stdout, route, dest, reg); err != nil {
			return err
		}
	}
	return nil
}

// renderStaff prints what staff would get at dest: Slack's mrkdwn, or
// Teams' Adaptive Card as indented JSON.
func renderStaff(stdout io.Writer, route *relay.Route, dest relay.Destination, reg relay.Registration) error {
	name := map[relay.Channel]string{relay.Slack: "Slack", relay.Teams: "Teams"}[dest.Channel]
	fmt.Fprintf(stdout, "\n--- %s, %s → %s ---\n", name, dest.Mode, dest.Name)
	var text string
	var err error
	switch dest.Mode {
	case relay.ModeEach:
		text, err = route.StaffAlert(dest.Channel, reg)
	case relay.ModeDigest:
		text, err = route.StaffDigest(dest.Channel, relay.Digest{Items: []relay.DigestItem{{Registration: reg, ReceivedAt: time.Now()}}})
	default:
		fmt.Fprintf(stdout, "(%s is off for this route)\n", name)
		return nil
	}
	if err != nil {
		return err
	}
	if dest.Channel == relay.Teams {
		var indented bytes.Buffer
		_ = json.Indent(&indented, []byte(text), "", "  ")
		text = indented.String()
	}
	fmt.Fprintln(stdout, text)
	if dest.Mode == relay.ModeDigest {
		fmt.Fprintln(stdout, "(a digest of this registration alone; a burst lists every student)")
	}
	return nil
}

// loadPayload loads the config's routing and the webhook body at path,
// decoded as the receiver would.
func loadPayload(configPath, path string, e env) (*relay.Routing, relay.Registration, error) {
	var reg relay.Registration
	if path == "" {
		return nil, reg, errors.New("-payload FILE is required: a webhook body such as examples/registration.json (- reads standard input)")
	}
	cfg, err := config.Load(configPath, e.getenv)
	if err != nil {
		return nil, reg, err
	}
	routing, err := newRouting(cfg, nil)
	if err != nil {
		return nil, reg, err
	}
	var body []byte
	if path == "-" {
		body, err = io.ReadAll(e.stdin)
	} else {
		body, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, reg, fmt.Errorf("payload: %w", err)
	}
	if reg, err = relay.DecodeRegistration(body); err != nil {
		// The same answer the receiver would give Synap.
		return nil, reg, fmt.Errorf("%s: %w", path, err)
	}
	return routing, reg, nil
}

func routeNames(routing *relay.Routing) string {
	var names []string
	for _, r := range routing.All() {
		names = append(names, r.Name)
	}
	return strings.Join(names, ", ")
}
