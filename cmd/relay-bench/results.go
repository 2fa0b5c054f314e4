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

// results are what one run measured; the JSON written by -out. A phase
// left out by -phases is left out of it too.
type results struct {
	Machine  machine  `json:"machine"`
	Ingest   ingest   `json:"ingest,omitzero"`
	Delivery delivery `json:"delivery,omitzero"`
	Memory   memory   `json:"memory,omitzero"`
	Burst    burst    `json:"burst,omitzero"`
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

// ingest is relay serve, the thin receiver and raw enqueues, round after
// round. The medians are of each figure over the rounds; the ratios are
// the medians of the rounds' own ratios, each taken within one round.
type ingest struct {
	Registrations    int           `json:"registrations"`
	Clients          int           `json:"clients"`
	Rounds           []ingestRound `json:"rounds"`
	RelayPerSecond   float64       `json:"relay_per_second"`
	ThinPerSecond    float64       `json:"thin_per_second"`
	CeilingPerSecond float64       `json:"ceiling_per_second"`
	RelayP50Millis   float64       `json:"relay_p50_ms"`
	RelayP99Millis   float64       `json:"relay_p99_ms"`
	ThinP50Millis    float64       `json:"thin_p50_ms"`
	ThinP99Millis    float64       `json:"thin_p99_ms"`
	RelayVsThin      float64       `json:"relay_vs_thin"`
	RelayVsCeiling   float64       `json:"relay_vs_ceiling"`
}

type ingestRound struct {
	Relay          ingestRun `json:"relay"`
	Thin           ingestRun `json:"thin"`
	Ceiling        ingestRun `json:"ceiling"`
	RelayVsThin    float64   `json:"relay_vs_thin"`
	RelayVsCeiling float64   `json:"relay_vs_ceiling"`
}

// ingestRun is one of relay, thin and ceiling in one round. Errors are
// answers other than 202 (failed enqueues for the ceiling); Queued is the
// tasks Redis then held.
type ingestRun struct {
	PerSecond float64 `json:"per_second"`
	P50Millis float64 `json:"p50_ms,omitempty"`
	P99Millis float64 `json:"p99_ms,omitempty"`
	Errors    int     `json:"errors"`
	Queued    int     `json:"queued"`
	PeakRSSMB float64 `json:"serve_peak_rss_mb,omitempty"`
	// CPU is the CPUs each process kept busy: serve, redis and the harness
	// (the HTTP clients, or the enqueuing goroutines).
	CPU map[string]float64 `json:"cpu_cores"`
}

// delivery is relay work, the thin worker and raw go-mail sends, round
// after round, with medians as for ingest.
type delivery struct {
	Registrations int `json:"registrations"`
	// Workers is how many worker processes drained the queue.
	Workers          int             `json:"workers"`
	SlackMode        string          `json:"slack_mode"`
	Rounds           []deliveryRound `json:"rounds"`
	RelayPerSecond   float64         `json:"relay_per_second"`
	ThinPerSecond    float64         `json:"thin_per_second"`
	CeilingPerSecond float64         `json:"ceiling_per_second"`
	RelayVsThin      float64         `json:"relay_vs_thin"`
	RelayVsCeiling   float64         `json:"relay_vs_ceiling"`
	// The same drains counted in emails per CPU-second of the worker and
	// Redis (deliveryRun.perCPUSecond), with the median of the rounds'
	// ratios.
	RelayPerCPUSecond float64 `json:"relay_per_cpu_second"`
	ThinPerCPUSecond  float64 `json:"thin_per_cpu_second"`
	RelayVsThinPerCPU float64 `json:"relay_vs_thin_per_cpu"`
}

type deliveryRound struct {
	Relay             deliveryRun `json:"relay"`
	Thin              deliveryRun `json:"thin"`
	Ceiling           deliveryRun `json:"ceiling"`
	RelayVsThin       float64     `json:"relay_vs_thin"`
	RelayVsCeiling    float64     `json:"relay_vs_ceiling"`
	RelayVsThinPerCPU float64     `json:"relay_vs_thin_per_cpu"`
}

// deliveryRun is one of relay, thin and ceiling in one round.
type deliveryRun struct {
	Emails       int     `json:"emails"`
	PerSecond    float64 `json:"per_second"`
	Duplicates   int     `json:"duplicates"`
	Connections  int     `json:"smtp_connections"`
	MessageBytes int     `json:"message_bytes"`
	PeakRSSMB    float64 `json:"work_peak_rss_mb,omitempty"`
	// CPU is the CPUs each process kept busy: work, redis and the harness
	// (the SMTP sink, or the sending goroutines and the sink).
	CPU map[string]float64 `json:"cpu_cores"`
	// Redis is what Redis ran per email while the workers drained; the
	// ceiling uses no Redis.
	Redis redisWork `json:"redis"`
}

// perCPUSecond is the emails sent per second of CPU that the workers and
// Redis used: what one delivery costs them. The harness is left out: it
// stands for the mail server, and its share of the two cores is what lets
// the worker's emails/s ratio look better than this one. 0 when no CPU
// time was counted.
func (r deliveryRun) perCPUSecond() float64 {
	cpu := r.CPU["work"] + r.CPU["redis"]
	if cpu <= 0 {
		return 0
	}
	return r.PerSecond / cpu
}

// memory is what Redis keeps once registrations are delivered.
type memory struct {
	Registrations int       `json:"registrations"`
	Relay         memoryRun `json:"relay"`
	Thin          memoryRun `json:"thin"`
}

type memoryRun struct {
	Emails         int `json:"emails"`
	Duplicates     int `json:"duplicates"`
	Digests        int `json:"digests"`
	DigestStudents int `json:"digest_students"`
	// UsedMemoryBytes and Keys are INFO memory's used_memory and DBSIZE,
	// less what the empty Redis had.
	UsedMemoryBytes      int64   `json:"used_memory_bytes"`
	Keys                 int64   `json:"keys"`
	BytesPerRegistration float64 `json:"bytes_per_registration"`
	KeysPerRegistration  float64 `json:"keys_per_registration"`
	// LeftInQueues is tasks not completed once the worker stopped.
	LeftInQueues int       `json:"left_in_queues"`
	ByKey        []keyKind `json:"by_key"`
}

// keyKind is the keys of one pattern and what MEMORY USAGE says they hold.
type keyKind struct {
	Pattern string `json:"pattern"`
	Keys    int    `json:"keys"`
	Bytes   int64  `json:"bytes"`
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
	redisPer := func(w redisWork) string { return f2(w.Scripts) + " / " + f1(w.Commands) }
	ms := func(p50, p99 float64) string { return f2(p50) + " / " + f2(p99) }
	in, de, me, bu := r.Ingest, r.Delivery, r.Memory, r.Burst

	row("measure", "relay", "thin", "ceiling", "relay/thin", "relay/ceiling")
	// A phase left out by -phases has no registrations, and no rows.
	var serveRSS, workRSS [2]float64
	if in.Registrations > 0 {
		var inErrs, inQueued [3]int
		for i, rd := range in.Rounds {
			row(fmt.Sprintf("ingest %d: registrations/s (%d, %d clients)", i+1, in.Registrations, in.Clients),
				f0(rd.Relay.PerSecond), f0(rd.Thin.PerSecond), f0(rd.Ceiling.PerSecond), f2(rd.RelayVsThin), f2(rd.RelayVsCeiling))
			row(fmt.Sprintf("ingest %d: latency p50 / p99 (ms)", i+1), ms(rd.Relay.P50Millis, rd.Relay.P99Millis), ms(rd.Thin.P50Millis, rd.Thin.P99Millis), "", "", "")
			for j, run := range []ingestRun{rd.Relay, rd.Thin, rd.Ceiling} {
				inErrs[j] += run.Errors
				inQueued[j] += run.Queued
			}
			serveRSS = [2]float64{max(serveRSS[0], rd.Relay.PeakRSSMB), max(serveRSS[1], rd.Thin.PeakRSSMB)}
		}
		n := len(in.Rounds)
		row(fmt.Sprintf("ingest, median of %d: registrations/s", n), f0(in.RelayPerSecond), f0(in.ThinPerSecond), f0(in.CeilingPerSecond), f2(in.RelayVsThin), f2(in.RelayVsCeiling))
		row(fmt.Sprintf("ingest, median of %d: latency p50 / p99 (ms)", n), ms(in.RelayP50Millis, in.RelayP99Millis), ms(in.ThinP50Millis, in.ThinP99Millis), "", "", "")
		row("ingest: errors / queued, all rounds", fmt.Sprintf("%d / %d", inErrs[0], inQueued[0]), fmt.Sprintf("%d / %d", inErrs[1], inQueued[1]), fmt.Sprintf("%d / %d", inErrs[2], inQueued[2]), "", "")
		if n > 0 {
			last := in.Rounds[n-1]
			row("ingest: CPUs busy, last round", cores(last.Relay.CPU), cores(last.Thin.CPU), cores(last.Ceiling.CPU), "", "")
		}
	}
	if de.Registrations > 0 {
		var dups, bytesPer, conns [3]int
		for i, rd := range de.Rounds {
			row(fmt.Sprintf("delivery %d: emails/s (%d, %d worker, slack %s)", i+1, de.Registrations, de.Workers, de.SlackMode),
				f0(rd.Relay.PerSecond), f0(rd.Thin.PerSecond), f0(rd.Ceiling.PerSecond), f2(rd.RelayVsThin), f2(rd.RelayVsCeiling))
			for j, run := range []deliveryRun{rd.Relay, rd.Thin, rd.Ceiling} {
				dups[j] += run.Duplicates
				bytesPer[j] = run.MessageBytes
				conns[j] = max(conns[j], run.Connections)
			}
			workRSS = [2]float64{max(workRSS[0], rd.Relay.PeakRSSMB), max(workRSS[1], rd.Thin.PeakRSSMB)}
		}
		n := len(de.Rounds)
		row(fmt.Sprintf("delivery, median of %d: emails/s", n), f0(de.RelayPerSecond), f0(de.ThinPerSecond), f0(de.CeilingPerSecond), f2(de.RelayVsThin), f2(de.RelayVsCeiling))
		row(fmt.Sprintf("delivery, median of %d: emails per CPU-second (work + Redis)", n), f0(de.RelayPerCPUSecond), f0(de.ThinPerCPUSecond), "", f2(de.RelayVsThinPerCPU), "")
		row("delivery: SMTP connections, most at once", strconv.Itoa(conns[0]), strconv.Itoa(conns[1]), strconv.Itoa(conns[2]), "", "")
		row("delivery: bytes per email / duplicates, all rounds", fmt.Sprintf("%d / %d", bytesPer[0], dups[0]), fmt.Sprintf("%d / %d", bytesPer[1], dups[1]), fmt.Sprintf("%d / %d", bytesPer[2], dups[2]), "", "")
		if n > 0 {
			last := de.Rounds[n-1]
			row("delivery: CPUs busy, last round", cores(last.Relay.CPU), cores(last.Thin.CPU), cores(last.Ceiling.CPU), "", "")
			row("delivery: Redis scripts / commands per email, last round", redisPer(last.Relay.Redis), redisPer(last.Thin.Redis), "", "", "")
		}
	}
	if me.Registrations > 0 {
		row(fmt.Sprintf("Redis per delivered registration (%d): bytes", me.Registrations), f0(me.Relay.BytesPerRegistration), f0(me.Thin.BytesPerRegistration), "", f2(ratio(me.Relay.BytesPerRegistration, me.Thin.BytesPerRegistration)), "")
		row("Redis per delivered registration: keys", f2(me.Relay.KeysPerRegistration), f2(me.Thin.KeysPerRegistration), "", "", "")
		row("Redis: emails / duplicates / tasks left", fmt.Sprintf("%d / %d / %d", me.Relay.Emails, me.Relay.Duplicates, me.Relay.LeftInQueues),
			fmt.Sprintf("%d / %d / %d", me.Thin.Emails, me.Thin.Duplicates, me.Thin.LeftInQueues), "", "", "")
	}
	if bu.Registrations > 0 {
		row(fmt.Sprintf("burst: %d registrations, %d exams: all POSTs answered (s)", bu.Registrations, bu.Exams), f1(bu.PostSeconds), "", "", "", "")
		row("burst: first POST to last email (s)", f1(bu.LastEmailSeconds), "", "", "", "")
		row(fmt.Sprintf("burst: first POST to last digest (s, slack %s)", bu.SlackMode), f1(bu.LastDigestSeconds), "", "", "", "")
		row("burst: errors / emails / duplicates", fmt.Sprintf("%d / %d / %d", bu.Errors, bu.Emails, bu.Duplicates), "", "", "", "")
		row("burst: CPUs busy until the last email", cores(bu.CPU), "", "", "", "")
		row("burst: digests / students in them", fmt.Sprintf("%d / %d", bu.Digests, bu.DigestStudents), "", "", "", "")
		row("peak RSS serve / work, burst (MB)", f1(bu.ServePeakRSSMB)+" / "+f1(bu.WorkPeakRSSMB), "", "", "", "")
	}
	if in.Registrations > 0 || de.Registrations > 0 {
		// A phase that did not run has no peak: "-", not 0.
		mb := func(v float64) string {
			if v == 0 {
				return "-"
			}
			return f1(v)
		}
		row("peak RSS serve (ingest) / work (delivery) (MB)", mb(serveRSS[0])+" / "+mb(workRSS[0]), mb(serveRSS[1])+" / "+mb(workRSS[1]), "", "", "")
	}
	tw.Flush()
	fmt.Fprintf(w, "%d CPUs, %s, Redis %s (appendonly %v)\n", r.Machine.CPUs, r.Machine.GoVersion, r.Machine.Redis, r.Machine.RedisAOF)

	if me.Registrations == 0 {
		return
	}
	fmt.Fprintf(w, "\nRedis after delivering %d registrations, by key (MEMORY USAGE):\n", me.Registrations)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row("", "key", "keys", "keys per registration", "bytes per registration")
	for _, m := range []struct {
		name string
		run  memoryRun
	}{{"relay", me.Relay}, {"thin", me.Thin}} {
		for _, k := range m.run.ByKey {
			per := float64(me.Registrations)
			row(m.name, k.Pattern, strconv.Itoa(k.Keys), f2(float64(k.Keys)/per), f0(float64(k.Bytes)/per))
		}
	}
	tw.Flush()
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
