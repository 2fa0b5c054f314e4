package templates

import (
	"testing"
	"time"

	"github.com/exam-relay/relay/relay"
)

func BenchmarkConfirmation(b *testing.B) {
	s, err := Load(Options{})
	if err != nil {
		b.Fatal(err)
	}
	r := sampleRegistrations()[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Confirmation(r, time.UTC); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStaffAlert(b *testing.B) {
	s, _ := Load(Options{})
	r := sampleRegistrations()[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.StaffAlert(relay.Slack, r, time.UTC); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStaffDigest500 is a digest of 500 students that names 25.
func BenchmarkStaffDigest500(b *testing.B) {
	s, _ := Load(Options{DigestList: 25})
	var d relay.Digest
	for i := range 500 {
		r := sampleRegistrations()[0]
		r.User.ID = r.User.ID + string(rune('a'+i%26)) + string(rune('a'+i/26))
		d.Items = append(d.Items, relay.DigestItem{Registration: r})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.StaffDigest(relay.Slack, d, time.UTC); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReminder(b *testing.B) {
	s, _ := Load(Options{})
	rem := relay.Reminder{Registration: sampleRegistrations()[0], Event: relay.ExamOpens, Before: 90 * time.Minute}
	now := rem.EventTime().Add(-90 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Reminder(rem, time.UTC, now); err != nil {
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
	r := sampleRegistrations()[0]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Confirmation(r, time.UTC); err != nil {
			b.Fatal(err)
		}
	}
}
