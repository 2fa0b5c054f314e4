package templates

import (
	"testing"
	"time"
)

func BenchmarkConfirmation(b *testing.B) {
	s, err := Load(Options{})
	if err != nil {
		b.Fatal(err)
	}
	d := NewData(sampleRegistrations()[0], time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Confirmation(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStaffAlert(b *testing.B) {
	s, _ := Load(Options{})
	d := NewData(sampleRegistrations()[0], time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.StaffAlert(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStaffDigest500(b *testing.B) {
	s, _ := Load(Options{})
	d := NewData(sampleRegistrations()[0], time.UTC)
	digest := Digest{Exam: d.Exam, Groups: []string{d.Group.Name}, Count: 500, More: 475}
	for range 25 {
		digest.Students = append(digest.Students, d.Student)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.StaffDigest(digest); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReminder(b *testing.B) {
	s, _ := Load(Options{})
	d := NewData(sampleRegistrations()[0], time.UTC)
	r := Reminder{Data: d, Event: "open", When: d.Exam.Opens, Remaining: 90 * time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Reminder(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConfirmationFrench is the confirmation in another language:
// month and day names through monday.
func BenchmarkConfirmationFrench(b *testing.B) {
	fr, err := ParseLanguage("fr")
	if err != nil {
		b.Fatal(err)
	}
	s, err := Load(Options{Language: fr})
	if err != nil {
		b.Fatal(err)
	}
	d := NewData(sampleRegistrations()[0], time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Confirmation(d); err != nil {
			b.Fatal(err)
		}
	}
}
