package relay

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/exam-relay/relay/tasks"
	"github.com/exam-relay/relay/templates"
)

// BenchmarkConfirmationMessage is the worker's CPU per email: render the
// templates, build the MIME message with its calendar file, write it out.
func BenchmarkConfirmationMessage(b *testing.B) {
	body, err := os.ReadFile("../examples/registration.json")
	if err != nil {
		b.Fatal(err)
	}
	reg, err := tasks.DecodeRegistration(body)
	if err != nil {
		b.Fatal(err)
	}
	set, err := templates.Load(templates.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, err := set.Confirmation(templates.NewData(reg, time.UTC))
		if err != nil {
			b.Fatal(err)
		}
		m, err := newConfirmation(Sender{From: "exams@example.edu"}, reg, e, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
