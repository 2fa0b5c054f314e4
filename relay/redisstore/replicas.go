package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replicas says whether enough Redis replicas hold a task the receiver
// has just stored: the master alone can lose it in a failover.
type Replicas struct {
	rdb     redis.UniversalClient
	min     int
	timeout time.Duration
}

// NewReplicas waits up to timeout for min replicas of rdb's master.
func NewReplicas(rdb redis.UniversalClient, min int, timeout time.Duration) *Replicas {
	return &Replicas{rdb: rdb, min: min, timeout: timeout}
}

// probe writes a key of ours if the task is on this master. WAIT waits
// for the replication offset its connection last wrote at (Redis 7.0
// moves that mark with any command, later versions only with a write),
// and the pool may have sent the enqueue on another connection. The probe
// is a write after the enqueue on WAIT's own connection; replicas apply
// the master's writes in order, so one that has the probe has the task.
// The check catches the probe reaching a newly promoted master that never
// got the task.
var probe = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 0 then
	return 0
end
redis.call("INCR", KEYS[2])
return 1
`)

// Hold reports whether the task id in queue is held by at least min
// replicas, waiting up to the timeout for them. false with no error: the
// replicas did not confirm in time, or the master answering does not have
// the task.
func (r *Replicas) Hold(ctx context.Context, queue, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout+time.Second)
	defer cancel()
	var found, acks *redis.Cmd
	// One pipeline is one connection: the probe and WAIT go together.
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		found = probe.Eval(ctx, p, []string{asynqTaskKey(queue, id), replicationProbeKey})
		acks = p.Do(ctx, "WAIT", r.min, r.timeout.Milliseconds())
		return nil
	})
	if err != nil {
		return false, err
	}
	if n, _ := found.Int(); n == 0 {
		return false, nil
	}
	n, err := acks.Int()
	return n >= r.min, err
}
