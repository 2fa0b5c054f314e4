package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/tasks"
)

const tasksUsage = `usage:
  relay tasks [-json]          list failed (archived) deliveries
  relay tasks -scheduled       list reminders waiting for their time
  relay tasks retry ID|-all    deliver again, now
  relay tasks delete ID        forget a failed delivery`

// tasksCommand is `relay tasks`: it lets an operator see and act on what
// failed for good, and see the reminders waiting for their time.
func tasksCommand(ctx context.Context, args []string, e env) error {
	flags, configPath := newFlags("tasks", e)
	asJSON := flags.Bool("json", false, "print JSON for scripts")
	scheduled := flags.Bool("scheduled", false, "list scheduled reminders")
	if err := flags.Parse(args); err != nil {
		return err
	}
	args, stdout := flags.Args(), e.stdout
	_, rdb, err := loadWithRedis(ctx, *configPath, e, "relay tasks reads the queue")
	if err != nil {
		return err
	}
	defer rdb.Close()
	in := asynq.NewInspectorFromRedisClient(rdb)

	switch {
	case len(args) == 0 && *scheduled:
		reminders, err := tasks.Scheduled(in)
		if err != nil {
			return err
		}
		if *asJSON {
			if reminders == nil {
				reminders = []tasks.ScheduledReminder{}
			}
			return printJSON(stdout, reminders)
		}
		printScheduled(stdout, reminders)
		return nil
	case len(args) == 0:
		failed, err := tasks.Failed(in)
		if err != nil {
			return err
		}
		if *asJSON {
			if failed == nil {
				failed = []tasks.FailedTask{}
			}
			return printJSON(stdout, failed)
		}
		printFailed(stdout, failed)
		return nil
	case len(args) == 2 && args[0] == "retry" && (args[1] == "-all" || args[1] == "--all"):
		n, err := tasks.RetryAllFailed(in)
		fmt.Fprintf(stdout, "%d failed deliveries queued again\n", n)
		return err
	case len(args) == 2 && args[0] == "retry":
		if err := tasks.RetryFailed(in, args[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s queued again\n", args[1])
		return nil
	case len(args) == 2 && args[0] == "delete":
		if err := tasks.DeleteFailed(in, args[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s deleted\n", args[1])
		return nil
	default:
		return errors.New(tasksUsage)
	}
}

func printFailed(w io.Writer, failed []tasks.FailedTask) {
	if len(failed) == 0 {
		fmt.Fprintln(w, "No failed deliveries.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCHANNEL\tUSER\tEXAM\tFAILED AT\tERROR")
	for _, f := range failed {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.ID, f.Channel, f.UserID, examLabel(f.ExamID, f.ExamName),
			f.FailedAt.UTC().Format(time.DateTime), shorten(oneLine(f.LastError), 80))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d failed. Fix the cause, then: relay tasks retry ID (or -all). Full errors: relay tasks -json\n", len(failed))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printScheduled(w io.Writer, reminders []tasks.ScheduledReminder) {
	if len(reminders) == 0 {
		fmt.Fprintln(w, "No reminders scheduled. (RELAY_REMINDER_BEFORE_OPEN / _CLOSE turn them on.)")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEND AT (UTC)\tUSER\tEXAM\tREMINDER\tID")
	for _, r := range reminders {
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%s before %s\t%s\n", r.SendAt.UTC().Format(time.DateTime), r.UserID,
			r.ExamID, shorten(r.ExamName, 30), r.Before, r.Event, r.ID)
	}
	tw.Flush()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
