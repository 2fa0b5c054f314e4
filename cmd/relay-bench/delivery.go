package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wneessen/go-mail"
)

// delivery, round after round: relay work, then the thin worker, drain the
// same registrations, each queued by its own receiver while no worker ran;
// then raw go-mail sends of the message the relay sent, over as many
// connections as it used, for the ceiling.
func (b *bench) delivery(ctx context.Context) (delivery, error) {
	n := b.s.deliveryN
	res := delivery{Registrations: n, Workers: b.s.workers, SlackMode: b.slackMode()}
	bodies := registrations("delivery", n, b.s.exams)
	for round := range b.s.rounds {
		var r deliveryRound
		var sample []byte
		var err error
		b.logf("delivery, round %d: relay serve queues %d registrations, relay work drains them", round+1, n)
		if r.Relay, sample, err = b.drain(ctx, relayImpl, bodies); err != nil {
			return res, fmt.Errorf("relay: %w", err)
		}
		b.logf("delivery, round %d: the thin receiver queues %d registrations, the thin worker drains them", round+1, n)
		if r.Thin, _, err = b.drain(ctx, thinImpl, bodies); err != nil {
			return res, fmt.Errorf("thin: %w", err)
		}
		b.logf("delivery, round %d: %d go-mail sends over %d connections", round+1, n, r.Relay.Connections)
		if r.Ceiling, err = b.deliveryCeiling(ctx, sample, n, r.Relay.Connections); err != nil {
			return res, fmt.Errorf("ceiling: %w", err)
		}
		r.RelayVsThin = ratio(r.Relay.PerSecond, r.Thin.PerSecond)
		r.RelayVsCeiling = ratio(r.Relay.PerSecond, r.Ceiling.PerSecond)
		r.RelayVsThinPerCPU = ratio(r.Relay.perCPUSecond(), r.Thin.perCPUSecond())
		res.Rounds = append(res.Rounds, r)
	}
	rs := res.Rounds
	res.RelayPerSecond = medianOf(rs, func(r deliveryRound) float64 { return r.Relay.PerSecond })
	res.ThinPerSecond = medianOf(rs, func(r deliveryRound) float64 { return r.Thin.PerSecond })
	res.CeilingPerSecond = medianOf(rs, func(r deliveryRound) float64 { return r.Ceiling.PerSecond })
	res.RelayVsThin = medianOf(rs, func(r deliveryRound) float64 { return r.RelayVsThin })
	res.RelayVsCeiling = medianOf(rs, func(r deliveryRound) float64 { return r.RelayVsCeiling })
	res.RelayPerCPUSecond = medianOf(rs, func(r deliveryRound) float64 { return r.Relay.perCPUSecond() })
	res.ThinPerCPUSecond = medianOf(rs, func(r deliveryRound) float64 { return r.Thin.perCPUSecond() })
	res.RelayVsThinPerCPU = medianOf(rs, func(r deliveryRound) float64 { return r.RelayVsThinPerCPU })
	return res, nil
}

// drain queues bodies through which's receiver, then times which's
// workers from their start to the last email the sink takes. It returns
// the first message sent too.
func (b *bench) drain(ctx context.Context, which impl, bodies [][]byte) (deliveryRun, []byte, error) {
	n := len(bodies)
	res := deliveryRun{Emails: n}
	if err := b.flush(ctx); err != nil {
		return res, nil, err
	}
	if err := b.queueThrough(ctx, which, bodies); err != nil {
		return res, nil, err
	}
	b.smtp.reset()
	b.slack.reset()
	before, err := b.commandCalls(ctx)
	if err != nil {
		return res, nil, err
	}
	start := time.Now()
	workers, err := b.startWorkers(ctx, which, b.s.workers)
	if err != nil {
		return res, nil, err
	}
	cpu := b.meter(workers...)
	waitErr := b.waitFor(ctx, fmt.Sprintf("%d emails", n), func() bool { return b.smtp.stats().count >= n })
	res.CPU = cpu.cores()
	after, statsErr := b.commandCalls(ctx)
	rss, stopErr := stopAll(workers)
	st := b.smtp.stats()
	switch {
	case waitErr != nil:
		return res, nil, fmt.Errorf("%w (got %d)", waitErr, st.count)
	case statsErr != nil:
		return res, nil, statsErr
	case stopErr != nil:
		return res, nil, stopErr
	}
	res.Redis = after.perEmail(before, n)
	res.PerSecond = perSecond(n, st.last.Sub(start))
	res.Duplicates = st.dups
	res.Connections = st.peakOpen
	res.MessageBytes = int(st.bytes / int64(st.count))
	res.PeakRSSMB = megabytes(rss)
	return res, b.smtp.sampleMessage(), b.flush(ctx)
}

// deliveryCeiling sends n copies of sample over conns connections, with
// nothing in front: no queue, no rendering.
func (b *bench) deliveryCeiling(ctx context.Context, sample []byte, n, conns int) (deliveryRun, error) {
	res := deliveryRun{Emails: n, Connections: conns}
	msgs, err := ceilingMessages(sample, n)
	if err != nil {
		return res, err
	}
	b.smtp.reset()
	start := time.Now()
	cpu := b.meter()
	if err := sendAll(ctx, b.smtp.addr, msgs, conns); err != nil {
		return res, err
	}
	res.CPU = cpu.cores()
	st := b.smtp.stats()
	if st.count != n {
		return res, fmt.Errorf("the sink got %d of %d messages", st.count, n)
	}
	res.PerSecond = perSecond(n, st.last.Sub(start))
	res.MessageBytes = int(st.bytes / int64(st.count))
	return res, nil
}

func (b *bench) slackMode() string {
	if m := lookup(b.relayEnv)("RELAY_SLACK_MODE"); m != "" {
		return m
	}
	return "digest"
}

// ceilingMessages are n copies of a message the relay sent, each to its own
// recipient, built before the clock starts.
func ceilingMessages(sample []byte, n int) ([]*mail.Msg, error) {
	if sample == nil {
		return nil, fmt.Errorf("no sample message from the relay")
	}
	msgs := make([]*mail.Msg, n)
	for i := range msgs {
		m, err := mail.EMLToMsgFromString(string(sample))
		if err != nil {
			return nil, fmt.Errorf("read the relay's message back: %w", err)
		}
		if err := m.To(fmt.Sprintf("ceiling%d@example.edu", i)); err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

// sendAll sends msgs over conns reused go-mail connections.
func sendAll(ctx context.Context, addr string, msgs []*mail.Msg, conns int) error {
	host, port, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	clients := make(chan *mail.Client, conns)
	for range conns {
		c, err := mail.NewClient(host, mail.WithPort(port), mail.WithTLSPolicy(mail.NoTLS), mail.WithTimeout(30*time.Second))
		if err != nil {
			return err
		}
		if err := c.DialWithContext(ctx); err != nil {
			return err
		}
		clients <- c
	}
	close(clients)
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			defer c.Close()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(msgs) {
					return
				}
				if c.Send(msgs[i]) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d sends failed", n)
	}
	return nil
}
