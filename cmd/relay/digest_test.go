package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

func TestBurstBecomesAHandfulOfDigestsThatCountEveryone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withDigest(redisstore.DigestWindow{Grace: 2 * time.Second, MaxDelay: 10 * time.Second, MaxSize: 500}))
	const n = 500
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if code, resp := h.post(registrationFor(i, i%3)); code != 202 {
					t.Errorf("POST %d: %d %s", i, code, resp)
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()

	deadline := time.Now().Add(45 * time.Second)
	counted, perExam := 0, map[string]int{}
	for time.Now().Before(deadline) && counted < n {
		time.Sleep(200 * time.Millisecond)
		counted, perExam = 0, map[string]int{}
		for _, p := range h.slack.Posts() {
			m := digestCount.FindStringSubmatch(p.Text)
			if m == nil {
				t.Fatalf("not a digest: %s", p.Text)
			}
			c, _ := strconv.Atoi(m[1])
			counted += c
			for exam := range 3 {
				if strings.Contains(p.Text, fmt.Sprintf("Exam %d", exam)) {
					perExam[fmt.Sprint(exam)] += c
				}
			}
		}
	}
	time.Sleep(3 * time.Second) // room for a wrong extra digest
	posts := h.slack.Posts()
	if counted != n || len(perExam) != 3 {
		t.Errorf("digests count %d students (%v), want %d over 3 exams", counted, perExam, n)
	}
	if len(posts) < 3 || len(posts) > 9 {
		t.Errorf("%d Slack posts for a burst over 3 exams, want a handful", len(posts))
	}
	for _, p := range posts {
		if !strings.Contains(p.Text, "more") || !strings.Contains(p.Text, "Opens Monday, 14 December 2026") {
			t.Errorf("digest lacks the list tail or the dates:\n%s", p.Text)
		}
	}
	if n := h.smtp.Count(); n != 500 {
		t.Logf("%d emails so far", n)
	}
}

func TestDigestHonoursRetryAfterAndEscapesNames(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withDigest(redisstore.DigestWindow{Grace: time.Second, MaxDelay: 5 * time.Second, MaxSize: 100}))
	const retryAfter = 3 * time.Second
	h.slack.RateLimit(1, retryAfter)
	hostile := []string{"<!channel>", "<@U0123>", "<https://evil.example|click me>", "Ann & Bob", "<!here|here>"}
	start := time.Now()
	for i, name := range hostile {
		body := hostileRegistration(100+i, name, "Shared Exam", "<!everyone>", "https://ok.example/exam")
		// One exam for all of them, so one digest.
		body = bytes.Replace(body, []byte(fmt.Sprintf(`"objectId":"e%d"`, 100+i)), []byte(`"objectId":"e_shared"`), 1)
		if code, resp := h.post(body); code != 202 {
			t.Fatalf("POST: %d %s", code, resp)
		}
	}
	h.slack.WaitFor(t, 1, 30*time.Second)
	time.Sleep(2 * time.Second) // room for a wrong second post
	posts := h.slack.Posts()
	if len(posts) != 1 || !strings.Contains(posts[0].Text, "*5 students*") {
		t.Fatalf("%d posts, want one digest of 5:\n%v", len(posts), posts)
	}
	if n := h.slack.Attempts(); n != 2 {
		t.Errorf("%d attempts at Slack, want 2 (the 429, then the post)", n)
	}
	if posts[0].At.Sub(start) < retryAfter {
		t.Errorf("first post %v after the burst began; Slack asked for %v", posts[0].At.Sub(start), retryAfter)
	}
	for _, p := range posts {
		var sent struct {
			Text   string `json:"text"`
			Blocks []struct {
				Text struct{ Text string } `json:"text"`
			} `json:"blocks"`
		}
		json.Unmarshal(p.Body, &sent)
		for _, text := range []string{sent.Text, sent.Blocks[0].Text.Text} {
			for _, bad := range []string{"<!", "<@", "<https://evil", " & "} {
				if strings.Contains(text, bad) {
					t.Errorf("digest carries %q: %s", bad, text)
				}
			}
		}
	}
}

func TestSlack429HoldsEveryPostAndPostsStayASecondApart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withDigest(redisstore.DigestWindow{Grace: time.Second, MaxDelay: 5 * time.Second, MaxSize: 100}))
	const retryAfter = 3 * time.Second
	h.slack.RateLimit(1, retryAfter)
	start := time.Now()
	for i := range 12 {
		h.post(registrationFor(i, i%4)) // four exams: four digests
	}
	posts := h.slack.WaitFor(t, 4, 30*time.Second)
	for i, p := range posts {
		if p.At.Sub(start) < retryAfter {
			t.Errorf("post %d at %v, before the Retry-After of %v", i, p.At.Sub(start), retryAfter)
		}
		// One post per second per destination, across all workers. The
		// sink stamps a post when it arrives, after the render and the
		// request: 200 ms is left for those on a machine running other
		// tests. Without the shared limit the posts come milliseconds
		// apart.
		if i > 0 && p.At.Sub(posts[i-1].At) < 800*time.Millisecond {
			t.Errorf("posts %d and %d only %v apart", i-1, i, p.At.Sub(posts[i-1].At))
		}
	}
}

func TestBotUpdatesTodaysDigestForTheExamInsteadOfPostingAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withBot(), withDigest(redisstore.DigestWindow{Grace: time.Second, MaxDelay: 3 * time.Second, MaxSize: 100}))
	for i := range 3 {
		h.post(registrationFor(i, 7))
	}
	first := h.slack.WaitFor(t, 1, 20*time.Second)
	if first[0].Kind != relaytest.KindPostMessage || !strings.Contains(first[0].Text, "*3 students*") {
		t.Fatalf("first digest: %s %q", first[0].Kind, first[0].Text)
	}
	for i := 3; i < 5; i++ {
		h.post(registrationFor(i, 7))
	}
	h.post(registrationFor(9, 8)) // another exam: a message of its own
	h.slack.WaitFor(t, 3, 20*time.Second)
	time.Sleep(2 * time.Second) // room for a wrong extra post
	posts := h.slack.Posts()
	var updates, news int
	for _, p := range posts[1:] {
		switch {
		case p.Kind == relaytest.KindUpdate && p.TS == first[0].TS && strings.Contains(p.Text, "*5 students*"):
			updates++
		case p.Kind == relaytest.KindPostMessage && strings.Contains(p.Text, "Exam 8") && strings.Contains(p.Text, "*1 student*"):
			news++
		default:
			t.Errorf("unexpected %s: %q", p.Kind, p.Text)
		}
	}
	if updates != 1 || news != 1 {
		t.Errorf("%d updates of the first digest, %d new digests; want 1 and 1", updates, news)
	}
}

func TestBurstLargerThanMaxSizeBecomesSeveralDigestsThatCountEveryone(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withDigest(redisstore.DigestWindow{Grace: 2 * time.Second, MaxDelay: 10 * time.Second, MaxSize: 40}))
	const n = 150
	for i := range n {
		h.post(registrationFor(i, 1))
	}
	deadline := time.Now().Add(40 * time.Second)
	counted := 0
	for time.Now().Before(deadline) && counted < n {
		time.Sleep(200 * time.Millisecond)
		counted = 0
		for _, p := range h.slack.Posts() {
			if m := digestCount.FindStringSubmatch(p.Text); m != nil {
				c, _ := strconv.Atoi(m[1])
				if c > 40 {
					t.Errorf("a digest of %d, over the max size of 40", c)
				}
				counted += c
			}
		}
	}
	if posts := len(h.slack.Posts()); counted != n || posts < 4 {
		t.Errorf("%d posts counting %d students, want at least 4 counting %d", posts, counted, n)
	}
}

// Students a relay before the upgrade left in asynq's digest groups are
// still posted, beside those the new relay keeps in its own lists.
func TestDigestItemsQueuedBeforeTheUpgradeArePosted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withDigest(redisstore.DigestWindow{Grace: time.Second, MaxDelay: 10 * time.Second, MaxSize: 100}))
	queue := asynq.NewClientFromRedisClient(h.redis.Client())
	defer queue.Close()
	for i := range 3 {
		reg, err := relay.DecodeRegistration(registrationFor(i, 1))
		if err != nil {
			t.Fatal(err)
		}
		item, err := json.Marshal(relay.DigestItem{Registration: reg, Destination: "slack", ReceivedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		// As the relay before the upgrade queued a digest item.
		task := asynq.NewTask(tasks.TypeSlackDigestItem, item, asynq.Queue(tasks.QueueSlack), asynq.Group(tasks.DigestGroup("slack", reg)))
		if _, err := queue.Enqueue(task); err != nil {
			t.Fatal(err)
		}
	}
	if code, resp := h.post(registrationFor(3, 1)); code != 202 {
		t.Fatalf("POST: %d %s", code, resp)
	}

	counted := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && counted < 4; {
		time.Sleep(200 * time.Millisecond)
		counted = 0
		for _, p := range h.slack.Posts() {
			if m := digestCount.FindStringSubmatch(p.Text); m != nil {
				c, _ := strconv.Atoi(m[1])
				counted += c
			}
		}
	}
	if counted != 4 {
		t.Errorf("digests count %d students, want the 3 from asynq's groups and the 1 from the relay's lists", counted)
	}
}
