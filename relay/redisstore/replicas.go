package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
)

// Replicas says whether enough Redis replicas hold registrations the
// receiver has stored: the master alone can lose them in a failover.
type Replicas struct {
	rdb     redis.UniversalClient
	min     int
	timeout time.Duration
}

// NewReplicas waits up to timeout for min replicas of rdb's master.
func NewReplicas(rdb redis.UniversalClient, min int, timeout time.Duration) *Replicas {
	return &Replicas{rdb: rdb, min: min, timeout: timeout}
}

// probe says which registrations the master has, each by its task (KEYS
// 2k and ARGV k+1 for the k-th) or, once a worker has handled it and asynq
// has deleted the task, by its fan-out's mark in the ledger (KEYS 2k+1 and
// ARGV k+1); and writes a key of ours (KEYS[1]) for WAIT to follow.
//
// WAIT waits for the replication offset its connection last wrote at
// (Redis 7.0 moves that mark with any command, later versions only with a
// write), and the pool may have sent an enqueue on another connection.
// The probe is a write after the enqueues on WAIT's own connection;
// replicas apply the master's writes in order, so one that has the probe
// has the tasks. The check catches the probe reaching a newly promoted
// master that never got a task.
var probe = redis.NewScript(`
local found = {}
for k = 1, (#KEYS - 1) / 2 do
	local ledger = KEYS[2 * k + 1]
	if redis.call("EXISTS", KEYS[2 * k]) == 1 then
		found[k] = 1
	elseif redis.call("TYPE", ledger).ok == "hash" and redis.call("HGET", ledger, ARGV[1]) == ARGV[k + 1] then
		found[k] = 1
	else
		found[k] = 0
	end
end
redis.call("INCR", KEYS[1])
return found
`)

// probeBatch bounds the keys of one probe: a spool's worth of copies is
// checked in several, on one connection, before one WAIT.
const probeBatch = 500

// Hold reports whether the master has reg, stored as the task id in
// queue or handled since (found), and whether at least min replicas hold
// it too, waiting up to the timeout for them (held).
func (r *Replicas) Hold(ctx context.Context, reg relay.Registration, queue, id string) (found, held bool, err error) {
	all, held, err := r.HoldAll(ctx, []relay.Registration{reg}, queue, []string{id})
	if err != nil {
		return false, false, err
	}
	return all[0], all[0] && held, nil
}

// HoldAll is Hold for many registrations, with one wait for the replicas:
// found says which the master has, and held whether at least min
// replicas hold those.
func (r *Replicas) HoldAll(ctx context.Context, regs []relay.Registration, queue string, ids []string) (found []bool, held bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout+time.Second)
	defer cancel()
	var probes []*redis.Cmd
	var acks *redis.Cmd
	// One pipeline is one connection: the probes and WAIT go together.
	_, err = r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for start := 0; start < len(regs); start += probeBatch {
			end := min(start+probeBatch, len(regs))
			keys := []string{replicationProbeKey}
			args := []any{LedgerFannedOut}
			for i := start; i < end; i++ {
				keys = append(keys, asynqTaskKey(queue, ids[i]), scheduleKey(regs[i].SubjectID()))
				args = append(args, ledgerID(regs[i].ID()))
			}
			probes = append(probes, probe.Eval(ctx, p, keys, args...))
		}
		acks = p.Do(ctx, "WAIT", r.min, r.timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	found = make([]bool, 0, len(regs))
	for _, c := range probes {
		got, err := c.Int64Slice()
		if err != nil {
			return nil, false, err
		}
		for _, n := range got {
			found = append(found, n == 1)
		}
	}
	n, err := acks.Int()
	return found, n >= r.min, err
}
