package main

import (
	"context"
	"strconv"
	"strings"
)

// redisWork is what Redis ran for each email of a drain, from INFO
// commandstats: counts, which a busy machine does not distort as it does
// the times beside them.
type redisWork struct {
	// Scripts are EVAL and EVALSHA calls: asynq's dequeue and completion,
	// and the relay's own ledger and history scripts.
	Scripts float64 `json:"scripts_per_email"`
	// Commands are every command, those the scripts ran included.
	Commands float64 `json:"commands_per_email"`
}

// commandCalls are INFO commandstats's calls, by command.
type commandCalls map[string]int64

func (b *bench) commandCalls(ctx context.Context) (commandCalls, error) {
	info, err := b.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	return parseCommandStats(info), nil
}

// parseCommandStats reads lines such as
// "cmdstat_evalsha:calls=12,usec=340,usec_per_call=28.33,…".
func parseCommandStats(info string) commandCalls {
	calls := commandCalls{}
	for line := range strings.Lines(info) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, fields, _ := strings.Cut(rest, ":")
		for field := range strings.SplitSeq(fields, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil {
					calls[name] = n
				}
			}
		}
	}
	return calls
}

// perEmail is the work Redis did between before and c, per email sent.
func (c commandCalls) perEmail(before commandCalls, emails int) redisWork {
	var w redisWork
	if emails == 0 {
		return w
	}
	for name, n := range c {
		d := float64(n - before[name])
		w.Commands += d
		switch name {
		case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro":
			w.Scripts += d
		}
	}
	w.Scripts /= float64(emails)
	w.Commands /= float64(emails)
	return w
}
