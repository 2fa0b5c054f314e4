package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
)

// BenchmarkLedgerPerEmail is the relay's own Redis work for one
// confirmation, as a worker's ten handlers do it at once: the swap before
// the send, then the mark with a digest line and the history entry after
// it, in one round trip. Beside the time, it reports the CPU Redis spent
// (INFO cpu): what the relay adds to Redis's load per email. The steps
// are measured cumulatively, so that each one's share is a difference.
func BenchmarkLedgerPerEmail(b *testing.B) {
	for _, steps := range []string{"swap", "swap+mark", "swap+mark+history"} {
		b.Run(steps, func(b *testing.B) {
			benchmarkLedger(b, strings.Contains(steps, "mark"), strings.Contains(steps, "history"))
		})
	}
}

func benchmarkLedger(b *testing.B, mark, history bool) {
	s := newStore(b)
	h := s.NewHistory(time.Hour)
	opens := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour)
	var n atomic.Int64
	before := redisCPU(b, s.rdb)
	b.SetParallelism(5) // 10 goroutines on 2 CPUs: RELAY_WORKER_CONCURRENCY's default
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := n.Add(1)
			reg := registration(opens)
			reg.User.Email, reg.User.ID = fmt.Sprintf("s%d@example.edu", i), fmt.Sprint("usr_", i)
			if _, err := s.SwapSchedule(ctx, reg, "task"); err != nil {
				b.Error(err)
				return
			}
			if !mark {
				continue
			}
			item, err := json.Marshal(relay.DigestItem{Registration: reg, Destination: "slack-1"})
			if err != nil {
				b.Error(err)
				return
			}
			m := Mark{Reg: reg, Deliveries: []string{LedgerConfirmation}, FanOut: true,
				Digests: []DigestItem{{Channel: relay.Slack, Group: "digest:exm_1", Item: item}}}
			if !history {
				if err := s.writeMark(ctx, m); err != nil {
					b.Error(err)
					return
				}
				continue
			}
			e := HistoryEntry{Channel: "email", Kind: "confirmation", Status: HistorySent, Email: reg.User.Email,
				User: reg.User.ID, Exam: reg.Exam.ObjectID, Registration: reg.ID(), ExamName: "Bench Exam",
				MessageID: "<" + reg.ID() + ".confirmation@example.edu>", Detail: "250 2.0.0 Ok: queued"}
			if markErr, recordErr := h.MarkAndRecord(ctx, m, e); markErr != nil || recordErr != nil {
				b.Error(markErr, recordErr)
				return
			}
		}
	})
	b.ReportMetric(float64((redisCPU(b, s.rdb)-before).Microseconds())/float64(n.Load()), "redis-cpu-µs/op")
}

// redisCPU is the CPU time Redis has used, user and system.
func redisCPU(b *testing.B, rdb redis.UniversalClient) time.Duration {
	b.Helper()
	info := relaytest.Info(b, rdb, "cpu")
	var total time.Duration
	for _, name := range []string{"used_cpu_sys", "used_cpu_user"} {
		seconds, err := strconv.ParseFloat(info[name], 64)
		if err != nil {
			b.Fatalf("INFO cpu's %s: %v", name, err)
		}
		total += time.Duration(seconds * float64(time.Second))
	}
	return total
}
