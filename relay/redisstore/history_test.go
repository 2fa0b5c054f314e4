package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHistoryFindsEntriesByAddressUserAndExamNewestFirst(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(time.Hour)
	start := time.Now().Add(-time.Minute)
	for i, e := range []HistoryEntry{
		{Channel: "email", Kind: "confirmation", Status: HistoryFailed, Email: "Jonas.Becker@example.edu", User: "usr_1", Exam: "exm_1", Detail: "451 try later"},
		{Channel: "email", Kind: "confirmation", Status: HistorySent, Email: "jonas.becker@example.edu", User: "usr_1", Exam: "exm_1", MessageID: "<a@example.edu>"},
		{Channel: "slack", Kind: "digest", Status: HistorySent, Exam: "exm_1", Detail: "2 students"},
		{Channel: "email", Kind: "confirmation", Status: HistorySent, Email: "someone@example.edu", User: "usr_2", Exam: "exm_2"},
	} {
		e.Time = start.Add(time.Duration(i) * time.Second)
		if err := h.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		key  HistoryKey
		want []string // Status/Kind, newest first
	}{
		{HistoryKey{HistoryByEmail, "JONAS.BECKER@example.edu"}, []string{"sent/confirmation", "failed/confirmation"}},
		{HistoryKey{HistoryByUser, "usr_1"}, []string{"sent/confirmation", "failed/confirmation"}},
		{HistoryKey{HistoryByExam, "exm_1"}, []string{"sent/digest", "sent/confirmation", "failed/confirmation"}},
		{HistoryKey{HistoryByEmail, "nobody@example.edu"}, nil},
	}
	for _, tt := range tests {
		entries, err := h.Find(ctx, tt.key, 10)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, e.Status+"/"+e.Kind)
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s %s: %v, want %v", tt.key.By, tt.key.Value, got, tt.want)
		}
	}
	// Addresses and ids stay out of key names.
	keys, _ := s.rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if strings.Contains(strings.ToLower(k), "jonas") || strings.Contains(k, "usr_1") || strings.Contains(k, "exm_1") {
			t.Errorf("key %q names the student or the exam", k)
		}
	}
}

func TestHistoryForgetsEntriesPastTheRetention(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(time.Second)
	h.Record(ctx, HistoryEntry{Channel: "email", Kind: "confirmation", Status: HistorySent, Email: "a@example.edu"})
	time.Sleep(1500 * time.Millisecond)
	if entries, _ := h.Find(ctx, HistoryKey{HistoryByEmail, "a@example.edu"}, 10); len(entries) != 0 {
		t.Errorf("%d entries after the retention", len(entries))
	}
	if n, _ := s.rdb.DBSize(ctx).Result(); n != 0 {
		keys, _ := s.rdb.Keys(ctx, "*").Result()
		t.Errorf("keys left after the retention: %v", keys)
	}
}

// TestHistoryEntryIsLean measures what an entry costs Redis, with its
// three index entries: BENCHMARKS.md quotes the figure it logs.
func TestHistoryEntryIsLean(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(180 * 24 * time.Hour)
	usedMemory := func() int64 {
		info, _ := s.rdb.Info(ctx, "memory").Result()
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		return 0
	}
	before := usedMemory()
	const n, students = 10_000, 2_500
	for i := range n {
		err := h.Record(ctx, HistoryEntry{
			Channel: "email", Kind: "confirmation", Status: HistorySent,
			Registration: "eabf069cbf3f21aeb2bb7b47e4144067",
			Email:        fmt.Sprintf("student%05d@university.example.edu", i%students), User: fmt.Sprintf("usr_%08d", i%students),
			Exam: fmt.Sprintf("exm_%06d", i%40), ExamName: "Year 2 Pharmacology Summative", Route: "default",
			MessageID: "<eabf069cbf3f21aeb2bb7b47e4144067.confirmation@university.example.edu>",
			Detail:    "250 2.0.0 Ok: queued as 4Tq9Ld1xQkz3",
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	per := float64(usedMemory()-before) / n
	t.Logf("history: %.0f bytes of Redis memory per entry (%d entries over %d students and 40 exams)", per, n, students)
	if per > 1024 {
		t.Errorf("an entry costs %.0f bytes, over a kilobyte", per)
	}
}
