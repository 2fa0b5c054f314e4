package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/tasks"
)

// routeFor loads the config and the payload and finds the route it would
// take, or the one named.
func routeFor(configPath, payloadPath, name string, getenv func(string) string, stdin io.Reader) (*relay.Routing, *relay.Route, tasks.Registration, error) {
	var reg tasks.Registration
	if payloadPath == "" {
		return nil, nil, reg, errors.New("-payload FILE is required: a webhook body such as examples/registration.json (- reads standard input)")
	}
	cfg, err := config.Load(configPath, getenv)
	if err != nil {
		return nil, nil, reg, err
	}
	routing, err := relay.NewRouting(cfg, nil)
	if err != nil {
		return nil, nil, reg, err
	}
	var body []byte
	if payloadPath == "-" {
		body, err = io.ReadAll(stdin)
	} else {
		body, err = os.ReadFile(payloadPath)
	}
	if err != nil {
		return nil, nil, reg, fmt.Errorf("payload: %w", err)
	}
	if reg, err = tasks.DecodeRegistration(body); err != nil {
		// The same answer the receiver would give Synap.
		return nil, nil, reg, fmt.Errorf("%s: %w", payloadPath, err)
	}
	route := routing.Match(reg)
	if name != "" {
		var ok bool
		if route, ok = routing.Named(name); !ok {
			return nil, nil, reg, fmt.Errorf("no route named %q in the config (have %s)", name, routeNames(routing))
		}
	}
	return routing, route, reg, nil
}

func routeNames(routing *relay.Routing) string {
	var names []string
	for _, r := range routing.All() {
		names = append(names, r.Name)
	}
	return strings.Join(names, ", ")
}

// renderCommand prints what a registration would produce: the email's
// headers, subject and text, the Slack message; and writes the HTML.
func renderCommand(configPath, payloadPath, name, htmlPath string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	routing, route, reg, err := routeFor(configPath, payloadPath, name, getenv, stdin)
	if err != nil {
		return err
	}
	data := routing.Data(route, reg)
	fmt.Fprintf(stdout, "Route:     %s (language %s, zone %s)\n", route.Name, route.Templates.Language.Tag, data.Zone)
	if problem := relay.ScheduleProblem(reg); problem != "" {
		fmt.Fprintf(stdout, "Warning:   %s\n", problem)
	}
	if !route.Email {
		fmt.Fprintln(stdout, "Email:     off for this route; the student gets none")
	} else {
		email, err := route.Templates.Confirmation(data)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "From:      %s\n", route.Sender.From)
		if route.Sender.ReplyTo != "" {
			fmt.Fprintf(stdout, "Reply-To:  %s\n", route.Sender.ReplyTo)
		}
		fmt.Fprintf(stdout, "To:        %s <%s>\n", reg.User.Name, reg.User.Email)
		fmt.Fprintf(stdout, "Subject:   %s\n\n%s\n", email.Subject, email.Text)
		if htmlPath != "" {
			if err := os.WriteFile(htmlPath, []byte(email.HTML), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "(HTML written to %s)\n", htmlPath)
		}
	}

	fmt.Fprintf(stdout, "\n--- Slack, %s → %s ---\n", route.SlackMode, route.SlackDestination)
	var text string
	switch route.SlackMode {
	case config.SlackEach:
		text, err = route.Templates.StaffAlert(data)
	case config.SlackDigest:
		batch := tasks.DigestBatch{Items: []tasks.DigestItem{{Registration: reg, ReceivedAt: time.Now()}}}
		text, err = route.Templates.StaffDigest(routing.Digest(route, batch))
		text += "\n(a digest of this registration alone; a burst lists every student)"
	default:
		text = "(Slack is off for this route)"
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, text)
	return nil
}

// routeCommand says which route a registration takes, and why each route
// before it did not match.
func routeCommand(configPath, payloadPath string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	routing, _, reg, err := routeFor(configPath, payloadPath, "", getenv, stdin)
	if err != nil {
		return err
	}
	route, lines := routing.Explain(reg)
	for _, line := range lines {
		fmt.Fprintln(stdout, line)
	}
	email := "email on"
	if !route.Email {
		email = "email off"
	}
	fmt.Fprintf(stdout, "\n→ %s: %s, language %s, zone %s, from %s, slack %s → %s\n", route.Name, email,
		route.Templates.Language.Tag, routing.Location(route, reg), route.Sender.From, route.SlackMode, route.SlackDestination)
	return nil
}
