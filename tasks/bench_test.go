package tasks

import (
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
)

func BenchmarkNewRegistrationTask(b *testing.B) {
	r := example(b, "registration.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewRegistrationTask(r, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDigest500 is a digest's way through the worker, per item: the
// aggregator gathers 500 items into a digest task, and its delivery reads
// it.
func BenchmarkDigest500(b *testing.B) {
	r := example(b, "registration.json")
	items := make([]*asynq.Task, 500)
	for i := range items {
		r.User.Name, r.User.Email = fmt.Sprintf("Student %d", 500-i), fmt.Sprintf("s%d@example.edu", i)
		item, err := NewDigestItemTask(relay.Destination{Channel: relay.Slack, Name: "slack-1"}, r, time.Now(), Options{})
		if err != nil {
			b.Fatal(err)
		}
		items[i] = item
	}
	b.ReportAllocs()
	for b.Loop() {
		task, err := NewDigestTask("digest:x", items, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if d, err := ParseDigest(task.Payload()); err != nil || len(d.Items) != len(items) {
			b.Fatalf("%d items (%v)", len(d.Items), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(items)), "µs/item")
}
