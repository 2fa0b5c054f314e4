package tasks

import (
	"testing"
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
