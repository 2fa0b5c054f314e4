package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/redisstore"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

const (
	adminUser     = "exams-office"
	adminPassword = "admin-s3cret-for-tests"
)

// withAdmin turns the admin page on, with its own credentials.
func withAdmin() harnessOption {
	return withConfig(func(c *config.Config) { c.Admin.Username, c.Admin.Password = adminUser, adminPassword })
}

// withQuickRetries retries a temporary failure after a second, not 5 s.
func withQuickRetries() harnessOption {
	return withConfig(func(c *config.Config) { c.Worker.RetrySchedule = config.Durations{config.Duration(time.Second)} })
}

// student is a registration of one student for one exam.
type student struct {
	id, name, email, examID, examName string
}

// body is the webhook Synap would send, made with encoding/json so any
// text, hostile included, arrives exactly as typed.
func (s student) body() []byte {
	b, err := json.Marshal(map[string]any{
		"user":   map[string]any{"id": s.id, "name": s.name, "email": s.email},
		"portal": map[string]any{"id": "portal_demo"},
		"exam": map[string]any{"objectId": s.examID, "name": s.examName, "url": "https://exams.example.edu/exams/" + url.PathEscape(s.examID),
			"schedule": map[string]any{"openDate": "2026-12-14T09:00:00Z", "closeDate": "2026-12-14T11:30:00Z"}},
		"userGroup": map[string]any{"objectId": "grp_chem_y2", "name": "Chemistry Year 2"},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// emailTaskID is the id of the student's confirmation task.
func (s student) emailTaskID(t *testing.T) string {
	return tasks.TaskID(tasks.TypeEmail, decodeBody(t, s.body()))
}

// refuseSMTP makes the sink answer 550 to these addresses, as a server
// whose mailbox does not exist does.
func refuseSMTP(h *harness, addrs ...string) {
	refused := map[string]bool{}
	for _, a := range addrs {
		refused[a] = true
	}
	h.smtp.SetRcptHook(func(rcpt string) *smtp.SMTPError {
		if refused[rcpt] {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable: no such user"}
		}
		return nil
	})
}

// waitForHistory polls until key has n entries, so the page is read
// after the worker recorded what it did.
func (h *harness) waitForHistory(key redisstore.HistoryKey, n int) []redisstore.HistoryEntry {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, err := h.relay.history.Find(context.Background(), key, 100)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(entries) >= n {
			return entries
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("history for %s %s: %d entries after 20s, want %d", key.By, key.Value, len(entries), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// request is the status, body and headers of method path with Basic auth
// user:password ("" for none) and extra headers.
func (h *harness) request(method, path, user, password string, form url.Values, header map[string]string) (int, string, http.Header) {
	h.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, h.http.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// A redirect is an answer to check, not to follow.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestAdminPageIsNotServedWithoutAPassword(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, path := range []string{"/admin/", "/admin/history?email=jonas.becker@example.edu"} {
		if code, _, _ := h.request(http.MethodGet, path, "admin", "", nil, nil); code != http.StatusNotFound {
			t.Errorf("GET %s without RELAY_ADMIN_PASSWORD: %d, want 404", path, code)
		}
	}
	if code, _, _ := h.request(http.MethodPost, "/admin/delete", "", "", url.Values{"id": {"x"}}, nil); code != http.StatusNotFound {
		t.Errorf("POST /admin/delete without RELAY_ADMIN_PASSWORD: %d, want 404", code)
	}
}

func TestAdminPageAndWebhookEachTakeOnlyTheirOwnCredentials(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withAdmin())
	for _, c := range []struct {
		name, user, password string
		want                 int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"the webhook's", testUser, testPassword, http.StatusUnauthorized},
		{"the admin's username, the webhook's password", adminUser, testPassword, http.StatusUnauthorized},
		{"the admin's", adminUser, adminPassword, http.StatusOK},
	} {
		code, body, header := h.request(http.MethodGet, "/admin/", c.user, c.password, nil, nil)
		if code != c.want {
			t.Errorf("/admin/ with %s: %d, want %d", c.name, code, c.want)
		}
		if code == http.StatusUnauthorized && !strings.Contains(header.Get("WWW-Authenticate"), `realm="exam-relay admin"`) {
			t.Errorf("/admin/ with %s: WWW-Authenticate %q, want the admin's own realm", c.name, header.Get("WWW-Authenticate"))
		}
		if code == http.StatusOK && !strings.Contains(body, "Failed deliveries") {
			t.Errorf("/admin/ with %s: not the front page:\n%s", c.name, body)
		}
	}
	// The admin's credentials are no good for posting registrations.
	code, _ := h.do(readExample(t, "registration.json"), func(r *http.Request) { r.SetBasicAuth(adminUser, adminPassword) })
	if code != http.StatusUnauthorized {
		t.Errorf("webhook with the admin's credentials: %d, want 401", code)
	}
	// Only that one counts as a refused webhook; the admin's refusals do not.
	if metrics := h.get("/metrics"); !strings.Contains(metrics, `relay_webhooks_total{outcome="unauthorized"} 1`+"\n") {
		t.Errorf("/metrics should count exactly one refused webhook:\n%s", grepLines(metrics, "relay_webhooks_total"))
	}
}

func grepLines(text, substr string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

func TestAdminPageIsServedByRunServeAndWork(t *testing.T) {
	rds := relaytest.StartRedis(t)
	for _, command := range []string{"run", "serve", "work"} {
		t.Run(command, func(t *testing.T) {
			p := start(t, map[string]string{
				"RELAY_HTTP_ADDR":        "127.0.0.1:0",
				"RELAY_REDIS_URL":        rds.URL,
				"RELAY_WEBHOOK_PASSWORD": "correct horse",
				"RELAY_ADMIN_PASSWORD":   "battery staple",
			}, command)
			if !strings.Contains(p.stdout.String(), "Admin page on http://") {
				t.Errorf("relay %s does not say where the admin page is:\n%s", command, p.stdout.String())
			}
			req, _ := http.NewRequest(http.MethodGet, p.base+"/admin/", nil)
			req.SetBasicAuth("admin", "battery staple")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Failed deliveries") {
				t.Errorf("relay %s: /admin/ %d\n%s", command, resp.StatusCode, body)
			}
		})
	}
}

func TestAdminFormsRefuseCrossOriginPosts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withAdmin())
	// No such task: a request the check lets through gets as far as
	// looking for it (409), one it refuses never does (403).
	form := url.Values{"id": {"no-such-task"}}
	for _, c := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"from another site", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"from another origin of the same site", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"with a foreign Origin (an older browser)", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"from the page itself", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": h.http.URL}, http.StatusConflict},
		{"from curl", nil, http.StatusConflict},
	} {
		for _, path := range []string{"/admin/retry", "/admin/delete"} {
			if code, body, _ := h.request(http.MethodPost, path, adminUser, adminPassword, form, c.header); code != c.want {
				t.Errorf("POST %s %s: %d, want %d\n%s", path, c.name, code, c.want, body)
			}
		}
	}
}

// The exams office's question: did Jonas get the email? And what
// happened to Amira's? In a real browser, against a relay with a real
// Redis and SMTP server.
func TestAdminPageShowsWhatEachStudentWasSent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withAdmin(), withQuickRetries())
	const exam, examName = "exm_7Hq2Lm", "Organic Chemistry II — Final"
	jonas := student{"usr_5tR8wQ", "Jonas Becker", "jonas.becker@example.edu", exam, examName}
	amira := student{"usr_9Kd2Pa", "Amira Haddad", "amira.haddad@example.edu", exam, examName}
	liam := student{"usr_3Fh7Tz", "Liam O'Connor", "liam.oconnor@example.edu", exam, examName}
	// Amira's address does not exist; Liam's server is busy once.
	var mu sync.Mutex
	busy := true
	h.smtp.SetRcptHook(func(rcpt string) *smtp.SMTPError {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case rcpt == amira.email:
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "mailbox unavailable: no such user"}
		case rcpt == liam.email && busy:
			busy = false
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
		}
		return nil
	})
	for _, s := range []student{jonas, amira, liam} {
		if code, body := h.post(s.body()); code != http.StatusAccepted {
			t.Fatalf("post %s: %d %s", s.name, code, body)
		}
	}
	// Each student's email and Slack alert; Liam's email twice.
	h.waitForHistory(redisstore.HistoryKey{By: redisstore.HistoryByExam, Value: exam}, 7)
	history := h.waitForHistory(redisstore.HistoryKey{By: redisstore.HistoryByEmail, Value: jonas.email}, 2)
	var sentToJonas relaytest.Message
	for _, m := range h.smtp.Messages() {
		if m.To[0] == jonas.email {
			sentToJonas = m
		}
	}
	messageID := relaytest.ParseEmail(t, sentToJonas.Data).Header.Get("Message-ID")
	if messageID == "" {
		t.Fatal("the email the sink received has no Message-ID")
	}

	tab := newTab(t, adminUser, adminPassword)
	do(t, tab, "open the front page and type an address",
		chromedp.Navigate(h.http.URL+"/admin/"),
		chromedp.SendKeys(chromedp.CSS(`input[name="email"]`), jonas.email),
	)
	if code := submit(t, tab, "search", chromedp.Click(chromedp.CSS(`form.search button`))); code != http.StatusOK {
		t.Fatalf("search: %d", code)
	}
	rows := historyRows(t, tab)
	email := findRow(rows, "email confirmation")
	if email == nil {
		t.Fatalf("no email confirmation in Jonas's history: %q", rows)
	}
	london, _ := time.LoadLocation("Europe/London")
	var recorded redisstore.HistoryEntry
	for _, e := range history {
		if e.Channel == "email" {
			recorded = e
		}
	}
	if email.Status != "sent" || email.MessageID != messageID || email.To != jonas.email || !strings.Contains(email.Exam, examName) {
		t.Errorf("Jonas's confirmation shows as %+v; want sent to %s with Message-ID %s", *email, jonas.email, messageID)
	}
	if want := recorded.Time.In(london).Format(time.DateTime); email.Time != want {
		t.Errorf("time %q, want %q (the configured zone, Europe/London)", email.Time, want)
	}
	if header := eval[string](t, tab, `document.querySelector("#history th").innerText`); !strings.Contains(header, "Europe/London") {
		t.Errorf("the time column does not name its zone: %q", header)
	}
	if slack := findRow(rows, "slack alert"); slack == nil || slack.Status != "sent" || slack.To != "staff (slack)" {
		t.Errorf("Jonas's Slack alert shows as %+v", slack)
	}

	// The exam's link: everyone's history for it, newest first.
	submit(t, tab, "follow the exam link", chromedp.Click(chromedp.CSS(`#history a[href*="exam="]`)))
	if got := eval[string](t, tab, `document.querySelector("h1").innerText`); got != "History for exam "+exam {
		t.Errorf("after the exam link: %q", got)
	}
	rows = historyRows(t, tab)
	var amiraRow, liamRetrying *historyRow
	for i, r := range rows {
		switch {
		case r.To == amira.email && r.What == "email confirmation":
			amiraRow = &rows[i]
		case r.To == liam.email && r.Status == "retrying":
			liamRetrying = &rows[i]
		}
		if i > 0 && r.Time > rows[i-1].Time {
			t.Errorf("not newest first: %q after %q", r.Time, rows[i-1].Time)
		}
	}
	if amiraRow == nil || amiraRow.Status != "failed" || !strings.Contains(amiraRow.Detail, "550") || !strings.Contains(amiraRow.Detail, "no such user") {
		t.Errorf("Amira's refused email shows as %+v; want failed with the server's 550 reply", amiraRow)
	}
	if liamRetrying == nil || !strings.Contains(liamRetrying.Detail, "451") {
		t.Errorf("Liam's first attempt shows as %+v; want retrying with the server's 451 reply", liamRetrying)
	}
	// Statuses look different, not only read different.
	colours := eval[map[string]string](t, tab, `Object.fromEntries([...document.querySelectorAll("#history .status")].map(s => [s.innerText, getComputedStyle(s).backgroundColor]))`)
	if colours["sent"] == "" || colours["sent"] == colours["failed"] || colours["sent"] == colours["retrying"] || colours["failed"] == colours["retrying"] {
		t.Errorf("statuses are not told apart by colour: %v", colours)
	}
	screenshot(t, tab, "admin-history.png", 1280)

	// On a phone the page fits the screen; the table scrolls inside it.
	do(t, tab, "phone-sized viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	if wide := eval[bool](t, tab, `document.documentElement.scrollWidth > window.innerWidth`); wide {
		t.Errorf("on a phone the page is wider than the screen (%v px)", eval[float64](t, tab, `document.documentElement.scrollWidth`))
	}
	do(t, tab, "desktop viewport", chromedp.EmulateViewport(1200, 900))

	do(t, tab, "search for someone unknown",
		chromedp.Navigate(h.http.URL+"/admin/history?email="+url.QueryEscape("nobody@example.edu")),
		chromedp.WaitVisible(chromedp.CSS(`#nothing-found`)),
	)
	if text := eval[string](t, tab, `document.querySelector("#nothing-found").innerText`); !strings.Contains(text, "Nothing found for email nobody@example.edu") ||
		!strings.Contains(text, "user id") || !strings.Contains(text, "180d") {
		t.Errorf("nothing found says:\n%s", text)
	}
}

// historyRow is a row of the history table as a person reads it.
type historyRow struct {
	Time, What, Status, To, Exam, MessageID, Detail string
}

func historyRows(t *testing.T, tab context.Context) []historyRow {
	t.Helper()
	cells := eval[[][]string](t, tab, `[...document.querySelectorAll("#history tbody tr")].map(tr => [...tr.cells].map(td => td.innerText.trim()))`)
	rows := make([]historyRow, len(cells))
	for i, c := range cells {
		if len(c) != 7 {
			t.Fatalf("history row %d has %d cells: %q", i, len(c), c)
		}
		rows[i] = historyRow{c[0], c[1], c[2], c[3], c[4], c[5], c[6]}
	}
	return rows
}

func findRow(rows []historyRow, what string) *historyRow {
	for i := range rows {
		if rows[i].What == what {
			return &rows[i]
		}
	}
	return nil
}

// screenshot keeps a picture of the page with the test's output and, with
// RELAY_ADMIN_SCREENSHOTS=DIR, in DIR: how docs/ gets its pictures.
func screenshot(t *testing.T, tab context.Context, name string, width int64) {
	t.Helper()
	do(t, tab, "viewport for "+name, chromedp.EmulateViewport(width, 700))
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("RELAY_ADMIN_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAdminPageRetriesAndDeletesFailedDeliveries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withAdmin())
	amira := student{"usr_9Kd2Pa", "Amira Haddad", "amira.haddad@example.edu", "exm_7Hq2Lm", "Organic Chemistry II — Final"}
	noah := student{"usr_2Wm8Qc", "Noah Schmidt", "noah.schmidt@example.edu", "exm_7Hq2Lm", "Organic Chemistry II — Final"}
	refuseSMTP(h, amira.email, noah.email)
	for _, s := range []student{amira, noah} {
		h.post(s.body())
	}
	retryID, deleteID := amira.emailTaskID(t), noah.emailTaskID(t)
	h.waitForTask(tasks.QueueEmail, retryID, asynq.TaskStateArchived, 10*time.Second)
	h.waitForTask(tasks.QueueEmail, deleteID, asynq.TaskStateArchived, 10*time.Second)

	tab := newTab(t, adminUser, adminPassword)
	row := func(id string) string { return fmt.Sprintf(`#failed tr[data-task=%q]`, id) }
	do(t, tab, "open the front page",
		chromedp.Navigate(h.http.URL+"/admin/"),
		chromedp.WaitVisible(chromedp.CSS(row(retryID))),
		chromedp.WaitVisible(chromedp.CSS(row(deleteID))),
	)
	if text := eval[string](t, tab, `document.querySelector(`+jsString(row(deleteID))+`).innerText`); !strings.Contains(text, "550") || !strings.Contains(text, "Organic Chemistry II — Final") {
		t.Errorf("the failed delivery's row says:\n%s", text)
	}
	screenshot(t, tab, "admin-front.png", 1200)

	// Another site's page with a form aimed at the delete button. The
	// browser sends it with the admin's login, as it would a cached one:
	// only the cross-origin check stands in the way.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><title>Win a prize</title>
<form method="post" action="%s/admin/delete"><input type="hidden" name="id" value="%s"><button id="prize">Claim your prize</button></form>`,
			h.http.URL, deleteID)
	}))
	t.Cleanup(evil.Close)
	// localhost, not 127.0.0.1: another site altogether.
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	do(t, tab, "open another site", chromedp.Navigate(evilURL))
	if code := submit(t, tab, "post from another site", chromedp.Click(chromedp.CSS(`#prize`))); code != http.StatusForbidden {
		t.Errorf("the cross-site post was answered %d, want 403", code)
	}
	if text := eval[string](t, tab, `document.body.innerText`); !strings.Contains(text, "sent from another site") {
		t.Errorf("the cross-site post was answered:\n%s", text)
	}
	h.waitForTask(tasks.QueueEmail, deleteID, asynq.TaskStateArchived, time.Second)

	// The mailbox exists now: Retry sends the email.
	refuseSMTP(h)
	do(t, tab, "back to the front page", chromedp.Navigate(h.http.URL+"/admin/"))
	if code := submit(t, tab, "retry", chromedp.Click(chromedp.CSS(row(retryID)+` button.retry`))); code != http.StatusOK {
		t.Errorf("retry ended on a %d page", code)
	}
	if notice := eval[string](t, tab, `document.querySelector(".notice").innerText`); notice != "Delivery "+retryID+" is queued again." {
		t.Errorf("after Retry the page says %q", notice)
	}
	if loc := eval[string](t, tab, `location.pathname + location.search`); loc != "/admin/?"+(url.Values{"retried": {retryID}}).Encode() {
		t.Errorf("after Retry the browser is at %s, want the front page", loc)
	}
	h.waitForRecipients([]string{amira.email}, 10*time.Second)
	h.waitGone(tasks.QueueEmail, retryID, 10*time.Second)

	if code := submit(t, tab, "delete", chromedp.Click(chromedp.CSS(row(deleteID)+` button.delete`))); code != http.StatusOK {
		t.Errorf("delete ended on a %d page", code)
	}
	if notice := eval[string](t, tab, `document.querySelector(".notice").innerText`); notice != "Delivery "+deleteID+" is deleted." {
		t.Errorf("after Delete the page says %q", notice)
	}
	if _, err := h.inspect.GetTaskInfo(tasks.QueueEmail, deleteID); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Errorf("the deleted task is still there: %v", err)
	}
	if n := eval[int](t, tab, `document.querySelectorAll("#failed tbody tr").length`); n != 0 {
		t.Errorf("%d failed deliveries still listed", n)
	}
	if !eval[bool](t, tab, `!!document.querySelector("#no-failed")`) {
		t.Error("an empty list does not say there is nothing failed")
	}
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Whatever Synap sends shows as typed and runs nothing, on both pages.
func TestAdminPageShowsHostileTextAsTyped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withAdmin())
	const (
		hostileUser = `usr_"><img src=x onerror="window.pwned=1;document.title='pwned'">`
		hostileExam = `<script>window.pwned=1;document.title="pwned"</script>Chemistry & <b>Physics</b>`
	)
	s := student{hostileUser, `<script>window.pwned=1</script>`, "mallory@example.edu", "exm_<i>x</i>", hostileExam}
	refuseSMTP(h, s.email)
	if code, body := h.post(s.body()); code != http.StatusAccepted {
		t.Fatalf("post: %d %s", code, body)
	}
	h.waitForTask(tasks.QueueEmail, s.emailTaskID(t), asynq.TaskStateArchived, 10*time.Second)
	h.waitForHistory(redisstore.HistoryKey{By: redisstore.HistoryByEmail, Value: s.email}, 2)

	tab := newTab(t, adminUser, adminPassword)
	noScriptRan := func(page string) {
		t.Helper()
		if ran := eval[bool](t, tab, `window.pwned !== undefined || document.title === "pwned" || document.querySelector("main script, main img, main b, main i") !== null`); ran {
			t.Errorf("%s: payload markup became part of the page", page)
		}
	}

	do(t, tab, "front page", chromedp.Navigate(h.http.URL+"/admin/"), chromedp.WaitVisible(chromedp.CSS(`#failed`)))
	row := eval[[]string](t, tab, `[...document.querySelector("#failed tbody tr").cells].map(td => td.innerText)`)
	if !strings.Contains(row[2], hostileUser) || !strings.Contains(row[3], hostileExam) || !strings.Contains(row[3], s.examID) {
		t.Errorf("the failed delivery's row shows %q; want the user id %q and exam %q as typed", row, hostileUser, hostileExam)
	}
	noScriptRan("front page")

	// The user id's link keeps every character of it.
	submit(t, tab, "follow the user link", chromedp.Click(chromedp.CSS(`#failed a[href*="user="]`)))
	if got := eval[string](t, tab, `new URLSearchParams(location.search).get("user")`); got != hostileUser {
		t.Errorf("the user link searched for %q, want %q", got, hostileUser)
	}
	rows := historyRows(t, tab)
	if len(rows) == 0 || !strings.Contains(rows[0].Exam, hostileExam) {
		t.Errorf("history rows %q; want the exam %q as typed", rows, hostileExam)
	}
	if got := eval[string](t, tab, `document.querySelector("h1").innerText`); got != "History for user "+hostileUser {
		t.Errorf("heading %q", got)
	}
	noScriptRan("history page")
}
