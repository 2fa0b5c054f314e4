package redisstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

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
	replica := relaytest.StartRedisWith(t, relaytest.RedisOptions{ReplicaOf: master.Addr})
	ctx := context.Background()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info, _ := replica.Client().Info(ctx, "replication").Result(); strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica did not sync")
		}
	}
	one := NewReplicas(master.Client(), 1, time.Second)

	info := enqueue(t, master.Client(), "held")
	if held, err := one.Hold(ctx, info.Queue, info.ID); err != nil || !held {
		t.Errorf("Hold of a task on a master with a replica = %v, %v; want true", held, err)
	}
	if n, _ := replica.Client().Exists(ctx, asynqTaskKey(info.Queue, info.ID)).Result(); n != 1 {
		t.Errorf("the replica lacks %s: asynq's key is named differently now", asynqTaskKey(info.Queue, info.ID))
	}
	if held, err := one.Hold(ctx, info.Queue, "never-stored"); err != nil || held {
		t.Errorf("Hold of a task the master lacks = %v, %v; want false", held, err)
	}
	if held, err := NewReplicas(master.Client(), 2, 100*time.Millisecond).Hold(ctx, info.Queue, info.ID); err != nil || held {
		t.Errorf("Hold by 2 replicas of 1 = %v, %v; want false", held, err)
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
	if held, err := NewReplicas(other, 1, 200*time.Millisecond).Hold(ctx, info.Queue, info.ID); err != nil || held {
		t.Errorf("Hold with the replica hung = %v, %v; want false", held, err)
	}
	replica.Resume()

	replica.Stop()
	info = enqueue(t, master.Client(), "not-held")
	if held, err := NewReplicas(master.Client(), 1, 100*time.Millisecond).Hold(ctx, info.Queue, info.ID); err != nil || held {
		t.Errorf("Hold with the replica stopped = %v, %v; want false", held, err)
	}
}
