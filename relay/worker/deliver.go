package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/email"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/tasks"
)

// channelEmail is the channel students are told on; staff are told on
// a relay.Channel.
const channelEmail = "email"

// What a delivery is, in the history.
const (
	kindConfirmation = "confirmation"
	kindReminder     = "reminder"
	kindAlert        = "alert"
	kindDigest       = "digest"
)

// delivery is one message to send, once.
type delivery struct {
	channel, kind string
	// mark names the delivery in the student's ledger, where a re-run
	// finds it was made (redisstore.Store.Delivered); sentKey names a
	// delivery about no single student (a digest) in the sent marks.
	mark    string
	sentKey string
	// first is the fan-out's own attempt at a confirmation: the fan-out
	// has just read the ledger, which holds no such delivery; a failure
	// goes to the email queue, which makes the rest; its mark marks the
	// fan-out done.
	first bool
	// digests are the fan-out's digest items, added when its mark is
	// written.
	digests []redisstore.DigestItem
	reg     relay.Registration
	route   *relay.Route
	// digest is set for a staff digest: the history records it under the
	// exam, not under one student.
	digest *relay.Digest
	send   func() (sent, error)
	// id is reg.ID(), once deliver has worked it out for the log line and
	// the history entry alike.
	id string
}

// regID is d.reg.ID().
func (d delivery) regID() string {
	if d.id != "" {
		return d.id
	}
	return d.reg.ID()
}

func (d delivery) logAttrs() []any {
	return []any{"channel", d.channel, "route", d.route.Name, "registration", d.regID(), "user", d.reg.User.ID, "exam", d.reg.Exam.ObjectID}
}

// sent is what the receiving end said of a delivery it took.
type sent struct {
	messageID string
	reply     string
}

func (w *Worker) deliverConfirmation(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.ParseRegistration(t.Payload())
	if err != nil {
		return unreadable(err)
	}
	if reason := tasks.Refused(t); reason != "" {
		// The fan-out's attempt failed for good, and was logged and
		// recorded then: archived with its reason, unless an operator
		// runs it again.
		first, err := w.store.Unmark(ctx, reg, refusedMark)
		if err != nil {
			return relay.Temporary(fmt.Errorf("ledger: %w", err))
		}
		if first {
			return relay.Permanent(errors.New(reason))
		}
	}
	return w.deliver(ctx, w.confirmation(ctx, reg, w.Routing().Match(reg)))
}

// confirmation is the delivery of reg's confirmation email.
func (w *Worker) confirmation(ctx context.Context, reg relay.Registration, route *relay.Route) delivery {
	return delivery{channel: channelEmail, kind: kindConfirmation, mark: redisstore.LedgerConfirmation,
		reg: reg, route: route, send: func() (sent, error) {
			if problem := reg.Exam.Schedule.Problem(); problem != "" {
				w.log.Warn(problem, "route", route.Name, "registration", reg.ID(), "exam", reg.Exam.ObjectID)
			}
			rendered, err := route.Confirmation(reg)
			if err != nil {
				// Fix the template, then re-run the archived task.
				return sent{}, relay.Permanent(fmt.Errorf("render email: %w", err))
			}
			msg, err := email.Confirmation(route.Sender, reg, rendered, w.dkim, w.now())
			if err != nil {
				return sent{}, relay.Permanent(err)
			}
			return w.sendEmail(ctx, msg)
		}}
}

func (w *Worker) deliverStaffAlert(ctx context.Context, t *asynq.Task) error {
	reg, err := tasks.ParseRegistration(t.Payload())
	if err != nil {
		return unreadable(err)
	}
	route := w.Routing().Match(reg)
	dest := route.Destination(tasks.ChannelOf(t.Type()))
	return w.deliver(ctx, delivery{channel: string(dest.Channel), kind: kindAlert, mark: alertMark(dest.Channel),
		reg: reg, route: route, send: func() (sent, error) {
			text, err := route.StaffAlert(dest.Channel, reg)
			if err != nil {
				return sent{}, relay.Permanent(fmt.Errorf("render %s alert: %w", dest.Channel, err))
			}
			return sent{reply: "posted to " + dest.Name}, w.post(ctx, dest, text)
		}})
}

// alertMark names a staff alert on channel in the ledger.
func alertMark(channel relay.Channel) string { return "a:" + string(channel) }

// sentEmail is what a mail server said of msg it took. go-mail keeps the
// reply to DATA without its code, which is 250 when the message is taken.
func sentEmail(msg *mail.Msg) sent {
	reply := msg.ServerResponse()
	if reply != "" {
		reply = "250 " + reply
	}
	return sent{messageID: msg.GetMessageID(), reply: reply}
}

// deliver sends d unless it was sent before, counts, logs and records the
// outcome, and returns the failure for the queue to act on.
func (w *Worker) deliver(ctx context.Context, d delivery) error {
	d.id = d.reg.ID()
	attrs := d.logAttrs()
	if !d.first {
		already, outdated, err := w.delivered(ctx, d)
		switch {
		case err != nil:
			return relay.Temporary(fmt.Errorf("check the ledger: %w", err))
		case outdated:
			// A retry that the student's new dates overtook: the
			// registration with them sent its own.
			w.metrics.delivered(d.channel, relay.Outdated)
			w.log.Info("about dates the student has since been told otherwise; not sent", attrs...)
			w.record(ctx, d, redisstore.HistorySkipped, sent{reply: "the exam's dates changed before this could be sent; the new dates were sent instead"})
			return nil
		case already:
			w.alreadyDelivered(ctx, d)
			return nil
		}
	}

	start := time.Now()
	note, err := d.send()
	w.metrics.sendTime.WithLabelValues(d.channel).Observe(time.Since(start).Seconds())
	if err == nil {
		w.metrics.delivered(d.channel, relay.Sent)
		w.log.Info("delivered", attrs...)
		w.markDelivered(ctx, d, note)
		return nil
	}
	attrs = append(attrs, "err", err)
	outcome := relay.OutcomeOf(err)
	status := redisstore.HistoryRetrying
	switch {
	case outcome == relay.RateLimited:
		w.log.Warn("rate limited; waiting as asked", append(attrs, "retry_after", relay.RetryAfterOf(err).String())...)
		if relay.RetryAfterOf(err) < time.Minute {
			// A wait for the next slot is no news for the exams office.
			status = ""
		}
	case outcome == relay.Failed:
		w.log.Error("delivery failed for good; archived", attrs...)
		status = redisstore.HistoryFailed
	case d.first:
		w.log.Warn("delivery failed; the email queue will try again", attrs...)
	case w.lastAttempt(ctx):
		outcome = relay.Failed
		w.log.Error("delivery failed on its last attempt; archived", attrs...)
		status = redisstore.HistoryFailed
	default:
		w.log.Warn("delivery failed; will retry", attrs...)
	}
	w.metrics.delivered(d.channel, outcome)
	if status != "" {
		w.record(ctx, d, status, sent{reply: err.Error()})
	}
	return err
}

// alreadyDelivered notes a re-run of a delivery that was made: a task
// whose worker stopped after sending.
func (w *Worker) alreadyDelivered(ctx context.Context, d delivery) {
	w.metrics.delivered(d.channel, relay.AlreadySent)
	w.log.Warn("already delivered; not sending again", d.logAttrs()...)
	w.record(ctx, d, redisstore.HistorySkipped, sent{reply: "already delivered; not sent again"})
}

// delivered reads d's mark: in the student's ledger, or in the sent marks
// for a digest.
func (w *Worker) delivered(ctx context.Context, d delivery) (already, outdated bool, err error) {
	if d.mark == "" {
		already, err = w.store.Sent(ctx, d.sentKey)
		return already, false, err
	}
	return w.store.Delivered(ctx, d.reg, d.mark)
}

// markDelivered marks d delivered, so that no re-run sends it again, and
// records it in the history: for a student, in one round trip.
func (w *Worker) markDelivered(ctx context.Context, d delivery, note sent) {
	var markErr error
	switch {
	case d.mark == "":
		markErr = w.store.MarkSent(ctx, d.sentKey)
		w.record(ctx, d, redisstore.HistorySent, note)
	default:
		var recordErr error
		m := redisstore.Mark{Reg: d.reg, Deliveries: []string{d.mark}, FanOut: d.first, Digests: d.digests}
		e := w.historyEntry(d, redisstore.HistorySent, note)
		if markErr, recordErr = w.history.MarkAndRecord(ctx, m, e); recordErr != nil {
			w.notRecorded(e, recordErr)
		}
	}
	if markErr != nil {
		w.log.Error("delivered but could not record it; a re-run would send again", append(d.logAttrs(), "err", markErr)...)
	}
}

// record adds d's outcome to the history. The delivery stands whether or
// not it is recorded: a failure is logged, not returned.
func (w *Worker) record(ctx context.Context, d delivery, status string, note sent) {
	e := w.historyEntry(d, status, note)
	if err := w.history.Record(context.WithoutCancel(ctx), e); err != nil {
		w.notRecorded(e, err)
	}
}

// notRecorded logs an entry the history could not keep.
func (w *Worker) notRecorded(e redisstore.HistoryEntry, err error) {
	w.log.Error("could not record the delivery in the history", "registration", e.Registration, "err", err)
}

func (w *Worker) historyEntry(d delivery, status string, note sent) redisstore.HistoryEntry {
	e := redisstore.HistoryEntry{
		Time: w.now(), Channel: d.channel, Kind: d.kind, Status: status, Route: d.route.Name,
		Exam: d.reg.Exam.ObjectID, ExamName: d.reg.Exam.Name, MessageID: note.messageID, Detail: note.reply,
	}
	if d.digest != nil {
		e.Detail = fmt.Sprintf("%d students; %s", len(d.digest.Items), note.reply)
	} else {
		e.Registration, e.Email, e.User = d.regID(), d.reg.User.Email, d.reg.User.ID
	}
	return e
}

func taskID(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}
