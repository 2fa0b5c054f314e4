package redisstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
)

func enqueue(t *testing.T, rdb redis.UniversalClient, id string) *asynq.TaskInfo {
	t.Helper()
	info, err := asynq.NewClientFromRedisClient(rdb).Enqueue(asynq.NewTask("test", nil), asynq.TaskID(id), asynq.Queue("registrations"))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestReplicasHoldWhatAReplicaAcknowledged(t *testing.T) {
	master := relaytest.StartRedis(t)
	replica := relaytest.StartReplica(t, master)
	ctx := context.Background()
	one := NewReplicas(master.Client(), 1, time.Second)
	reg := registration(time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour))

	info := enqueue(t, master.Client(), "held")
	if found, held, err := one.Hold(ctx, reg, info.Queue, info.ID); err != nil || !found || !held {
		t.Errorf("Hold of a task on a master with a replica = %v, %v, %v; want found and held", found, held, err)
	}
	if n, _ := replica.Client().Exists(ctx, asynqTaskKey(info.Queue, info.ID)).Result(); n != 1 {
		t.Errorf("the replica lacks %s: asynq's key is named differently now", asynqTaskKey(info.Queue, info.ID))
	}
	if found, held, err := one.Hold(ctx, reg, info.Queue, "never-stored"); err != nil || found || held {
		t.Errorf("Hold of a task the master lacks = %v, %v, %v; want neither found nor held", found, held, err)
	}
	if found, held, err := NewReplicas(master.Client(), 2, 100*time.Millisecond).Hold(ctx, reg, info.Queue, info.ID); err != nil || !found || held {
		t.Errorf("Hold by 2 replicas of 1 = %v, %v, %v; want found, not held", found, held, err)
	}

	// A worker handled the registration: asynq deleted its task, and the
	// ledger's fan-out mark says the master had it.
	store := New(master.Client(), time.Hour)
	if _, err := store.SwapSchedule(ctx, reg, "handled"); err != nil {
		t.Fatal(err)
	}
	if err := store.MarkFannedOut(ctx, reg, nil, LedgerConfirmation); err != nil {
		t.Fatal(err)
	}
	if found, held, err := one.Hold(ctx, reg, info.Queue, "handled"); err != nil || !found || !held {
		t.Errorf("Hold of a registration a worker handled = %v, %v, %v; want found and held", found, held, err)
	}
	later := registration(reg.Exam.Schedule.OpenDate.Add(time.Hour))
	if found, _, err := one.Hold(ctx, later, info.Queue, "not-handled"); err != nil || found {
		t.Errorf("Hold of new dates for the student, never stored = %v, %v; want not found", found, err)
	}

	// Many at once, in several probes: the last is the task stored first.
	var regs []relay.Registration
	var ids []string
	for i := range 2 * probeBatch {
		regs, ids = append(regs, later), append(ids, fmt.Sprint("never-", i))
	}
	regs, ids = append(regs, later), append(ids, "held")
	found, held, err := one.HoldAll(ctx, regs, info.Queue, ids)
	if err != nil || !held || len(found) != len(ids) || slices.Contains(found[:2*probeBatch], true) || !found[2*probeBatch] {
		t.Errorf("HoldAll of %d, the last stored: held %v, err %v, %d found; want the last found alone, and held", len(ids), held, err, len(found))
	}

	// A hung replica stays connected, and is counted by a WAIT that
	// follows nothing newer than what it acknowledged: here WAIT goes on a
	// connection other than the enqueue's, as a pool may send it.
	other := redis.NewClient(&redis.Options{Addr: master.Addr, PoolSize: 1})
	defer other.Close()
	if err := other.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	replica.Pause()
	info = enqueue(t, master.Client(), "hung")
	if found, held, err := NewReplicas(other, 1, 200*time.Millisecond).Hold(ctx, reg, info.Queue, info.ID); err != nil || !found || held {
		t.Errorf("Hold with the replica hung = %v, %v, %v; want found, not held", found, held, err)
	}
	replica.Resume()

	replica.Stop()
	info = enqueue(t, master.Client(), "not-held")
	if found, held, err := NewReplicas(master.Client(), 1, 100*time.Millisecond).Hold(ctx, reg, info.Queue, info.ID); err != nil || !found || held {
		t.Errorf("Hold with the replica stopped = %v, %v, %v; want found, not held", found, held, err)
	}
}
