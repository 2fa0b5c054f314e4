package worker

import (
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

// backlog is about how many tasks wait in one queue, read from asynq at
// most once a second. A limiter spreads the sends it hands back over the
// time its backlog takes to drain, rather than have them all come back
// for the next slot.
type backlog struct {
	inspector *asynq.Inspector
	queue     string

	mu     sync.Mutex
	n      int
	readAt time.Time
}

func newBacklog(inspector *asynq.Inspector, queue string) *backlog {
	return &backlog{inspector: inspector, queue: queue}
}

func (b *backlog) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.readAt) < time.Second {
		return b.n
	}
	if info, err := b.inspector.GetQueueInfo(b.queue); err == nil {
		b.n = info.Pending + info.Retry + info.Active
	}
	b.readAt = time.Now()
	return b.n
}
