package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/relay/webhook"
	"github.com/exam-relay/relay/tasks"
)

const (
	alertsFile     = "prometheus/alerts.yml"
	prometheusFile = "prometheus/prometheus.yml"
	dashboardFile  = "grafana/exam-relay.json"
)

// exposition is what a relay's /metrics holds: each series name (with
// _bucket, _sum and _count for histograms), its labels and their values.
type exposition map[string]map[string]map[string]bool

func parseExposition(r io.Reader) (exposition, error) {
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	e := exposition{}
	add := func(name string, labels []*dto.LabelPair, extra ...string) {
		if e[name] == nil {
			e[name] = map[string]map[string]bool{}
		}
		for _, l := range labels {
			e.addLabel(name, l.GetName(), l.GetValue())
		}
		for i := 0; i+1 < len(extra); i += 2 {
			e.addLabel(name, extra[i], extra[i+1])
		}
	}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				for _, b := range m.GetHistogram().GetBucket() {
					add(name+"_bucket", m.GetLabel(), "le", fmt.Sprint(b.GetUpperBound()))
				}
				add(name+"_bucket", m.GetLabel(), "le", "+Inf")
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			case dto.MetricType_SUMMARY:
				add(name, m.GetLabel())
				add(name+"_sum", m.GetLabel())
				add(name+"_count", m.GetLabel())
			default:
				add(name, m.GetLabel())
			}
		}
	}
	return e, nil
}

func (e exposition) addLabel(name, label, value string) {
	if e[name][label] == nil {
		e[name][label] = map[string]bool{}
	}
	e[name][label][value] = true
}

// scrapeConfig is what alerts.yml and the dashboard rely on in
// prometheus.yml: the job's name and the labels the scrape adds.
type scrapeConfig struct {
	job          string
	targetLabels map[string]bool
	ruleFiles    []string
}

func readScrapeConfig(t *testing.T) scrapeConfig {
	t.Helper()
	b, err := os.ReadFile(prometheusFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName        string `json:"job_name"`
			RelabelConfigs []struct {
				TargetLabel string `json:"target_label"`
			} `json:"relabel_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("%s: %v", prometheusFile, err)
	}
	if len(file.ScrapeConfigs) != 1 {
		t.Fatalf("%s: %d scrape jobs, want the relay's one", prometheusFile, len(file.ScrapeConfigs))
	}
	sc := scrapeConfig{job: file.ScrapeConfigs[0].JobName, ruleFiles: file.RuleFiles,
		targetLabels: map[string]bool{"job": true, "instance": true}}
	for _, r := range file.ScrapeConfigs[0].RelabelConfigs {
		if r.TargetLabel != "" && !strings.HasPrefix(r.TargetLabel, "__") {
			sc.targetLabels[r.TargetLabel] = true
		}
	}
	return sc
}

// query is a PromQL expression and where it was found.
type query struct {
	where, expr string
}

func ruleQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var qs []query
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: alertsFile + ": " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	if len(qs) == 0 {
		t.Fatalf("%s: no rules", alertsFile)
	}
	return qs
}

type grafanaPanel struct {
	ID         int             `json:"id"`
	Title      string          `json:"title"`
	Type       string          `json:"type"`
	Datasource *grafanaSource  `json:"datasource"`
	Targets    []grafanaTarget `json:"targets"`
	Panels     []grafanaPanel  `json:"panels"` // a collapsed row's
}

type grafanaTarget struct {
	Expr       string         `json:"expr"`
	Datasource *grafanaSource `json:"datasource"`
}

type grafanaSource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// labelValues is Grafana's label_values(selector, label) variable query.
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*\w+\s*\)\s*$`)

// dashboardQueries are the panels' queries and the variables' selectors;
// the dashboard's shape is checked on the way: every query reads the
// data source the importer picks, and the job box starts on job.
func dashboardQueries(t *testing.T, job string) []query {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: no uid or title", dashboardFile)
	}
	var qs []query
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		var q string
		switch v.Type {
		case "query":
			var object struct{ Query string }
			if err := json.Unmarshal(v.Query, &object); err != nil || object.Query == "" {
				if err := json.Unmarshal(v.Query, &q); err != nil {
					t.Fatalf("%s: variable %s: query %s", dashboardFile, v.Name, v.Query)
				}
			} else {
				q = object.Query
			}
			if m := labelValues.FindStringSubmatch(q); m != nil {
				qs = append(qs, query{where: dashboardFile + ": variable " + v.Name, expr: m[1]})
			}
		case "textbox":
			if v.Name == "job" {
				_ = json.Unmarshal(v.Query, &q)
				if q != job {
					t.Errorf("%s: the job box starts on %q; %s scrapes the relay as %q", dashboardFile, q, prometheusFile, job)
				}
			}
		}
	}
	if !vars["datasource"] || !vars["job"] {
		t.Errorf("%s: want a datasource and a job variable, have %v", dashboardFile, vars)
	}
	ids := map[int]bool{}
	var walk func([]grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			where := fmt.Sprintf("%s: panel %q", dashboardFile, p.Title)
			if ids[p.ID] {
				t.Errorf("%s: id %d is taken", where, p.ID)
			}
			ids[p.ID] = true
			for _, target := range p.Targets {
				for _, ds := range []*grafanaSource{p.Datasource, target.Datasource} {
					if ds == nil || ds.UID != "${datasource}" {
						t.Errorf("%s: data source %v, want the ${datasource} variable so that it imports anywhere", where, ds)
					}
				}
				qs = append(qs, query{where: where, expr: target.Expr})
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s has no query", where)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return qs
}

// checkSelectors lists what in q the relay does not expose: a metric
// name, a label, or a label value none of its series has.
func checkSelectors(q query, exposed exposition, sc scrapeConfig) []string {
	sels, err := selectors(q.expr)
	if err != nil {
		return []string{err.Error()}
	}
	if len(sels) == 0 {
		return []string{"reads no series"}
	}
	var problems []string
	for _, s := range sels {
		labels, ok := exposed[s.name]
		// up is the one series Prometheus makes itself for each target.
		if !ok && s.name != "up" {
			problems = append(problems, fmt.Sprintf("%s: the relay exposes no %s", s, s.name))
			continue
		}
		for _, m := range s.matchers {
			if sc.targetLabels[m.label] {
				if m.label == "job" && !strings.Contains(m.value, "$") && m.value != sc.job {
					problems = append(problems, fmt.Sprintf("%s: %s scrapes the relay as job %q", s, prometheusFile, sc.job))
				}
				continue
			}
			values, ok := labels[m.label]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %s, and %s does not add it", s, s.name, m.label, prometheusFile))
				continue
			}
			if strings.Contains(m.value, "$") {
				continue
			}
			switch m.op {
			case "=":
				if !values[m.value] {
					problems = append(problems, fmt.Sprintf("%s: %s is never %q; it is one of %q", s, m.label, m.value, slices.Sorted(maps.Keys(values))))
				}
			case "=~":
				re, err := regexp.Compile("^(?:" + m.value + ")$")
				if err != nil {
					problems = append(problems, fmt.Sprintf("%s: %v", s, err))
					continue
				}
				if !slices.ContainsFunc(slices.Collect(maps.Keys(values)), re.MatchString) {
					problems = append(problems, fmt.Sprintf("%s: %s matches none of %q", s, m.label, slices.Sorted(maps.Keys(values))))
				}
			}
		}
	}
	return problems
}

func TestCheckSelectorsFindsWhatTheRelayDoesNotExpose(t *testing.T) {
	exposed, err := parseExposition(strings.NewReader(`# TYPE relay_deliveries_total counter
relay_deliveries_total{channel="email",outcome="sent"} 1
relay_deliveries_total{channel="email",outcome="failed"} 0
# TYPE relay_send_duration_seconds histogram
relay_send_duration_seconds_bucket{channel="email",le="0.1"} 1
relay_send_duration_seconds_bucket{channel="email",le="+Inf"} 1
relay_send_duration_seconds_sum{channel="email"} 0.05
relay_send_duration_seconds_count{channel="email"} 1
`))
	if err != nil {
		t.Fatal(err)
	}
	sc := scrapeConfig{job: "exam-relay", targetLabels: map[string]bool{"job": true, "instance": true}}
	for expr, wantProblems := range map[string]int{
		`rate(relay_deliveries_total{job="exam-relay", outcome="failed"}[5m])`:                  0,
		`histogram_quantile(0.9, sum by (le) (rate(relay_send_duration_seconds_bucket[5m])))`:   0,
		`relay_deliveries_total{outcome=~"fail.*|sent", channel!="x", instance="a"} or up == 0`: 0,
		`relay_delivery_total`:                                         1, // a misspelt name
		`relay_deliveries_total{outcome="faild"}`:                      1, // a value that never comes
		`relay_deliveries_total{outcome=~"error|timeout"}`:             1,
		`relay_deliveries_total{result="failed"}`:                      1, // a label it does not have
		`relay_deliveries_total{job="relay"}`:                          1, // another job
		`relay_send_duration_seconds`:                                  1, // a histogram by its family name
		`sum(relay_send_duration_seconds_count) / sum(up{job="$job"})`: 0,
	} {
		problems := checkSelectors(query{where: "test", expr: expr}, exposed, sc)
		if len(problems) != wantProblems {
			t.Errorf("%s: %d problems, want %d: %q", expr, len(problems), wantProblems, problems)
		}
	}
}

// TestRulesAndDashboardReadSeriesTheRelayExposes runs the relay, scrapes
// it once it has delivered an email and a Slack message, and checks every
// series the alert rules and the dashboard read against what it exposed:
// a renamed metric, label or outcome fails here rather than leaving an
// alert that can never fire. It then stops Redis and checks what
// ExamRelayRedisUnreachable relies on: the scrape still works, and the
// queue series are gone.
func TestRulesAndDashboardReadSeriesTheRelayExposes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the relay and runs it with a redis-server")
	}
	sc := readScrapeConfig(t)
	if !slices.Contains(sc.ruleFiles, filepath.Base(alertsFile)) {
		t.Errorf("%s loads %q, not %s", prometheusFile, sc.ruleFiles, filepath.Base(alertsFile))
	}
	queries := append(ruleQueries(t), dashboardQueries(t, sc.job)...)

	redis := relaytest.StartRedis(t)
	relay := startRelay(t, redis.URL)
	// An exam a month away, whatever today is: its reminder is held.
	example, err := os.ReadFile(filepath.Join("..", "examples", "registration.json"))
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().AddDate(0, 1, 0).UTC().Format(time.DateOnly)
	relay.post(t, []byte(strings.ReplaceAll(string(example), "2026-12-14", day)))
	// Histograms with labels appear once observed; asynq lists a queue
	// once something was queued in it.
	want := []string{
		`relay_send_duration_seconds_bucket{channel="email"}`,
		`relay_send_duration_seconds_bucket{channel="slack"}`,
	}
	for _, q := range tasks.Queues {
		want = append(want, fmt.Sprintf(`asynq_queue_size{queue=%q}`, q))
	}
	exposed := relay.scrapeUntil(t, want)

	for _, q := range queries {
		for _, p := range checkSelectors(q, exposed, sc) {
			t.Errorf("%s: %s", q.where, p)
		}
	}

	t.Run("without Redis", func(t *testing.T) {
		redis.Stop()
		e, err := relay.scrape()
		if err != nil {
			t.Fatalf("the scrape fails while Redis is down (the alert expects it to succeed): %v", err)
		}
		for name := range e {
			if strings.HasPrefix(name, "asynq_") {
				t.Errorf("%s is still exposed while Redis is down: ExamRelayRedisUnreachable would not fire", name)
			}
		}
		if _, ok := e["relay_deliveries_total"]; !ok {
			t.Error("the relay's own series are gone too")
		}
	})
}

// runningRelay is `relay run`, built from this repository, as a child
// process.
type runningRelay struct {
	base, password string
}

func startRelay(t *testing.T, redisURL string) *runningRelay {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "relay")
	build := exec.Command("go", "build", "-o", bin, "github.com/exam-relay/relay/cmd/relay")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/relay: %v\n%s", err, out)
	}
	r := &runningRelay{password: "deploy-test-password"}
	cmd := exec.Command(bin, "run")
	cmd.Dir = dir
	// Only what is set here: nothing of the caller's RELAY_* settings.
	cmd.Env = []string{
		"RELAY_REDIS_URL=" + redisURL,
		"RELAY_HTTP_ADDR=127.0.0.1:0",
		"RELAY_WEBHOOK_PASSWORD=" + r.password,
		"RELAY_SPOOL_DIR=" + filepath.Join(dir, "spool"),
		"RELAY_OUTBOX_DIR=" + filepath.Join(dir, "outbox"),
		// No Slack URL: messages are printed; one per registration, now.
		"RELAY_SLACK_MODE=each",
		// A Teams stand-in, so that every queue has had a task.
		"RELAY_TEAMS_WEBHOOK_URL=" + relaytest.StartTeams(t).WebhookURL(),
		"RELAY_TEAMS_MODE=each",
		// The fan-out sends the confirmation itself: a reminder puts a task
		// in the email queue, so that its series are there to check.
		"RELAY_REMINDER_BEFORE_OPEN=1h",
	}
	// Slack messages go to stdout, as does where the relay listens.
	var stdout, logs relaytest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("relay log:\n%.4000s", logs.String())
		}
	})

	listening := regexp.MustCompile(`Listening on (https?://[^/\s]+)`)
	deadline := time.Now().Add(30 * time.Second)
	for r.base == "" {
		if m := listening.FindStringSubmatch(stdout.String()); m != nil {
			r.base = m[1]
			break
		}
		select {
		case <-exited:
			t.Fatalf("relay run ended at start:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay run did not say where it listens:\n%s", logs.String())
		}
	}
	return r
}

func (r *runningRelay) post(t *testing.T, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.base+webhook.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("synap", r.password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", webhook.Path, resp.StatusCode, b)
	}
}

func (r *runningRelay) scrape() (exposition, error) {
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseExposition(resp.Body)
}

// scrapeUntil scrapes until every selector in want has a series, and
// returns that scrape.
func (r *runningRelay) scrapeUntil(t *testing.T, want []string) exposition {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e, err := r.scrape()
		if err != nil {
			t.Fatal(err)
		}
		var missing []string
		for _, w := range want {
			if problems := checkSelectors(query{expr: w}, e, scrapeConfig{}); len(problems) > 0 {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the relay still exposes none of %q", missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
