package worker

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
)

func TestTasksOnLongLivedGoroutinesRunTogetherAndSurviveAPanic(t *testing.T) {
	const n = 3
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	h, stop := onLongLivedGoroutines(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		switch task.Type() {
		case "panic":
			panic("template bug")
		case "wait":
			started.Done()
			<-release
		}
		return nil
	}), n, slog.New(slog.DiscardHandler))
	defer stop()

	err := h.ProcessTask(context.Background(), asynq.NewTask("panic", nil))
	if err == nil || !strings.Contains(err.Error(), "template bug") {
		t.Errorf("a task that panicked returned %v", err)
	}
	// n tasks at once, as asynq's Concurrency runs them, on goroutines
	// that one panic did not end.
	var done sync.WaitGroup
	for range n {
		done.Go(func() {
			if err := h.ProcessTask(context.Background(), asynq.NewTask("wait", nil)); err != nil {
				t.Error(err)
			}
		})
	}
	started.Wait()
	close(release)
	done.Wait()
}
