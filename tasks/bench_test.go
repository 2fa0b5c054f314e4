package tasks

import (
	"fmt"
	"testing"

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

// BenchmarkDigest500 is a digest's way through the worker, per item: a
// batch of 500 items becomes a digest task, and its delivery reads it.
func BenchmarkDigest500(b *testing.B) {
	r := example(b, "registration.json")
	items := make([][]byte, 500)
	for i := range items {
		r.User.Name, r.User.Email = fmt.Sprintf("Student %d", 500-i), fmt.Sprintf("s%d@example.edu", i)
		items[i] = digestItem(b, r)
	}
	b.ReportAllocs()
	for b.Loop() {
		task, err := NewDigestBatchTask(relay.Slack, "digest:x", "b1", items, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if d, err := ParseDigest(task.Payload()); err != nil || len(d.Items) != len(items) {
			b.Fatalf("%d items (%v)", len(d.Items), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(items)), "µs/item")
}
