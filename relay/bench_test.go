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
