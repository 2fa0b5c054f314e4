package tasks

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
)

func example(t testing.TB, name string) relay.Registration {
	t.Helper()
	body, err := os.ReadFile("../examples/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.DecodeRegistration(body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestEachChannelHasItsOwnTaskID(t *testing.T) {
	r := example(t, "registration.json")
	ids := map[string]bool{}
	for _, taskType := range []string{TypeRegistration, TypeEmail, TypeSlack, TypeSlackDigestItem} {
		id := TaskID(taskType, r)
		if ids[id] {
			t.Errorf("%s shares id %s with another channel", taskType, id)
		}
		ids[id] = true
		if again := TaskID(taskType, example(t, "registration.json")); again != id {
			t.Errorf("%s: the same body made ids %s and %s", taskType, id, again)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	r := example(t, "registration-dst.json")
	task, err := NewEmailTask(r, Options{MaxRetry: 3}, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRegistration(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	if back.ID() != r.ID() || back.User.CustomAttributes["extraTimeMinutes"] != json.Number("25") {
		t.Errorf("round trip changed the registration: %+v", back)
	}
	if _, err := ParseRegistration([]byte("{")); err == nil {
		t.Error("a broken payload decoded")
	}
}

func TestReminderIDsLeaveTheDatesOut(t *testing.T) {
	r := example(t, "registration.json")
	moved := r
	moved.Exam.Schedule.OpenDate = r.Exam.Schedule.OpenDate.Add(24 * time.Hour)
	if ReminderTaskID(r, relay.ExamOpens, time.Hour) != ReminderTaskID(moved, relay.ExamOpens, time.Hour) {
		t.Error("new dates changed the reminder's id: the old reminder would not be replaced")
	}
	if ReminderTaskID(r, relay.ExamOpens, time.Hour) == ReminderTaskID(r, relay.ExamCloses, time.Hour) ||
		ReminderTaskID(r, relay.ExamOpens, time.Hour) == ReminderTaskID(r, relay.ExamOpens, 24*time.Hour) {
		t.Error("two reminders of one registration share an id")
	}
}

func TestDigestGroupIsOnePerDestinationAndExam(t *testing.T) {
	a := example(t, "registration.json")
	b := a
	b.User.ID, b.User.Email = "usr_other", "other@example.edu"
	if DigestGroup("slack-1", a) != DigestGroup("slack-1", b) {
		t.Error("two students of one exam are in two digests")
	}
	if DigestGroup("slack-1", a) == DigestGroup("slack-2", a) {
		t.Error("two destinations share a digest")
	}
	moved := a
	moved.Exam.Schedule.OpenDate = a.Exam.Schedule.OpenDate.Add(time.Hour)
	if DigestGroup("slack-1", a) == DigestGroup("slack-1", moved) {
		t.Error("new dates joined the digest that shows the old ones")
	}
}

func TestDigestTaskSortsAndSkipsUnreadableItems(t *testing.T) {
	var items []*asynq.Task
	for _, name := range []string{"Zoë", "adam", "Béa"} {
		r := example(t, "registration.json")
		r.User.Name, r.User.Email = name, name+"@example.edu"
		item, err := NewDigestItemTask(relay.Destination{Channel: relay.Slack, Name: "slack-1"}, r, time.Now(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item)
	}
	// Not JSON, left out at once; JSON but not an item, left out when
	// the digest is read.
	items = append(items, asynq.NewTask(TypeSlackDigestItem, []byte("{")),
		asynq.NewTask(TypeSlackDigestItem, []byte(`{"registration":"Eve"}`)))
	task, err := NewDigestTask("digest:x", items, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDigest(task.Payload())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, item := range d.Items {
		names = append(names, item.Registration.User.Name)
	}
	if d.Group != "digest:x" || len(names) != 3 || names[0] != "adam" || names[2] != "Zoë" {
		t.Errorf("digest %s holds %v", d.Group, names)
	}
}

func TestEachStaffChannelHasItsOwnTasksAndQueue(t *testing.T) {
	r := example(t, "registration.json")
	slack, _ := NewAlertTask(relay.Slack, r, Options{})
	teams, _ := NewAlertTask(relay.Teams, r, Options{})
	if slack.Type() != TypeSlack || teams.Type() != TypeTeams || ChannelOf(teams.Type()) != relay.Teams {
		t.Errorf("alerts: %s and %s", slack.Type(), teams.Type())
	}
	item, _ := NewDigestItemTask(relay.Destination{Channel: relay.Teams, Name: "teams-1"}, r, time.Now(), Options{})
	digest, err := NewDigestTask("digest:x", []*asynq.Task{item}, Options{})
	if err != nil || item.Type() != TypeTeamsDigestItem || digest.Type() != TypeTeamsDigest {
		t.Errorf("a Teams digest item %s became %s (%v)", item.Type(), digest.Type(), err)
	}
	if _, ok := Queues[QueueTeams]; !ok {
		t.Error("no worker serves the Teams queue")
	}
}
