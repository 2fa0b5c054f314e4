package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
)

// ForgottenTasks says what Forget did in the queue.
type ForgottenTasks struct {
	// Deleted are the ids of the tasks removed, in any state.
	Deleted []string `json:"deleted"`
	// Requeued are digests for several students, queued again without
	// this one.
	Requeued []string `json:"requeued"`
	// Active are tasks being run at this moment, which cannot be removed:
	// forget again once they are done.
	Active []string `json:"active"`
}

// Forget removes from every queue, in every state, the tasks that hold
// the student with address: registrations, emails, reminders, alerts,
// digest items, and digests, which go back to the queue without the
// student when they are for others too.
func Forget(in *asynq.Inspector, queue Enqueuer, address string, o Options) (ForgottenTasks, error) {
	var f ForgottenTasks
	queues, err := in.Queues()
	if err != nil {
		return f, err
	}
	for _, q := range queues {
		infos, err := allTasks(in, q)
		if err != nil {
			return f, err
		}
		for _, info := range infos {
			if err := forgetIn(in, queue, info, address, o, &f); err != nil {
				return f, fmt.Errorf("task %s: %w", info.ID, err)
			}
		}
	}
	return f, nil
}

func forgetIn(in *asynq.Inspector, queue Enqueuer, info *asynq.TaskInfo, address string, o Options, f *ForgottenTasks) error {
	theirs := func(r relay.Registration) bool { return strings.EqualFold(r.User.Email, address) }
	var others *relay.Digest
	switch info.Type {
	case TypeSlackDigest, TypeTeamsDigest:
		d, err := ParseDigest(info.Payload)
		if err != nil {
			return nil
		}
		kept := relay.Digest{Group: d.Group}
		for _, item := range d.Items {
			if !theirs(item.Registration) {
				kept.Items = append(kept.Items, item)
			}
		}
		if len(kept.Items) == len(d.Items) {
			return nil
		}
		if len(kept.Items) > 0 && info.State != asynq.TaskStateCompleted {
			others = &kept
		}
	case TypeReminder:
		rem, err := ParseReminder(info.Payload)
		if err != nil || !theirs(rem.Registration) {
			return nil
		}
	case TypeSlackDigestItem, TypeTeamsDigestItem:
		item, err := decode[relay.DigestItem](info.Payload)
		if err != nil || !theirs(item.Registration) {
			return nil
		}
	default:
		reg, err := ParseRegistration(info.Payload)
		if err != nil || !theirs(reg) {
			return nil
		}
	}
	if info.State == asynq.TaskStateActive {
		f.Active = append(f.Active, info.ID)
		return nil
	}
	if err := in.DeleteTask(info.Queue, info.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return err
	}
	f.Deleted = append(f.Deleted, info.ID)
	if others == nil {
		return nil
	}
	task, err := newDigestTask(ChannelOf(info.Type), *others, o)
	if err != nil {
		return err
	}
	requeued, err := queue.EnqueueContext(context.Background(), task)
	if err != nil {
		return fmt.Errorf("queue the digest again without the student: %w", err)
	}
	f.Requeued = append(f.Requeued, requeued.ID)
	return nil
}

// allTasks lists every task of queue, in every state.
func allTasks(in *asynq.Inspector, queue string) ([]*asynq.TaskInfo, error) {
	lists := []lister{
		in.ListPendingTasks, in.ListActiveTasks, in.ListScheduledTasks, in.ListRetryTasks, in.ListArchivedTasks, in.ListCompletedTasks,
	}
	groups, err := in.Groups(queue)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		lists = append(lists, func(q string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error) {
			return in.ListAggregatingTasks(q, g.Group, opts...)
		})
	}
	var out []*asynq.TaskInfo
	for _, list := range lists {
		infos, err := listAll(list, queue)
		if err != nil {
			return nil, err
		}
		out = append(out, infos...)
	}
	return out, nil
}
