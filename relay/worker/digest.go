package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/slack"
	"github.com/exam-relay/relay/tasks"
)

// RunDigests hands the digests that are due to the queue, each second,
// until ctx ends. Every worker process runs it: a batch is cut once, and
// one cut by a worker that stopped before handing it over is handed over
// by the next.
func (w *Worker) RunDigests(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failing := false
	for {
		// One line when the hand-over starts failing and one when it works
		// again, not one a second while Redis is away.
		switch err := w.handOverDigests(ctx); {
		case err != nil && !failing && ctx.Err() == nil:
			w.log.Warn("digests: cannot hand the due digests to the queue; trying each second", "err", err)
			failing = true
		case err == nil && failing:
			w.log.Info("digests: handed to the queue again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// handOverDigests queues a digest task for each digest due.
func (w *Worker) handOverDigests(ctx context.Context) error {
	batches, waiting, err := w.store.DueDigests(ctx, w.now(), w.settings.Digest)
	if err == nil {
		w.metrics.digestWaiting.Set(float64(waiting))
	}
	for _, b := range batches {
		task, err := tasks.NewDigestBatchTask(b.Channel, b.Group, b.ID, b.Items, w.options)
		if err != nil {
			return err
		}
		if err := w.enqueue(ctx, task); err != nil {
			return err
		}
		if err := w.store.HandedOver(ctx, b); err != nil {
			return err
		}
	}
	return err
}

// aggregate is the asynq GroupAggregator for the digest items asynq's
// groups held before the relay kept them itself: the registrations
// gathered for one exam become one digest task.
func (w *Worker) aggregate(group string, items []*asynq.Task) *asynq.Task {
	task, err := tasks.NewDigestTask(group, items, w.options)
	if err != nil {
		// Encoding the group's name does not fail; if it ever does, an
		// empty digest is logged and dropped rather than crashing asynq.
		w.log.Error("digest: aggregate", "group", group, "err", err)
		return asynq.NewTask(tasks.TypeSlackDigest, []byte(`{}`), asynq.Queue(tasks.QueueSlack))
	}
	return task
}

func (w *Worker) deliverDigest(ctx context.Context, t *asynq.Task) error {
	d, err := tasks.ParseDigest(t.Payload())
	if err != nil {
		return unreadable(err)
	}
	if len(d.Items) == 0 {
		return nil
	}
	first := d.Items[0].Registration
	routing := w.Routing()
	route := routing.Match(first)
	// Where the items were gathered for, unless a reload has since
	// removed it.
	dest, ok := routing.Destination(d.Items[0].Destination)
	if !ok {
		dest = route.Destination(tasks.ChannelOf(t.Type()))
	}
	return w.deliver(ctx, delivery{channel: string(dest.Channel), kind: kindDigest, sentKey: taskID(ctx),
		reg: first, route: route, digest: &d, send: func() (sent, error) {
			var err error
			if messages, ok := dest.Poster.(slack.Messages); ok {
				err = w.updateTodaysDigest(ctx, messages, dest, route, d)
			} else {
				var text string
				if text, err = renderDigest(route, dest.Channel, d); err == nil {
					err = w.post(ctx, dest, text)
				}
			}
			if err == nil {
				w.metrics.digestSize.Observe(float64(len(d.Items)))
				w.metrics.digestDelay.Observe(time.Since(d.FirstReceived()).Seconds())
			}
			return sent{reply: "posted to " + dest.Name}, err
		}})
}

func renderDigest(route *relay.Route, channel relay.Channel, d relay.Digest) (string, error) {
	text, err := route.StaffDigest(channel, d)
	if err != nil {
		return "", relay.Permanent(fmt.Errorf("render %s digest: %w", channel, err))
	}
	return text, nil
}

// updateTodaysDigest merges d into the message posted today for the exam
// and updates it (chat.update), or posts one that later digests update.
//
// Why update rather than reply in a thread: staff scan the channel for one
// line per exam, and the number they want is the total registered so far;
// a thread hides the new names one click away and still needs the
// parent's count fixed.
func (w *Worker) updateTodaysDigest(ctx context.Context, messages slack.Messages, dest relay.Destination, route *relay.Route, d relay.Digest) error {
	board := w.store.Board(dest.Name, d.Group, w.now().In(w.today).Format(time.DateOnly))
	unlock, ok, err := board.Lock(ctx)
	if err != nil {
		return relay.Temporary(fmt.Errorf("digest board: %w", err))
	}
	if !ok {
		return relay.Limited(time.Second, errors.New("another digest for this exam is being posted"))
	}
	defer unlock()
	entry, err := board.Entry(ctx)
	if err != nil {
		return relay.Temporary(fmt.Errorf("digest board: %w", err))
	}
	merged := relay.MergeDigestItems(entry.Items, d.Items)
	text, err := renderDigest(route, dest.Channel, relay.Digest{Group: d.Group, Items: merged})
	if err != nil {
		return err
	}
	if entry.Ref != "" {
		err = w.call(ctx, dest, func() error { return messages.UpdateMessage(ctx, entry.Ref, text) })
		if err == nil {
			entry.Items = merged
			board.Save(ctx, entry)
			return nil
		}
		if !errors.Is(err, slack.ErrMessageGone) {
			return err
		}
		// Someone deleted it: start today's message again.
	}
	var ref string
	err = w.call(ctx, dest, func() (err error) {
		ref, err = messages.PostMessage(ctx, text)
		return err
	})
	if err != nil {
		return err
	}
	board.Save(ctx, redisstore.BoardEntry{Ref: ref, Items: merged})
	return nil
}

// post posts text to dest within its rate limit.
func (w *Worker) post(ctx context.Context, dest relay.Destination, text string) error {
	return w.call(ctx, dest, func() error { return dest.Poster.Post(ctx, text) })
}

// call makes one call to a staff destination in turn with every worker
// posting there, and makes its 429 hold them all, not only this task.
func (w *Worker) call(ctx context.Context, dest relay.Destination, call func() error) error {
	limit := w.staffLimits[dest.Channel]
	if err := limit.Wait(ctx, dest.Name); err != nil {
		return err
	}
	err := call()
	if d := relay.RetryAfterOf(err); d > 0 {
		limit.Block(ctx, dest.Name, d)
	}
	return err
}
