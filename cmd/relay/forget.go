package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/email"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/webhook"
	"github.com/exam-relay/relay/tasks"
)

// forgotten is what `relay forget` removed, as -json prints it.
type forgotten struct {
	Email string               `json:"email"`
	Tasks tasks.ForgottenTasks `json:"tasks"`
	Redis redisstore.Forgotten `json:"redis"`
	// Spool is the registrations removed from this machine's spool; -1
	// when a running relay serve holds it.
	Spool  int `json:"spoolLines"`
	Outbox int `json:"outboxFiles"`
	// Notes say what was left, and why.
	Notes []string `json:"notes,omitempty"`
}

// forgetCommand is `relay forget -email ADDR`: a data-protection erasure
// of everything the relay holds about one student.
func forgetCommand(ctx context.Context, args []string, e env) error {
	flags, configPath := newFlags("forget", e)
	address := flags.String("email", "", "the student's email address")
	asJSON := flags.Bool("json", false, "print what was removed as JSON")
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if *address == "" || !strings.Contains(*address, "@") {
		return errors.New("usage: relay forget -email ADDR [-json]: the student's email address")
	}
	cfg, rdb, err := loadWithRedis(ctx, *configPath, e, "relay forget erases what the relay keeps")
	if err != nil {
		return err
	}
	defer rdb.Close()
	in := asynq.NewInspectorFromRedisClient(rdb)
	queue := asynq.NewClientFromRedisClient(rdb)
	defer queue.Close()

	f := forgotten{Email: *address}
	options := tasks.Options{MaxRetry: cfg.Worker.MaxRetry}
	if f.Tasks, err = tasks.Forget(in, queue, *address, options); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	store := redisstore.New(rdb, time.Duration(cfg.Retention))
	if f.Redis, err = store.Forget(ctx, *address, store.NewHistory(time.Duration(cfg.History.Retention))); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if f.Spool, err = forgetSpooled(cfg, *address); err != nil {
		f.Spool = -1
		f.Notes = append(f.Notes, fmt.Sprintf("spool %s: %v; its registrations reach Redis within seconds once Redis answers: run relay forget again then", cfg.Spool.Dir, err))
	}
	if f.Outbox, err = (email.Outbox{Dir: cfg.SMTP.OutboxDir}).Forget(*address); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if len(f.Tasks.Active) > 0 {
		f.Notes = append(f.Notes, fmt.Sprintf("%d tasks are being delivered right now and could not be removed: run relay forget again in a minute", len(f.Tasks.Active)))
	}
	f.Notes = append(f.Notes,
		"emails already delivered and Slack messages already posted are not the relay's to remove",
		"Redis's own append-only file keeps the old data until it is rewritten (BGREWRITEAOF)")
	if *asJSON {
		return printJSON(e.stdout, f)
	}
	printForgotten(e, f)
	return nil
}

// forgetSpooled removes the student's registrations from this machine's
// spool, and the copies kept until Redis's replicas hold them, when no
// relay serve holds the spool.
func forgetSpooled(cfg config.Config, address string) (int, error) {
	theirs := func(payload []byte) bool {
		reg, err := tasks.ParseRegistration(payload)
		return err == nil && strings.EqualFold(reg.User.Email, address)
	}
	log := newLogger(cfg, io.Discard)
	spool, err := webhook.OpenSpool(cfg.Spool.Dir, cfg.Spool.Max, log)
	if err != nil {
		return 0, err
	}
	defer spool.Close()
	n, err := spool.Forget(theirs)
	if err != nil {
		return n, err
	}
	unreplicated, err := webhook.OpenUnreplicated(cfg.Spool.Dir, cfg.Spool.Max, false, log)
	if err != nil || unreplicated == nil {
		return n, err
	}
	defer unreplicated.Close()
	m, err := webhook.ForgetUnreplicated(unreplicated, theirs)
	return n + m, err
}

func printForgotten(e env, f forgotten) {
	w := e.stdout
	fmt.Fprintf(w, "Forgot %s:\n", f.Email)
	fmt.Fprintf(w, "  %-22s %d deleted, %d digests queued again without them\n", "queued and kept tasks", len(f.Tasks.Deleted), len(f.Tasks.Requeued))
	if f.Redis.SentMarks > 0 {
		// Written by relays before the ledger, until they expire.
		fmt.Fprintf(w, "  %-22s %d\n", "sent marks", f.Redis.SentMarks)
	}
	fmt.Fprintf(w, "  %-22s %d\n", "exams (dates told)", f.Redis.Schedules)
	fmt.Fprintf(w, "  %-22s %d\n", "digests waiting", f.Redis.DigestItems)
	fmt.Fprintf(w, "  %-22s %d\n", "digest message lists", f.Redis.BoardItems)
	fmt.Fprintf(w, "  %-22s %d entries\n", "history", f.Redis.History)
	if f.Spool >= 0 {
		fmt.Fprintf(w, "  %-22s %d\n", "spooled registrations", f.Spool)
	}
	fmt.Fprintf(w, "  %-22s %d files\n", "outbox", f.Outbox)
	for _, note := range f.Notes {
		fmt.Fprintf(w, "Note: %s.\n", note)
	}
}
