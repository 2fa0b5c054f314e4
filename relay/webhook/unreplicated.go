package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/tasks"
)

// A registration the master took, but fewer replicas than asked confirmed
// within the wait, has a copy kept in the Unreplicated spool until they
// do: however long they lag, a failover then finds it in the copy, not
// only on a master that died. Each line is an unreplicatedCopy.
type unreplicatedCopy struct {
	// Task is the id the registration was stored under: a signed
	// sender's webhook-id makes it differ from the registration's own.
	Task         string          `json:"task"`
	Registration json.RawMessage `json:"registration"`
}

// OpenUnreplicated opens the Unreplicated spool in the spool folder
// spoolDir; when it is not there, it makes it if create is set, and
// returns nil otherwise.
func OpenUnreplicated(spoolDir string, max int, create bool, log *slog.Logger) (*Spool, error) {
	dir := filepath.Join(spoolDir, "unreplicated")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) && !create {
		return nil, nil
	}
	return OpenSpool(dir, max, log.With("spool", "unreplicated"))
}

func (rc *Receiver) keepUnreplicated(taskID string, payload []byte) error {
	line, err := json.Marshal(unreplicatedCopy{Task: taskID, Registration: payload})
	if err != nil {
		return err
	}
	return rc.unreplicated.Append(line)
}

// ConfirmUnreplicated is the Unreplicated spool's sweep: it says which
// copies can go, those whose registrations enough replicas hold, with one
// wait for them. A master that has neither the task nor a record of
// handling it, one promoted without it, is given it again, and its copy
// waits for the replicas.
func (rc *Receiver) ConfirmUnreplicated(lines [][]byte) ([]bool, error) {
	done := make([]bool, len(lines))
	var regs []relay.Registration
	var ids []string
	var at []int // the line of each of regs
	for i, line := range lines {
		var c unreplicatedCopy
		reg, err := relay.Registration{}, json.Unmarshal(line, &c)
		if err == nil {
			reg, err = tasks.ParseRegistration(c.Registration)
		}
		if err != nil || c.Task == "" {
			// Not something waiting will fix; keeping it would keep it
			// forever.
			rc.log.Error("spool: dropping an unreadable copy", "err", err)
			done[i] = true
			continue
		}
		regs, ids, at = append(regs, reg), append(ids, c.Task), append(at, i)
	}
	if len(regs) == 0 {
		return done, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), enqueueTimeout)
	defer cancel()
	if rc.replicas == nil {
		// RELAY_REDIS_MIN_REPLICAS was turned off since: the master is
		// trusted with them.
		for k, reg := range regs {
			if err := rc.storeAgain(ctx, reg, ids[k]); err != nil {
				return done, err
			}
			done[at[k]] = true
		}
		return done, nil
	}
	found, held, err := rc.replicas.HoldAll(ctx, regs, tasks.QueueRegistrations, ids)
	if err != nil {
		return done, err
	}
	for k, reg := range regs {
		if found[k] {
			done[at[k]] = held
			continue
		}
		if err := rc.storeAgain(ctx, reg, ids[k]); err != nil {
			return done, err
		}
		rc.log.Warn("registration missing from the Redis master, a new one since; stored it again", "registration", ids[k])
	}
	if held && rc.behind.Swap(false) {
		rc.log.Info("Redis replicas hold the registrations again; waiting for them as before")
	}
	return done, nil
}

// ForgetUnreplicated removes from s, an Unreplicated spool, the copies
// whose registration theirs says is to go; it returns how many.
func ForgetUnreplicated(s *Spool, theirs func(payload []byte) bool) (int, error) {
	return s.Forget(func(line []byte) bool {
		var c unreplicatedCopy
		return json.Unmarshal(line, &c) == nil && theirs(c.Registration)
	})
}
