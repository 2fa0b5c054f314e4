package tasks

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
)

// FailedTask is an archived task as `relay tasks` shows it: which
// delivery, for whom, why it failed and when.
type FailedTask struct {
	ID        string    `json:"id"`
	Queue     string    `json:"queue"`
	Channel   string    `json:"channel"`
	UserID    string    `json:"userId"`
	Email     string    `json:"email"` // masked
	ExamID    string    `json:"examId"`
	ExamName  string    `json:"examName"`
	LastError string    `json:"lastError"`
	FailedAt  time.Time `json:"failedAt"`
	Retried   int       `json:"retried"`
}

// Failed lists the archived tasks of every queue, newest failure first.
func Failed(in *asynq.Inspector) ([]FailedTask, error) {
	var out []FailedTask
	for _, queue := range Queues {
		infos, err := listAll(in.ListArchivedTasks, queue)
		if err != nil {
			return nil, fmt.Errorf("list archived tasks in %s: %w", queue, err)
		}
		for _, info := range infos {
			out = append(out, failedTask(info))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].FailedAt.After(out[j].FailedAt) })
	return out, nil
}

func failedTask(info *asynq.TaskInfo) FailedTask {
	f := FailedTask{
		ID: info.ID, Queue: info.Queue, Channel: channelOf(info.Type),
		LastError: info.LastErr, FailedAt: info.LastFailedAt, Retried: info.Retried,
	}
	if info.Type == TypeSlackDigest || info.Type == TypeTeamsDigest {
		if b, err := ParseDigest(info.Payload); err == nil && len(b.Items) > 0 {
			exam := b.Items[0].Registration.Exam
			f.UserID, f.ExamID, f.ExamName = fmt.Sprintf("(%d students)", len(b.Items)), exam.ObjectID, exam.Name
		}
		return f
	}
	if reg, err := ParseRegistration(info.Payload); err == nil {
		f.UserID, f.Email, f.ExamID, f.ExamName = reg.User.ID, relay.MaskEmail(reg.User.Email), reg.Exam.ObjectID, reg.Exam.Name
	}
	return f
}

func channelOf(taskType string) string {
	switch taskType {
	case TypeEmail, TypeReminder:
		return "email"
	case TypeSlack, TypeTeams:
		return string(ChannelOf(taskType))
	case TypeSlackDigest, TypeSlackDigestItem, TypeTeamsDigest, TypeTeamsDigestItem:
		return string(ChannelOf(taskType)) + " digest"
	case TypeRegistration:
		return "fan-out"
	default:
		return taskType
	}
}

// RetryFailed runs an archived task again, now.
func RetryFailed(in *asynq.Inspector, id string) error {
	queue, err := archivedQueue(in, id)
	if err != nil {
		return err
	}
	return in.RunTask(queue, id)
}

// RetryAllFailed runs every archived task again and says how many.
func RetryAllFailed(in *asynq.Inspector) (int, error) {
	existing, err := in.Queues()
	if err != nil {
		return 0, err
	}
	total := 0
	for _, queue := range Queues {
		// asynq reports a queue never used (Teams, when it is off) with an
		// error of its own here, not ErrQueueNotFound.
		if !slices.Contains(existing, queue) {
			continue
		}
		n, err := in.RunAllArchivedTasks(queue)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// DeleteFailed forgets an archived task; its registration can then be
// delivered again by a new webhook.
func DeleteFailed(in *asynq.Inspector, id string) error {
	queue, err := archivedQueue(in, id)
	if err != nil {
		return err
	}
	return in.DeleteTask(queue, id)
}

func archivedQueue(in *asynq.Inspector, id string) (string, error) {
	for _, queue := range Queues {
		info, err := in.GetTaskInfo(queue, id)
		if err != nil {
			continue
		}
		if info.State != asynq.TaskStateArchived {
			return "", fmt.Errorf("task %s is %s, not failed", id, strings.ToLower(info.State.String()))
		}
		return queue, nil
	}
	return "", fmt.Errorf("no failed task %s (relay tasks lists them)", id)
}

// ScheduledReminder is a reminder waiting for its time, as `relay tasks
// -scheduled` shows it.
type ScheduledReminder struct {
	ID       string    `json:"id"`
	UserID   string    `json:"userId"`
	Email    string    `json:"email"` // masked
	ExamID   string    `json:"examId"`
	ExamName string    `json:"examName"`
	Event    string    `json:"event"` // open or close
	Before   string    `json:"before"`
	SendAt   time.Time `json:"sendAt"`
}

// Scheduled lists the reminders waiting to be sent, soonest first.
func Scheduled(in *asynq.Inspector) ([]ScheduledReminder, error) {
	var out []ScheduledReminder
	infos, err := listAll(in.ListScheduledTasks, QueueEmail)
	if err != nil {
		return nil, fmt.Errorf("list scheduled tasks: %w", err)
	}
	for _, info := range infos {
		rem, err := ParseReminder(info.Payload)
		if info.Type != TypeReminder || err != nil {
			continue
		}
		u, e := rem.Registration.User, rem.Registration.Exam
		out = append(out, ScheduledReminder{ID: info.ID, UserID: u.ID, Email: relay.MaskEmail(u.Email), ExamID: e.ObjectID,
			ExamName: e.Name, Event: string(rem.Event), Before: rem.Before.String(), SendAt: info.NextProcessAt})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SendAt.Before(out[j].SendAt) })
	return out, nil
}

// lister is one of asynq.Inspector's List…Tasks methods.
type lister func(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)

// listAll reads every page list gives for queue; a queue never used has
// no tasks.
func listAll(list lister, queue string) ([]*asynq.TaskInfo, error) {
	const pageSize = 500
	var out []*asynq.TaskInfo
	for page := 1; ; page++ {
		infos, err := list(queue, asynq.PageSize(pageSize), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, infos...)
		if len(infos) < pageSize {
			return out, nil
		}
	}
}
