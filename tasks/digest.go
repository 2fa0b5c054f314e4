package tasks

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Digest tasks: each registration becomes a digest item in its exam's
// asynq group; asynq's aggregator turns a group into one digest task.
const (
	TypeSlackDigestItem = "slack:digest-item"
	TypeSlackDigest     = "slack:digest"
)

// DigestItem is one registration waiting in its exam's group.
type DigestItem struct {
	Registration Registration `json:"registration"`
	// Destination is the Slack destination the item was gathered for.
	Destination string `json:"destination,omitempty"`
	// ReceivedAt is when the relay took it, for the time-to-post metric.
	ReceivedAt time.Time `json:"receivedAt"`
}

// DigestBatch is the payload of an aggregated digest task.
type DigestBatch struct {
	Group string       `json:"group"`
	Items []DigestItem `json:"items"`
}

// DigestGroup is the asynq group of a registration: one per Slack
// destination and exam (with its schedule, which the message shows).
func DigestGroup(destination string, r Registration) string {
	closes := ""
	if r.Exam.Schedule.CloseDate != nil {
		closes = r.Exam.Schedule.CloseDate.UTC().Format(time.RFC3339)
	}
	return "digest:" + Digest(destination, r.Portal.ID, r.Exam.ObjectID, r.Exam.Schedule.OpenDate.UTC().Format(time.RFC3339), closes)
}

// NewDigestItemTask adds r to its exam's digest for destination.
func NewDigestItemTask(r Registration, destination string, receivedAt time.Time, o Options) (*asynq.Task, error) {
	payload, err := json.Marshal(DigestItem{Registration: r, Destination: destination, ReceivedAt: receivedAt})
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", TypeSlackDigestItem, err)
	}
	return asynq.NewTask(TypeSlackDigestItem, payload,
		asynq.TaskID(TaskID(TypeSlackDigestItem, r)),
		asynq.Queue(QueueSlack),
		asynq.Group(DigestGroup(destination, r)),
		asynq.MaxRetry(o.MaxRetry),
	), nil
}

// NewDigestTask gathers the items asynq aggregated for group. Items that
// cannot be read are left out: they cannot become readable by waiting.
func NewDigestTask(group string, items []*asynq.Task, o Options) (*asynq.Task, error) {
	batch := DigestBatch{Group: group}
	for _, t := range items {
		if item, err := decode[DigestItem](t.Payload()); err == nil {
			batch.Items = append(batch.Items, item)
		}
	}
	SortDigestItems(batch.Items)
	payload, err := json.Marshal(batch)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", TypeSlackDigest, err)
	}
	return asynq.NewTask(TypeSlackDigest, payload, asynq.Queue(QueueSlack), asynq.MaxRetry(o.MaxRetry), asynq.Retention(o.Retention)), nil
}

// SortDigestItems orders items by student name, then address: asynq does
// not keep the order, and people read lists sorted.
func SortDigestItems(items []DigestItem) {
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i].Registration.User, items[j].Registration.User
		if !strings.EqualFold(a.Name, b.Name) {
			return strings.ToLower(a.Name) < strings.ToLower(b.Name)
		}
		return a.Email < b.Email
	})
}

// ID identifies a digest by the registrations in it, so a re-run of the
// same digest task is recognised.
func (b DigestBatch) ID() string {
	ids := make([]string, len(b.Items))
	for i, item := range b.Items {
		ids[i] = item.Registration.ID()
	}
	sort.Strings(ids)
	return Digest(ids...)
}

// DecodeDigestBatch reads a digest task's payload.
func DecodeDigestBatch(payload []byte) (DigestBatch, error) { return decode[DigestBatch](payload) }
