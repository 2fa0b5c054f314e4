package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// results are what one run measured; the JSON written by -out.
type results struct {
	Machine  machine  `json:"machine"`
	Ingest   ingest   `json:"ingest"`
	Delivery delivery `json:"delivery"`
	Burst    burst    `json:"burst"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Redis     string `json:"redis_version"`
	RedisAOF  bool   `json:"redis_aof"`
	// Settings are the -set flags the relay ran with.
	Settings []string `json:"settings,omitempty"`
	Date     string   `json:"date"`
}

type ingest struct {
	Registrations    int     `json:"registrations"`
	Clients          int     `json:"clients"`
	PerSecond        float64 `json:"per_second"`
	P50Millis        float64 `json:"p50_ms"`
	P99Millis        float64 `json:"p99_ms"`
	Errors           int     `json:"errors"`
	Queued           int     `json:"queued"`
	CeilingPerSecond float64 `json:"ceiling_per_second"`
	CeilingErrors    int     `json:"ceiling_errors"`
	Ratio            float64 `json:"ratio"`
	ServePeakRSSMB   float64 `json:"serve_peak_rss_mb"`
	// CPU is the CPUs each process kept busy: relay serve, redis and the
	// harness (the HTTP clients); CeilingCPU the same for the ceiling.
	CPU        map[string]float64 `json:"cpu_cores"`
	CeilingCPU map[string]float64 `json:"ceiling_cpu_cores"`
}

type delivery struct {
	Emails int `json:"emails"`
	// Workers is how many relay work processes drained the queue.
	Workers             int     `json:"workers"`
	Connections         int     `json:"smtp_connections"`
	SlackMode           string  `json:"slack_mode"`
	PerSecond           float64 `json:"per_second"`
	Duplicates          int     `json:"duplicates"`
	MessageBytes        int     `json:"message_bytes"`
	CeilingPerSecond    float64 `json:"ceiling_per_second"`
	CeilingMessageBytes int     `json:"ceiling_message_bytes"`
	Ratio               float64 `json:"ratio"`
	WorkPeakRSSMB       float64 `json:"work_peak_rss_mb"`
	// CPU is the CPUs each process kept busy: relay work, redis and the
	// harness (the SMTP sink); CeilingCPU the same for the ceiling.
	CPU        map[string]float64 `json:"cpu_cores"`
	CeilingCPU map[string]float64 `json:"ceiling_cpu_cores"`
}

type burst struct {
	Registrations     int     `json:"registrations"`
	Exams             int     `json:"exams"`
	SlackMode         string  `json:"slack_mode"`
	Errors            int     `json:"errors"`
	PostSeconds       float64 `json:"post_seconds"`
	LastEmailSeconds  float64 `json:"last_email_seconds"`
	LastDigestSeconds float64 `json:"last_digest_seconds"`
	Emails            int     `json:"emails"`
	Duplicates        int     `json:"duplicates"`
	Digests           int     `json:"digests"`
	DigestStudents    int     `json:"digest_students"`
	ServePeakRSSMB    float64 `json:"serve_peak_rss_mb"`
	WorkPeakRSSMB     float64 `json:"work_peak_rss_mb"`
	// CPU is the CPUs each process kept busy until the last email.
	CPU map[string]float64 `json:"cpu_cores"`
}

func printTable(w io.Writer, r results) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	f0 := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	in, de, bu := r.Ingest, r.Delivery, r.Burst

	row("measure", "relay", "ceiling", "ratio")
	row(fmt.Sprintf("ingest: registrations/s (%d, %d clients)", in.Registrations, in.Clients), f0(in.PerSecond), f0(in.CeilingPerSecond), f2(in.Ratio))
	row("ingest: latency p50 / p99 (ms)", f2(in.P50Millis)+" / "+f2(in.P99Millis), "", "")
	row("ingest: errors / queued", fmt.Sprintf("%d / %d", in.Errors, in.Queued), "", "")
	row("ingest: CPUs busy", cores(in.CPU), cores(in.CeilingCPU), "")
	row(fmt.Sprintf("delivery: emails/s (%d, %d worker, %d SMTP conns, slack %s)", de.Emails, de.Workers, de.Connections, de.SlackMode), f0(de.PerSecond), f0(de.CeilingPerSecond), f2(de.Ratio))
	row("delivery: bytes per email / duplicates", fmt.Sprintf("%d / %d", de.MessageBytes, de.Duplicates), strconv.Itoa(de.CeilingMessageBytes), "")
	row("delivery: CPUs busy", cores(de.CPU), cores(de.CeilingCPU), "")
	row(fmt.Sprintf("burst: %d registrations, %d exams: all POSTs answered (s)", bu.Registrations, bu.Exams), f1(bu.PostSeconds), "", "")
	row("burst: first POST to last email (s)", f1(bu.LastEmailSeconds), "", "")
	row(fmt.Sprintf("burst: first POST to last digest (s, slack %s)", bu.SlackMode), f1(bu.LastDigestSeconds), "", "")
	row("burst: errors / emails / duplicates", fmt.Sprintf("%d / %d / %d", bu.Errors, bu.Emails, bu.Duplicates), "", "")
	row("burst: CPUs busy until the last email", cores(bu.CPU), "", "")
	row("burst: digests / students in them", fmt.Sprintf("%d / %d", bu.Digests, bu.DigestStudents), "", "")
	row("peak RSS serve / work, burst (MB)", f1(bu.ServePeakRSSMB)+" / "+f1(bu.WorkPeakRSSMB), "", "")
	row("peak RSS serve (ingest) / work (delivery) (MB)", f1(in.ServePeakRSSMB)+" / "+f1(de.WorkPeakRSSMB), "", "")
	tw.Flush()
	fmt.Fprintf(w, "%d CPUs, %s, Redis %s (appendonly %v)\n", r.Machine.CPUs, r.Machine.GoVersion, r.Machine.Redis, r.Machine.RedisAOF)
}

// cores lists CPUs busy per process, busiest first.
func cores(m map[string]float64) string {
	names := slices.Collect(maps.Keys(m))
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(m[b], m[a]) })
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.2f", n, m[n])
	}
	return strings.Join(parts, ", ")
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}
