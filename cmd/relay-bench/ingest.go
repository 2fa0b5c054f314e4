package main

import (
	"context"
	"slices"
	"time"

	"github.com/hibiken/asynq"
)

// ingest, round after round: the same registrations posted to relay serve,
// then to the thin receiver, by the same clients, then enqueued raw with
// asynq for the ceiling.
func (b *bench) ingest(ctx context.Context) (ingest, error) {
	n := b.s.ingestN
	res := ingest{Registrations: n, Clients: b.s.clients}
	bodies := registrations("ingest", n, b.s.exams)
	ts, err := b.registrationTasks(bodies)
	if err != nil {
		return res, err
	}
	for round := range b.s.rounds {
		var r ingestRound
		b.logf("ingest, round %d: %d POSTs to relay serve from %d clients", round+1, n, b.s.clients)
		if r.Relay, err = b.ingestThrough(ctx, relayImpl, bodies); err != nil {
			return res, err
		}
		b.logf("ingest, round %d: %d POSTs to the thin receiver from %d clients", round+1, n, b.s.clients)
		if r.Thin, err = b.ingestThrough(ctx, thinImpl, bodies); err != nil {
			return res, err
		}
		b.logf("ingest, round %d: %d raw asynq enqueues from %d goroutines", round+1, n, b.s.clients)
		if r.Ceiling, err = b.ingestCeiling(ctx, ts); err != nil {
			return res, err
		}
		r.RelayVsThin = ratio(r.Relay.PerSecond, r.Thin.PerSecond)
		r.RelayVsCeiling = ratio(r.Relay.PerSecond, r.Ceiling.PerSecond)
		res.Rounds = append(res.Rounds, r)
	}
	rs := res.Rounds
	res.RelayPerSecond = medianOf(rs, func(r ingestRound) float64 { return r.Relay.PerSecond })
	res.ThinPerSecond = medianOf(rs, func(r ingestRound) float64 { return r.Thin.PerSecond })
	res.CeilingPerSecond = medianOf(rs, func(r ingestRound) float64 { return r.Ceiling.PerSecond })
	res.RelayP50Millis = medianOf(rs, func(r ingestRound) float64 { return r.Relay.P50Millis })
	res.RelayP99Millis = medianOf(rs, func(r ingestRound) float64 { return r.Relay.P99Millis })
	res.ThinP50Millis = medianOf(rs, func(r ingestRound) float64 { return r.Thin.P50Millis })
	res.ThinP99Millis = medianOf(rs, func(r ingestRound) float64 { return r.Thin.P99Millis })
	res.RelayVsThin = medianOf(rs, func(r ingestRound) float64 { return r.RelayVsThin })
	res.RelayVsCeiling = medianOf(rs, func(r ingestRound) float64 { return r.RelayVsCeiling })
	return res, nil
}

// ingestThrough posts bodies to which's receiver on an empty Redis.
func (b *bench) ingestThrough(ctx context.Context, which impl, bodies [][]byte) (ingestRun, error) {
	var res ingestRun
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	serve, base, err := b.start(ctx, which, "serve")
	if err != nil {
		return res, err
	}
	start := time.Now()
	cpu := b.meter(serve)
	latencies, errs := b.postAll(ctx, base, bodies)
	elapsed := time.Since(start)
	res.CPU = cpu.cores()
	rss, err := stopAll([]*child{serve})
	if err != nil {
		return res, err
	}
	slices.Sort(latencies)
	res.Errors = errs
	res.PerSecond = perSecond(len(bodies)-errs, elapsed)
	res.P50Millis = percentile(latencies, 0.50)
	res.P99Millis = percentile(latencies, 0.99)
	res.PeakRSSMB = megabytes(rss)
	if res.Queued, err = b.queued(); err != nil {
		return res, err
	}
	return res, b.flush(ctx)
}

// ingestCeiling enqueues the tasks relay serve would make, as many at once
// as there are clients, with nothing in front: no HTTP, no decoding.
func (b *bench) ingestCeiling(ctx context.Context, ts []*asynq.Task) (ingestRun, error) {
	var res ingestRun
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	// A new client each time: an asynq client names a queue in Redis's
	// list of queues only the first time it uses it, and the flush has
	// emptied that list.
	queue := asynq.NewClientFromRedisClient(b.rdb)
	start := time.Now()
	cpu := b.meter()
	res.Errors = parallel(len(ts), b.s.clients, func(i int) error {
		_, err := queue.EnqueueContext(ctx, ts[i])
		return err
	})
	res.PerSecond = perSecond(len(ts)-res.Errors, time.Since(start))
	res.CPU = cpu.cores()
	var err error
	if res.Queued, err = b.queued(); err != nil {
		return res, err
	}
	return res, b.flush(ctx)
}
