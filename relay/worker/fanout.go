package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/tasks"
)

// fanOut tells staff of a registration as its route asks (a task per
// alert, a line in each digest, added when the fan-out is marked done),
// schedules its reminders, and sends the student's confirmation itself:
// most emails go out at the first attempt, and a task of their own would
// double the queue's work for each. An email that fails, or must wait its
// turn, goes to the email queue, which retries it on its own: a staff
// channel's failure never re-sends an email, nor the other way round.
func (w *Worker) fanOut(ctx context.Context, t *asynq.Task) (err error) {
	reg, err := tasks.ParseRegistration(t.Payload())
	if err != nil {
		return unreadable(err)
	}
	told, err := w.store.SwapSchedule(ctx, reg, taskID(ctx), redisstore.LedgerFannedOut, redisstore.LedgerConfirmation)
	switch {
	case err != nil:
		return fmt.Errorf("ledger: %w", err)
	case told.Busy:
		return relay.Limited(2*time.Second, errors.New("another task is fanning out this registration; waiting for it to finish"))
	}
	reg.Previous, reg.Sequence = told.Previous, told.Sequence
	route := w.Routing().Match(reg)
	confirmation := w.confirmation(ctx, reg, route)
	if told.Delivered[redisstore.LedgerFannedOut] {
		// Synap sent this registration again: until the exam is over, a
		// student told these dates hears nothing more, nor do staff.
		w.log.Info("the same registration again; handled before, nothing sent", "registration", reg.ID(), "user", reg.User.ID, "exam", reg.Exam.ObjectID)
		w.record(ctx, confirmation, redisstore.HistorySkipped, sent{reply: "the same registration again; handled before, nothing sent"})
		return nil
	}
	// This task holds the fan-out's claim until it marks it done.
	defer func() {
		if err != nil {
			_ = w.store.ReleaseFanOut(context.WithoutCancel(ctx), reg)
		}
	}()

	// Staff alerts are tasks of their own; digest items are added with
	// the fan-out's mark, which adds them once however often it runs.
	for _, dest := range route.Staff() {
		if dest.Mode != relay.ModeEach {
			item, err := newDigestItem(dest, reg, w.now())
			if err != nil {
				return relay.Permanent(err)
			}
			confirmation.digests = append(confirmation.digests, item)
			continue
		}
		task, err := tasks.NewAlertTask(dest.Channel, reg, w.options)
		if err != nil {
			return relay.Permanent(err)
		}
		if err := w.enqueue(ctx, task); err != nil {
			return err
		}
	}
	switch {
	case !route.Email:
		w.record(ctx, confirmation, redisstore.HistorySkipped, sent{reply: "route " + route.Name + " sends no email"})
		return w.markFannedOut(ctx, reg, confirmation.digests)
	case w.reminders.On():
		if err := w.scheduleReminders(ctx, reg); err != nil {
			return err
		}
	}
	switch {
	case told.Delivered[redisstore.LedgerConfirmation]:
		// A re-run of a fan-out whose worker stopped after the email.
		w.alreadyDelivered(ctx, confirmation)
		return w.markFannedOut(ctx, reg, confirmation.digests)
	case told.Same:
		// A re-run of a fan-out that stopped short: it may have handed the
		// email over already, and the queue's task id admits one.
		return w.handOver(ctx, reg, confirmation.digests, nil)
	}
	// News for the student, and SwapSchedule read the ledger: nothing was
	// sent about these dates. The email goes last, so that one write
	// marks it sent and the fan-out done.
	confirmation.first = true
	if err := w.deliver(ctx, confirmation); err != nil {
		return w.handOver(ctx, reg, confirmation.digests, err)
	}
	return nil
}

// newDigestItem is reg's line in its exam's digest for dest.
func newDigestItem(dest relay.Destination, reg relay.Registration, receivedAt time.Time) (redisstore.DigestItem, error) {
	item, err := json.Marshal(relay.DigestItem{Registration: reg, Destination: dest.Name, ReceivedAt: receivedAt})
	if err != nil {
		return redisstore.DigestItem{}, fmt.Errorf("encode a %s digest item: %w", dest.Channel, err)
	}
	return redisstore.DigestItem{Channel: dest.Channel, Group: tasks.DigestGroup(dest.Name, reg), Item: item}, nil
}

// handOver gives a confirmation the fan-out did not send to the email
// queue, and marks the fan-out done, adding its digest items. The task
// runs at once when the email was not tried or must wait its turn (it
// then waits as the limits say, with the other emails that wait); after
// the retry schedule's first wait when the attempt failed, which it
// counts; and archives itself, unsent, when the attempt failed for good.
func (w *Worker) handOver(ctx context.Context, reg relay.Registration, digests []redisstore.DigestItem, failure error) error {
	tried, refused, opts := 0, "", []asynq.Option(nil)
	switch {
	case failure == nil:
	case relay.OutcomeOf(failure) == relay.RateLimited:
	case relay.OutcomeOf(failure) == relay.Failed:
		tried, refused = 1, reasonOf(failure)
		// Before the task exists: it archives itself only while the mark
		// is there, so that an operator's re-run sends.
		if err := w.store.MarkDelivered(ctx, reg, refusedMark); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
	default:
		tried = 1
		opts = append(opts, asynq.ProcessIn(retryDelay(w.settings.RetrySchedule)(0, failure, nil)))
	}
	task, err := tasks.NewEmailTask(reg, w.options, tried, refused)
	if err != nil {
		return relay.Permanent(err)
	}
	if err := w.enqueue(ctx, task, opts...); err != nil {
		return err
	}
	return w.markFannedOut(ctx, reg, digests)
}

// refusedMark is in the ledger from the fan-out's attempt at a
// confirmation that failed for good until the email task that carries the
// reason archives itself.
const refusedMark = "e!"

// reasonOf is err's text without the outcome the relay put in front.
func reasonOf(err error) string {
	var e *relay.Error
	if errors.As(err, &e) {
		return e.Err.Error()
	}
	return err.Error()
}

// enqueue adds task to the queue; a conflict means an earlier run of this
// fan-out got that far.
func (w *Worker) enqueue(ctx context.Context, task *asynq.Task, opts ...asynq.Option) error {
	if _, err := w.queue.EnqueueContext(ctx, task, opts...); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w", task.Type(), err)
	}
	return nil
}

func (w *Worker) markFannedOut(ctx context.Context, reg relay.Registration, digests []redisstore.DigestItem) error {
	if err := w.store.MarkFannedOut(ctx, reg, digests); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}
