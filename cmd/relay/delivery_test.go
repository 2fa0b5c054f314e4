package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

func TestRegistrationBecomesOneEmailAndOneSlackMessage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := readExample(t, "registration.json")
	if code, resp := h.post(body); code != http.StatusAccepted {
		t.Fatalf("POST = %d %s", code, resp)
	}
	msgs := h.smtp.WaitFor(t, 1, 10*time.Second)
	if len(msgs[0].To) != 1 || msgs[0].To[0] != "jonas.becker@example.edu" || msgs[0].From != "exams@example.edu" {
		t.Errorf("envelope from %q to %v", msgs[0].From, msgs[0].To)
	}
	e := relaytest.ParseEmail(t, msgs[0].Data)
	if e.Subject != "You are registered for Organic Chemistry II — Final" {
		t.Errorf("subject %q", e.Subject)
	}
	// The student's timezone attribute says Europe/Berlin, on CET in December.
	for _, want := range []string{"Monday, 14 December 2026, 10:00 CET", "Monday, 14 December 2026, 12:30 CET", "https://exams.example.edu/exams/exm_7Hq2Lm"} {
		if !strings.Contains(e.Text, want) || !strings.Contains(e.HTML, want) {
			t.Errorf("text or HTML lacks %q:\n%s\n%s", want, e.Text, e.HTML)
		}
	}
	reg := decodeBody(t, body)
	for _, want := range []string{"BEGIN:VEVENT\r\n", "UID:" + reg.SubjectID() + "@exam-relay\r\n", "DTSTART:20261214T090000Z\r\n", "DTEND:20261214T113000Z\r\n", "URL:https://exams.example.edu/exams/exm_7Hq2Lm\r\n"} {
		if !strings.Contains(e.Calendar, want) {
			t.Errorf("calendar lacks %q:\n%s", want, e.Calendar)
		}
	}
	if got := strings.Join(e.ContentTypes, ","); got != "text/plain,text/html,text/calendar" {
		t.Errorf("parts %s", got)
	}

	posts := h.slack.WaitFor(t, 1, 10*time.Second)
	var sent struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct {
				Type     string `json:"type"`
				Text     string `json:"text"`
				Verbatim bool   `json:"verbatim"`
			} `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(posts[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sent.Text, "Organic Chemistry II — Final") || len(sent.Blocks) != 1 || !sent.Blocks[0].Text.Verbatim {
		t.Errorf("slack message %s", posts[0].Body)
	}
}

func TestPermanentSMTPFailureIsArchivedAtOnceAndSlackStillPosts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.smtp.SetRcptHook(func(string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	})
	body := readExample(t, "registration.json")
	h.post(body)
	reg := decodeBody(t, body)
	info := h.waitForTask(tasks.QueueEmail, tasks.TaskID(tasks.TypeEmail, reg), asynq.TaskStateArchived, 10*time.Second)
	if !strings.Contains(info.LastErr, "550") || info.Retried != 0 {
		t.Errorf("archived with %q after %d retries", info.LastErr, info.Retried)
	}
	if n := h.smtp.Rejected(); n != 1 {
		t.Errorf("%d attempts at the SMTP server, want 1", n)
	}
	if posts := h.slack.WaitFor(t, 1, 10*time.Second); len(posts) != 1 {
		t.Errorf("%d Slack posts", len(posts))
	}
}

func TestTemporarySMTPFailureIsRetriedSoon(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	refused := 0
	h.smtp.SetRcptHook(func(string) *smtp.SMTPError {
		if refused == 0 {
			refused++
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	})
	body := readExample(t, "registration.json")
	h.post(body)
	h.smtp.WaitFor(t, 1, 20*time.Second)
	h.waitIdle(10 * time.Second)
	// The fan-out's attempt was refused; the email queue's first took it.
	if h.smtp.Count() != 1 || h.smtp.Rejected() != 1 {
		t.Errorf("delivered %d, refused %d; want 1 and 1", h.smtp.Count(), h.smtp.Rejected())
	}
}

func TestSlackRateLimitWaitsRetryAfterWithoutSpendingAnAttempt(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const retryAfter = 2 * time.Second
	h.slack.RateLimit(1, retryAfter)
	body := readExample(t, "registration.json")
	start := time.Now()
	h.post(body)
	posts := h.slack.WaitFor(t, 1, 15*time.Second)
	// The 429 came after start, so the post must come at least
	// Retry-After after start.
	if waited := posts[0].At.Sub(start); waited < retryAfter {
		t.Errorf("posted %v after the first attempt began, Slack asked for %v", waited, retryAfter)
	}
	h.waitIdle(10 * time.Second)
	if spent := h.attemptsSpent(tasks.QueueSlack); spent != 0 {
		t.Errorf("the rate limit spent %d attempts", spent)
	}
	if n := h.slack.Attempts(); n != 2 {
		t.Errorf("%d attempts at Slack, want 2", n)
	}
	if posts := h.slack.Posts(); len(posts) != 1 {
		t.Errorf("%d posts, want 1", len(posts))
	}
}

func TestSlackWebhookGoneIsArchivedAndEmailStillSent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.slack.FailWith(1, http.StatusNotFound)
	body := readExample(t, "registration.json")
	h.post(body)
	info := h.waitForTask(tasks.QueueSlack, tasks.TaskID(tasks.TypeSlack, decodeBody(t, body)), asynq.TaskStateArchived, 10*time.Second)
	if !strings.Contains(info.LastErr, "404") {
		t.Errorf("archived with %q", info.LastErr)
	}
	h.smtp.WaitFor(t, 1, 10*time.Second)
	if n := h.slack.Attempts(); n != 1 {
		t.Errorf("%d attempts at Slack, want 1", n)
	}
}

func TestHostileNamesReachSlackAsText(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := strings.Replace(string(readExample(t, "registration.json")), `"Jonas Becker"`, `"<!channel> <@U0123> <https://evil.example|click me> & Co"`, 1)
	h.post([]byte(body))
	posts := h.slack.WaitFor(t, 1, 10*time.Second)
	var sent struct {
		Text   string `json:"text"`
		Blocks []struct {
			Text struct{ Text string } `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(posts[0].Body, &sent); err != nil || len(sent.Blocks) != 1 {
		t.Fatalf("body %s (%v)", posts[0].Body, err)
	}
	for _, text := range []string{sent.Text, sent.Blocks[0].Text.Text} {
		for _, bad := range []string{"<!channel>", "<@U0123>", "<https://evil.example", " & Co"} {
			if strings.Contains(text, bad) {
				t.Errorf("Slack text carries %q: %s", bad, text)
			}
		}
		if !strings.Contains(text, "&lt;!channel&gt;") {
			t.Errorf("the name is not shown escaped: %s", text)
		}
	}
}

func TestTaskRunAgainAfterSendingSendsNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	body := readExample(t, "registration.json")
	h.post(body)
	h.smtp.WaitFor(t, 1, 10*time.Second)
	h.slack.WaitFor(t, 1, 10*time.Second)
	h.waitIdle(10 * time.Second)
	reg := decodeBody(t, body)

	// What asynq's lease recovery does when a worker dies after the SMTP
	// server took the message but before the task was marked done: the
	// same task runs again. The fan-out sent the email; an email task may
	// also have been handed the confirmation.
	client := asynq.NewClientFromRedisClient(h.redis.Client())
	fanOut, _ := tasks.NewRegistrationTask(reg, tasks.Options{MaxRetry: 3})
	email, _ := tasks.NewEmailTask(reg, tasks.Options{MaxRetry: 3}, 0, "")
	alert, _ := tasks.NewSlackTask(reg, tasks.Options{MaxRetry: 3})
	for _, task := range []*asynq.Task{fanOut, email, alert} {
		info, err := client.Enqueue(task)
		if err != nil {
			t.Fatal(err)
		}
		h.waitGone(info.Queue, info.ID, 10*time.Second)
	}
	h.waitIdle(10 * time.Second)
	if n := h.smtp.Count(); n != 1 {
		t.Errorf("%d emails after the re-runs, want 1", n)
	}
	if n := len(h.slack.Posts()); n != 1 {
		t.Errorf("%d Slack posts after the re-runs, want 1", n)
	}
}

func TestUnreadablePayloadIsArchivedNotRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	client := asynq.NewClientFromRedisClient(h.redis.Client())
	for _, taskType := range []string{tasks.TypeRegistration, tasks.TypeEmail, tasks.TypeSlack} {
		id := taskType + ":broken"
		queue := map[string]string{tasks.TypeRegistration: tasks.QueueRegistrations, tasks.TypeEmail: tasks.QueueEmail, tasks.TypeSlack: tasks.QueueSlack}[taskType]
		if _, err := client.Enqueue(asynq.NewTask(taskType, []byte(`{"user":`), asynq.TaskID(id), asynq.Queue(queue), asynq.MaxRetry(5))); err != nil {
			t.Fatal(err)
		}
		info := h.waitForTask(queue, id, asynq.TaskStateArchived, 10*time.Second)
		if info.Retried != 0 || !strings.Contains(info.LastErr, "decode task payload") {
			t.Errorf("%s: archived after %d retries with %q", taskType, info.Retried, info.LastErr)
		}
	}
	if h.smtp.Count() != 0 || len(h.slack.Posts()) != 0 {
		t.Error("a broken task sent something")
	}
}

// Fan-outs and staff posts run in lanes of their own (tasks.Lanes): a
// mail server that holds every fan-out's slot does not hold up the Slack
// alerts those fan-outs queued.
func TestStaffAlertsPostWhileEveryFanOutWaitsForTheMailServer(t *testing.T) {
	t.Parallel()
	const students = 2 // the fan-out lane's slots, and the pool's connections
	h := newHarness(t, withConfig(func(c *config.Config) {
		c.Worker.Concurrency, c.SMTP.PoolSize = students, students
	}))
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // before the harness stops: a held session would hold it up
	h.smtp.SetRcptHook(func(string) *smtp.SMTPError {
		<-release
		return nil
	})
	for i := range students {
		if code, resp := h.post(registrationFor(i, 1)); code != http.StatusAccepted {
			t.Fatalf("POST = %d %s", code, resp)
		}
	}
	// Well inside the 30 s the relay waits for an SMTP reply: one lane
	// for every queue would post nothing until the sends gave up.
	h.slack.WaitFor(t, students, 20*time.Second)
	if n := h.smtp.Count(); n != 0 {
		t.Fatalf("%d emails arrived while the mail server held them", n)
	}
	open()
	if got := recipients(h.smtp.WaitFor(t, students, 10*time.Second)); len(got) != students {
		t.Errorf("emails to %v, want one to each of %d students", got, students)
	}
}
