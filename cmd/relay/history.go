package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/exam-relay/relay/relay/redisstore"
)

// historyCommand is `relay history`: what the relay did for one student,
// user or exam, newest first.
func historyCommand(ctx context.Context, args []string, e env) error {
	flags, configPath := newFlags("history", e)
	byEmail := flags.String("email", "", "the student's email address")
	byUser := flags.String("user", "", "the student's Synap user id")
	byExam := flags.String("exam", "", "the exam's id")
	asJSON := flags.Bool("json", false, "print JSON for scripts")
	limit := flags.Int("limit", 200, "at most this many entries")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	key, ok := redisstore.OneHistoryKey(*byEmail, *byUser, *byExam)
	if !ok {
		return errors.New("usage: relay history (-email ADDR | -user ID | -exam ID) [-json]: give one of them")
	}
	cfg, rdb, err := loadWithRedis(ctx, *configPath, e, "relay history reads the history")
	if err != nil {
		return err
	}
	defer rdb.Close()
	history := redisstore.New(rdb, time.Duration(cfg.Retention)).NewHistory(time.Duration(cfg.History.Retention))
	entries, err := history.Find(ctx, key, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]historyJSON, len(entries))
		for i, entry := range entries {
			out[i] = newHistoryJSON(entry)
		}
		return printJSON(e.stdout, out)
	}
	printHistory(e.stdout, entries, cfg.Location(), key)
	return nil
}

// historyJSON is an entry as scripts read it.
type historyJSON struct {
	Time         time.Time `json:"time"`
	Channel      string    `json:"channel"`
	Kind         string    `json:"kind"`
	Status       string    `json:"status"`
	Registration string    `json:"registration"`
	User         string    `json:"user"`
	Email        string    `json:"email"`
	Exam         string    `json:"exam"`
	ExamName     string    `json:"exam_name"`
	Route        string    `json:"route"`
	MessageID    string    `json:"message_id"`
	Detail       string    `json:"detail"`
}

func newHistoryJSON(e redisstore.HistoryEntry) historyJSON {
	return historyJSON{Time: e.Time.UTC(), Channel: e.Channel, Kind: e.Kind, Status: e.Status, Registration: e.Registration,
		User: e.User, Email: e.Email, Exam: e.Exam, ExamName: e.ExamName, Route: e.Route, MessageID: e.MessageID, Detail: e.Detail}
}

func printHistory(w io.Writer, entries []redisstore.HistoryEntry, zone *time.Location, key redisstore.HistoryKey) {
	if len(entries) == 0 {
		fmt.Fprintf(w, "Nothing in the history for %s %s (it keeps RELAY_HISTORY_RETENTION).\n", key.By, key.Value)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TIME (%s)\tWHAT\tSTATUS\tTO\tEXAM\tMESSAGE-ID\tDETAIL\n", zone)
	for _, e := range entries {
		to := e.Email
		if e.Channel != "email" {
			to = "staff (" + e.Channel + ")"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\t%s\n", e.Time.In(zone).Format(time.DateTime), e.Channel, e.Kind, e.Status,
			to, examLabel(e.Exam, e.ExamName), e.MessageID, shorten(oneLine(e.Detail), 80))
	}
	tw.Flush()
}

func examLabel(id, name string) string {
	if name == "" {
		return id
	}
	return fmt.Sprintf("%s (%s)", id, shorten(name, 30))
}
