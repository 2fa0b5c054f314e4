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
	var items [][]byte
	for _, name := range []string{"Zoë", "adam", "Béa"} {
		r := example(t, "registration.json")
		r.User.Name, r.User.Email = name, name+"@example.edu"
		items = append(items, digestItem(t, r))
	}
	// Not JSON, left out at once; JSON but not an item, left out when
	// the digest is read.
	items = append(items, []byte("{"), []byte(`{"registration":"Eve"}`))
	task, err := NewDigestBatchTask(relay.Slack, "digest:x", "b1", items, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeSlackDigest {
		t.Errorf("a Slack digest is a %s", task.Type())
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

// Items asynq's groups held before the relay kept digests' items itself
// still become one digest, on their channel.
func TestAsynqGroupItemsStillMakeADigest(t *testing.T) {
	r := example(t, "registration.json")
	item := asynq.NewTask(TypeTeamsDigestItem, digestItem(t, r))
	digest, err := NewDigestTask("digest:x", []*asynq.Task{item, asynq.NewTask(TypeTeamsDigestItem, []byte("{"))}, Options{})
	if err != nil || digest.Type() != TypeTeamsDigest {
		t.Fatalf("a Teams digest item became %v (%v)", digest, err)
	}
	if d, err := ParseDigest(digest.Payload()); err != nil || len(d.Items) != 1 || d.Items[0].Registration.ID() != r.ID() {
		t.Errorf("digest %+v (%v)", d, err)
	}
}

// digestItem is r's line in a digest, as the fan-out stores it.
func digestItem(t testing.TB, r relay.Registration) []byte {
	t.Helper()
	item, err := json.Marshal(relay.DigestItem{Registration: r, Destination: "slack-1", ReceivedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return item
}

func TestEachStaffChannelHasItsOwnTasksAndQueue(t *testing.T) {
	r := example(t, "registration.json")
	slack, _ := NewAlertTask(relay.Slack, r, Options{})
	teams, _ := NewAlertTask(relay.Teams, r, Options{})
	if slack.Type() != TypeSlack || teams.Type() != TypeTeams || ChannelOf(teams.Type()) != relay.Teams {
		t.Errorf("alerts: %s and %s", slack.Type(), teams.Type())
	}
	digest, err := NewDigestBatchTask(relay.Teams, "digest:x", "b1", [][]byte{digestItem(t, r)}, Options{})
	if err != nil || digest.Type() != TypeTeamsDigest {
		t.Errorf("a Teams digest is %v (%v)", digest, err)
	}
}

func TestEveryQueueIsServedInOneLane(t *testing.T) {
	lanes := map[string]int{}
	for _, lane := range Lanes {
		for queue := range lane {
			lanes[queue]++
		}
	}
	for _, queue := range Queues {
		if lanes[queue] != 1 {
			t.Errorf("queue %s is served in %d lanes, want 1", queue, lanes[queue])
		}
	}
	if len(lanes) != len(Queues) {
		t.Errorf("lanes serve %d queues, Queues lists %d", len(lanes), len(Queues))
	}
}
