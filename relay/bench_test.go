package relay

import (
	"os"
	"testing"
)

func BenchmarkDecodeRegistration(b *testing.B) {
	body, err := os.ReadFile("../examples/registration.json")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRegistration(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegistrationID: relay serve computes it twice per webhook (the
// answer and the log, the task's id) and the worker once per task.
func BenchmarkRegistrationID(b *testing.B) {
	body, err := os.ReadFile("../examples/registration.json")
	if err != nil {
		b.Fatal(err)
	}
	r, err := DecodeRegistration(body)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.ID()
	}
}
