// Package tasks is the queue's vocabulary: task type names and queues,
// payload encoding, constructors that carry the queue's rules (ids,
// retention, retries), and the deterministic ids that make a repeated
// webhook send nothing new. The payloads are the domain's types.
package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
)

// Task types. Each is also the prefix of its tasks' ids. They are stored
// in Redis: renaming one orphans the tasks queued under the old name.
const (
	TypeRegistration = "registration:received"
	TypeEmail        = "email:confirmation"
	TypeReminder     = "email:reminder"
	TypeSlack        = "slack:alert"
	// TypeSlackDigestItem was one registration waiting in its exam's asynq
	// group, before the relay kept digests' items itself; asynq's
	// aggregator still turns such a group into one TypeSlackDigest.
	TypeSlackDigestItem = "slack:digest-item"
	TypeSlackDigest     = "slack:digest"
	TypeTeams           = "teams:alert"
	TypeTeamsDigestItem = "teams:digest-item"
	TypeTeamsDigest     = "teams:digest"
)

const (
	QueueRegistrations = "registrations"
	QueueEmail         = "email"
	QueueSlack         = "slack"
	QueueTeams         = "teams"
)

// Queues are every queue the relay's tasks wait in.
var Queues = []string{QueueRegistrations, QueueEmail, QueueSlack, QueueTeams}

// Lanes split the queues between a worker's asynq servers, each with task
// slots of its own, and weigh the queues within a lane. asynq tries a
// server's queues in a weighted random order, one Lua script each, until
// one has a task: in a lane of its own, each registration a burst fans
// out costs one try, where one server for every queue (weights 10:2:1:1)
// tried 1.35 per task. And a burst's fan-outs never hold up the other
// lane: email retries and reminders, staff alerts and digests. Within it,
// the email queue comes first one turn in two when every queue has
// tasks.
var Lanes = []map[string]int{
	{QueueRegistrations: 1},
	{QueueEmail: 2, QueueSlack: 1, QueueTeams: 1},
}

// staffTasks are the task types and queue of each channel staff are told
// on.
var staffTasks = map[relay.Channel]struct{ alert, item, digest, queue string }{
	relay.Slack: {TypeSlack, TypeSlackDigestItem, TypeSlackDigest, QueueSlack},
	relay.Teams: {TypeTeams, TypeTeamsDigestItem, TypeTeamsDigest, QueueTeams},
}

// ChannelOf is the staff channel a task of taskType tells, or "".
func ChannelOf(taskType string) relay.Channel {
	for channel, t := range staffTasks {
		if taskType == t.alert || taskType == t.item || taskType == t.digest {
			return channel
		}
	}
	return ""
}

// Enqueuer stores a task in the queue; *asynq.Client is one.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Options are the settings every task carries. No task is kept once
// done (asynq's Retention): a repeat is recognised by the student's ledger
// in Redis (redisstore), a few hundred bytes, not by a whole task record
// with the registration in it.
type Options struct {
	// MaxRetry is how often a task may fail before it is archived. Waits
	// for a rate limit are not failures.
	MaxRetry int
}

// maxRetry is one more than the relay allows: asynq archives a task that
// returns any error once its count is reached, before asking whether the
// error was a failure at all, so a task waiting for a rate limit on its
// last attempt would be archived. The worker archives a task itself after
// MaxRetry failures.
func (o Options) maxRetry() asynq.Option { return asynq.MaxRetry(o.MaxRetry + 1) }

// NewRegistrationTask is what the receiver enqueues: one per registration,
// fanned out by the worker.
func NewRegistrationTask(r relay.Registration, o Options) (*asynq.Task, error) {
	return newTask(TypeRegistration, QueueRegistrations, r, o)
}

// NewEmailTask sends the student's confirmation when the fan-out, which
// tries first, could not. tried is how many attempts it made (0 when it
// only had to wait its turn): the task makes the rest, on the rest of the
// retry schedule. refused, when set, is why the attempt failed for good:
// the task is archived with it, unsent, for an operator to run again
// after a fix.
func NewEmailTask(r relay.Registration, o Options, tried int, refused string) (*asynq.Task, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", TypeEmail, err)
	}
	headers := map[string]string{}
	if tried > 0 {
		headers[headerTried] = strconv.Itoa(tried)
	}
	if refused != "" {
		headers[headerRefused] = refused
	}
	return asynq.NewTaskWithHeaders(TypeEmail, payload, headers,
		asynq.TaskID(TaskID(TypeEmail, r)),
		asynq.Queue(QueueEmail),
		asynq.MaxRetry(o.MaxRetry+1-min(tried, o.MaxRetry)),
	), nil
}

// The headers of NewEmailTask.
const (
	headerTried   = "tried"
	headerRefused = "refused"
)

// Tried is how many attempts were made at t's delivery before t.
func Tried(t *asynq.Task) int {
	n, _ := strconv.Atoi(t.Headers()[headerTried])
	return n
}

// Refused is why an attempt before t failed for good, or "".
func Refused(t *asynq.Task) string { return t.Headers()[headerRefused] }

// NewSlackTask tells staff on Slack of one registration.
func NewSlackTask(r relay.Registration, o Options) (*asynq.Task, error) {
	return NewAlertTask(relay.Slack, r, o)
}

// NewAlertTask tells staff on channel of one registration.
func NewAlertTask(channel relay.Channel, r relay.Registration, o Options) (*asynq.Task, error) {
	t := staffTasks[channel]
	return newTask(t.alert, t.queue, r, o)
}

func newTask(taskType, queue string, r relay.Registration, o Options) (*asynq.Task, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", taskType, err)
	}
	return asynq.NewTask(taskType, payload,
		asynq.TaskID(TaskID(taskType, r)),
		asynq.Queue(queue),
		o.maxRetry(),
	), nil
}

// TaskID is the id a task of that type gets for r.
func TaskID(taskType string, r relay.Registration) string {
	return taskType + ":" + r.ID()
}

// WebhookTaskID is the id of a registration task from a signed sender,
// which retries with the same webhook-id: that is the repeat to recognise.
// The email and Slack tasks still carry the registration's own id, so a
// new webhook-id sends nothing twice.
func WebhookTaskID(webhookID string) string {
	return TypeRegistration + ":webhook-id:" + relay.Hash(webhookID)
}

// DigestGroup names a registration's digest: one per destination and
// exam (with its schedule, which the message shows). It was the asynq
// group's name, and still is for items queued before.
func DigestGroup(destination string, r relay.Registration) string {
	closes := ""
	if r.Exam.Schedule.CloseDate != nil {
		closes = r.Exam.Schedule.CloseDate.UTC().Format(time.RFC3339)
	}
	return "digest:" + relay.Hash(destination, r.Portal.ID, r.Exam.ObjectID, r.Exam.Schedule.OpenDate.UTC().Format(time.RFC3339), closes)
}

// NewDigestTask gathers the items asynq aggregated for group, queued
// before the relay kept digests' items itself (redisstore.DigestBatch);
// asynq still aggregates those.
func NewDigestTask(group string, items []*asynq.Task, o Options) (*asynq.Task, error) {
	channel := relay.Slack
	payloads := make([][]byte, len(items))
	for i, t := range items {
		payloads[i], channel = t.Payload(), ChannelOf(t.Type())
	}
	payload, err := digestPayload(group, payloads)
	if err != nil {
		return nil, err
	}
	return digestTask(channel, payload, o), nil
}

// NewDigestBatchTask is the digest of a batch of group's items on
// channel. Its id is the batch's: a batch handed over twice is queued
// once, and posted once (the sent marks keep the id).
func NewDigestBatchTask(channel relay.Channel, group, batch string, items [][]byte, o Options) (*asynq.Task, error) {
	payload, err := digestPayload(group, items)
	if err != nil {
		return nil, err
	}
	return digestTask(channel, payload, o, asynq.TaskID(staffTasks[channel].digest+":"+batch)), nil
}

// digestPayload is a digest of group's items. An item's JSON goes into
// the digest's as it is, not decoded and encoded again: a digest of
// hundreds of students is made as often as it is sent. Items that are not
// JSON are left out here, and items that do not read as one when it is
// sent (ParseDigest): waiting will not make them readable.
func digestPayload(group string, items [][]byte) ([]byte, error) {
	name, err := json.Marshal(group)
	if err != nil {
		return nil, fmt.Errorf("encode digest group: %w", err)
	}
	size := len(name) + 32
	for _, item := range items {
		size += len(item) + 1
	}
	payload := bytes.NewBuffer(make([]byte, 0, size))
	payload.WriteString(`{"group":`)
	payload.Write(name)
	payload.WriteString(`,"items":[`)
	n := 0
	for _, item := range items {
		if !json.Valid(item) {
			continue
		}
		if n > 0 {
			payload.WriteByte(',')
		}
		payload.Write(item)
		n++
	}
	payload.WriteString(`]}`)
	return payload.Bytes(), nil
}

func newDigestTask(channel relay.Channel, d relay.Digest, o Options) (*asynq.Task, error) {
	payload, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", staffTasks[channel].digest, err)
	}
	return digestTask(channel, payload, o), nil
}

// digestTask is a digest on channel, whoever made its payload.
func digestTask(channel relay.Channel, payload []byte, o Options, opts ...asynq.Option) *asynq.Task {
	t := staffTasks[channel]
	return asynq.NewTask(t.digest, payload, append([]asynq.Option{asynq.Queue(t.queue), o.maxRetry()}, opts...)...)
}

// NewReminderTask holds rem until rem.At. Once sent, its id is free for a
// reminder about new dates.
func NewReminderTask(rem relay.Reminder, o Options) (*asynq.Task, error) {
	payload, err := json.Marshal(rem)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", TypeReminder, err)
	}
	return asynq.NewTask(TypeReminder, payload,
		asynq.TaskID(ReminderTaskID(rem.Registration, rem.Event, rem.Before)),
		asynq.Queue(QueueEmail),
		asynq.ProcessAt(rem.At),
		o.maxRetry(),
	), nil
}

// ReminderTaskID leaves the dates out: when Synap sends the registration
// again with new dates, the new reminder has the old one's id and replaces
// it.
func ReminderTaskID(r relay.Registration, event relay.Event, before time.Duration) string {
	return TypeReminder + ":" + relay.Hash(r.SubjectID(), string(event), before.String())
}

// ParseRegistration reads the payload of a registration, email or Slack
// task. A payload that cannot be read never will be: the caller archives
// the task.
func ParseRegistration(payload []byte) (relay.Registration, error) {
	return decode[relay.Registration](payload)
}

// ParseDigest reads a digest task's payload, its items sorted. An item
// that does not read as one is left out, not the whole digest.
func ParseDigest(payload []byte) (relay.Digest, error) {
	d, err := decode[relay.Digest](payload)
	if err != nil {
		var raw struct {
			Group string            `json:"group"`
			Items []json.RawMessage `json:"items"`
		}
		if json.Unmarshal(payload, &raw) != nil {
			return d, err
		}
		d = relay.Digest{Group: raw.Group}
		for _, b := range raw.Items {
			if item, err := decode[relay.DigestItem](b); err == nil {
				d.Items = append(d.Items, item)
			}
		}
	}
	relay.SortDigestItems(d.Items)
	return d, nil
}

// ParseReminder reads a reminder task's payload.
func ParseReminder(payload []byte) (relay.Reminder, error) { return decode[relay.Reminder](payload) }

// decode reads any task payload; numbers in custom attributes stay
// json.Number so they print as Synap sent them.
func decode[T any](payload []byte) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("decode task payload: %w", err)
	}
	return v, nil
}
