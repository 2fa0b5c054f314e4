package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

var cardCount = regexp.MustCompile(`^(\d+) students?$`)

func TestTeamsAndSlackEachGetOneDigestPerExamCountingEveryone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withDigest(redisstore.DigestWindow{Grace: time.Second, MaxDelay: 5 * time.Second, MaxSize: 100}), withTeams(relay.ModeDigest))
	const n = 60 // 30 an exam: the card names 25 "…and 5 more"
	for i := range n {
		if code, resp := h.post(registrationFor(i, i%2)); code != 202 {
			t.Fatalf("POST %d: %d %s", i, code, resp)
		}
	}
	h.teams.WaitFor(t, 2, 30*time.Second)
	h.slack.WaitFor(t, 2, 30*time.Second)
	time.Sleep(3 * time.Second) // room for a wrong extra card
	cards := h.teams.Posts()
	perExam := map[string]int{}
	for _, c := range cards {
		m := cardCount.FindStringSubmatch(c.Texts[0])
		if m == nil {
			t.Fatalf("card does not start with the count: %q", c.Texts)
		}
		count, _ := strconv.Atoi(m[1])
		for _, exam := range []string{"Exam 0", "Exam 1"} {
			if strings.Contains(c.Text(), exam) {
				perExam[exam] += count
			}
		}
		if !strings.Contains(c.Text(), "Opens Monday, 14 December 2026") || !strings.Contains(c.Text(), "…and 5 more") {
			t.Errorf("card lacks the dates or the list's tail: %q", c.Texts)
		}
	}
	if len(cards) != 2 || perExam["Exam 0"] != n/2 || perExam["Exam 1"] != n/2 {
		t.Errorf("%d cards counting %v, want 2 counting %d each", len(cards), perExam, n/2)
	}
	if posts := h.slack.Posts(); len(posts) != 2 {
		t.Errorf("%d Slack digests beside the Teams cards, want 2", len(posts))
	}
}

func TestTeams429WaitsWithoutSpendingAnAttemptAndNamesShowAsTyped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withTeams(relay.ModeEach))
	h.teams.RateLimit(1, 2*time.Second)
	start := time.Now()
	body := hostileRegistration(1, "**[click](https://evil.example)** <at>All</at>", "Exam [x](https://evil.example)", "G", "https://ok.example/exam")
	if code, resp := h.post(body); code != 202 {
		t.Fatalf("POST: %d %s", code, resp)
	}
	cards := h.teams.WaitFor(t, 1, 20*time.Second)
	if waited := cards[0].At.Sub(start); waited < 2*time.Second {
		t.Errorf("posted %v after the 429 asked for 2s", waited)
	}
	h.waitIdle(10 * time.Second)
	if spent := h.attemptsSpent(tasks.QueueTeams); spent != 0 || h.teams.Attempts() != 2 {
		t.Errorf("%d attempts spent, %d attempts at Teams; want 0 and 2", spent, h.teams.Attempts())
	}
	text := cards[0].Text()
	if !strings.Contains(text, "**[click](https://evil.example)** <at>All</at>") || !strings.Contains(text, "Exam [x](https://evil.example)") {
		t.Errorf("names not shown as typed: %q", cards[0].Texts)
	}
	var card map[string]any
	json.Unmarshal(cards[0].Card, &card)
	if strings.Contains(string(cards[0].Card), `"TextBlock"`) || strings.Contains(string(cards[0].Card), `"url":"https://evil`) {
		t.Errorf("the card lets payload text be Markdown or a link: %s", cards[0].Card)
	}
}

func TestDeletedTeamsWorkflowIsArchivedAndListedAndTheEmailStillGoes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withTeams(relay.ModeEach))
	h.teams.FailWith(1, 404)
	body := registrationFor(1, 0)
	h.post(body)
	info := h.waitForTask(tasks.QueueTeams, tasks.TaskID(tasks.TypeTeams, decodeBody(t, body)), asynq.TaskStateArchived, 10*time.Second)
	if !strings.Contains(info.LastErr, "404") || strings.Contains(info.LastErr, "SecretSignature") {
		t.Errorf("archived with %q", info.LastErr)
	}
	h.smtp.WaitFor(t, 1, 10*time.Second)
	h.slack.WaitFor(t, 1, 10*time.Second)
	out, err := relayOutput(t, map[string]string{"RELAY_REDIS_URL": h.redis.URL}, "tasks")
	if err != nil || !strings.Contains(out, "teams") || !strings.Contains(out, "404") {
		t.Errorf("relay tasks: %v\n%s", err, out)
	}
}

func TestRenderAndCheckShowATeamsRouteWithoutItsURL(t *testing.T) {
	t.Parallel()
	teams := relaytest.StartTeams(t)
	env := map[string]string{"RELAY_TEAMS_WEBHOOK_URL": teams.WebhookURL(), "RELAY_TEAMS_MODE": "each"}
	out, err := relayOutput(t, env, "render", "-payload", "../../examples/registration.json")
	if err != nil || !strings.Contains(out, "--- Teams, each → teams-") || !strings.Contains(out, `"type": "AdaptiveCard"`) ||
		!strings.Contains(out, `"text": "Jonas Becker"`) {
		t.Errorf("render: %v\n%s", err, out)
	}
	out, err = relayOutput(t, env, "check")
	if err != nil || !strings.Contains(out, "each → teams-") {
		t.Errorf("check: %v\n%s", err, out)
	}
	for _, o := range []string{out} {
		if strings.Contains(o, "SecretSignature123") {
			t.Errorf("the workflow URL's signature is printed:\n%s", o)
		}
	}
}
