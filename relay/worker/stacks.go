package worker

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/hibiken/asynq"
)

// handler is the worker's tasks run on Concurrency goroutines that live until
// stop, which must come after the server's Shutdown.
//
// asynq runs each task on a goroutine of its own, which starts with a
// small stack and grows it, by copying, through the templates, go-mail
// and go-redis: 5% of the worker's CPU while it drains. A goroutine that
// lives on keeps the stack it grew. (gRPC's server reuses goroutines for
// the same reason: NumStreamWorkers.)
func (w *Worker) handler() (h asynq.Handler, stop func()) {
	return onLongLivedGoroutines(w.mux(), w.settings.Concurrency, w.log)
}

// onLongLivedGoroutines runs h's tasks on n goroutines, until stop.
func onLongLivedGoroutines(h asynq.Handler, n int, log *slog.Logger) (asynq.Handler, func()) {
	jobs := make(chan job)
	for range n {
		go func() {
			for j := range jobs {
				j.done <- run(h, j, log)
			}
		}()
	}
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		done := make(chan error, 1)
		jobs <- job{ctx, t, done}
		return <-done
	}), func() { close(jobs) }
}

type job struct {
	ctx  context.Context
	task *asynq.Task
	done chan error
}

// run is one task, and a panic in it its failure, as asynq makes it when
// the task runs on its own goroutine.
func run(h asynq.Handler, j job, log *slog.Logger) (err error) {
	defer func() {
		if x := recover(); x != nil {
			log.Error("task panicked", "type", j.task.Type(), "panic", x, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic in %s task: %v", j.task.Type(), x)
		}
	}()
	return h.ProcessTask(j.ctx, j.task)
}
