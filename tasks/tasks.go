// Package tasks is the queue's vocabulary: task type names, the payload,
// constructors with their asynq options, and the deterministic ids that
// make a repeated webhook send nothing new.
package tasks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// Task types. Each is also the prefix of its tasks' ids.
const (
	TypeRegistration = "registration:received"
	TypeEmail        = "email:confirmation"
	TypeSlack        = "slack:alert"
)

// Queues, with the weight a worker gives each. Fanning registrations out
// first keeps both channels fed during a burst.
var Queues = map[string]int{
	QueueRegistrations: 3,
	QueueEmail:         2,
	QueueSlack:         1,
}

const (
	QueueRegistrations = "registrations"
	QueueEmail         = "email"
	QueueSlack         = "slack"
)

var reflectString = reflect.TypeOf("")

// Options are the settings every task carries.
type Options struct {
	// Retention keeps a completed task, and so blocks its id, for the
	// dedup window.
	Retention time.Duration
	MaxRetry  int
}

// ID identifies a registration: portal, student, exam, user group and
// schedule. The same webhook twice has the same ID; new dates make a new
// one, because new dates are news for the student.
func (r Registration) ID() string {
	closes := ""
	if r.Exam.Schedule.CloseDate != nil {
		closes = r.Exam.Schedule.CloseDate.UTC().Format(time.RFC3339Nano)
	}
	return Digest(r.identity(), r.Exam.Schedule.OpenDate.UTC().Format(time.RFC3339Nano), closes)
}

// SubjectID identifies who is registered for what, whatever the dates: a
// calendar event keeps it as its UID so a moved exam moves in the calendar.
func (r Registration) SubjectID() string {
	return Digest(r.identity())
}

// identity includes the address so that two students without a user id
// never share one.
func (r Registration) identity() string {
	return strings.Join([]string{r.Portal.ID, r.User.ID, strings.ToLower(r.User.Email), r.Exam.ObjectID, r.UserGroup.ObjectID}, "\x00")
}

// Digest is the hash ids are made of: 32 hex digits.
func Digest(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}

// NewRegistrationTask is what the receiver enqueues: one per registration,
// fanned out by the worker.
func NewRegistrationTask(r Registration, o Options) (*asynq.Task, error) {
	return newTask(TypeRegistration, QueueRegistrations, r, o)
}

// NewEmailTask sends the student's confirmation.
func NewEmailTask(r Registration, o Options) (*asynq.Task, error) {
	return newTask(TypeEmail, QueueEmail, r, o)
}

// NewSlackTask tells staff.
func NewSlackTask(r Registration, o Options) (*asynq.Task, error) {
	return newTask(TypeSlack, QueueSlack, r, o)
}

// TaskID is the id a task of that type gets for r.
func TaskID(taskType string, r Registration) string {
	return taskType + ":" + r.ID()
}

func newTask(taskType, queue string, r Registration, o Options) (*asynq.Task, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", taskType, err)
	}
	return asynq.NewTask(taskType, payload,
		asynq.TaskID(TaskID(taskType, r)),
		asynq.Queue(queue),
		asynq.Retention(o.Retention),
		asynq.MaxRetry(o.MaxRetry),
	), nil
}

// DecodePayload reads a task's payload. A payload that cannot be read will
// never be readable: the caller archives the task.
func DecodePayload(payload []byte) (Registration, error) {
	return decode[Registration](payload)
}

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
