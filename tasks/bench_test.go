package tasks

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

func BenchmarkNewRegistrationTask(b *testing.B) {
	body, _ := os.ReadFile("../examples/registration.json")
	r, err := DecodeRegistration(body)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewRegistrationTask(r, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
