package main

import (
	"context"
	"fmt"
	"time"
)

// burst: relay serve and relay work together, from the first POST to the
// last email and the last digest.
func (b *bench) burst(ctx context.Context) (burst, error) {
	n := b.s.burstN
	res := burst{Registrations: n, Exams: b.s.exams, SlackMode: b.slackMode()}
	if err := b.flush(ctx); err != nil {
		return res, err
	}
	b.smtp.reset()
	b.slack.reset()
	work, _, err := b.start(ctx, relayImpl, "work")
	if err != nil {
		return res, err
	}
	defer work.stop(30 * time.Second)
	serve, base, err := b.start(ctx, relayImpl, "serve")
	if err != nil {
		return res, err
	}
	defer serve.stop(30 * time.Second)
	bodies := registrations("burst", n, b.s.exams)

	b.logf("burst: %d registrations over %d exams through serve and work", n, b.s.exams)
	start := time.Now()
	cpu := b.meter(serve, work)
	_, errs := b.postAll(ctx, base, bodies)
	res.PostSeconds = time.Since(start).Seconds()
	res.Errors = errs
	accepted := n - errs
	err = b.waitFor(ctx, fmt.Sprintf("%d emails", accepted), func() bool { return b.smtp.stats().count >= accepted })
	res.CPU = cpu.cores()
	if err == nil && res.SlackMode != "off" {
		err = b.waitFor(ctx, fmt.Sprintf("digests for %d students", accepted), func() bool {
			_, students, _ := b.slack.stats()
			return students >= accepted
		})
	}
	// Anything sent twice would come soon after: give it the time.
	time.Sleep(2 * time.Second)
	st := b.smtp.stats()
	res.Digests, res.DigestStudents, _ = b.slack.stats()
	res.Emails, res.Duplicates = st.count, st.dups
	if err != nil {
		return res, fmt.Errorf("%w (got %d emails, digests for %d students)", err, res.Emails, res.DigestStudents)
	}
	_, _, lastPost := b.slack.stats()
	res.LastEmailSeconds = st.last.Sub(start).Seconds()
	if !lastPost.IsZero() {
		res.LastDigestSeconds = lastPost.Sub(start).Seconds()
	}
	serveRSS, err := serve.peakRSS()
	if err != nil {
		return res, err
	}
	workRSS, err := work.peakRSS()
	if err != nil {
		return res, err
	}
	res.ServePeakRSSMB, res.WorkPeakRSSMB = megabytes(serveRSS), megabytes(workRSS)
	return res, nil
}
