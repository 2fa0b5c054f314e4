package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
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

// summary is entries as "Status/Kind Email Exam", for comparing.
func summary(entries []HistoryEntry) string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Status+"/"+e.Kind+" "+e.Email+" "+e.Exam)
	}
	return strings.Join(out, "; ")
}

func TestHistoryFindsAUsersEntriesUnderEachOfTheirAddresses(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(time.Hour)
	start := time.Now().Add(-time.Minute)
	for i, e := range []HistoryEntry{
		{Kind: "confirmation", Status: HistorySent, Email: "old@example.edu", User: "usr_1", Exam: "exm_1"},
		{Kind: "confirmation", Status: HistorySent, Email: "new@example.edu", User: "usr_1", Exam: "exm_2"},
		// Another Synap user with the first address: theirs, not usr_1's.
		{Kind: "confirmation", Status: HistorySent, Email: "old@example.edu", User: "usr_2", Exam: "exm_3"},
		{Kind: "reminder", Status: HistoryFailed, Email: "old@example.edu", User: "usr_1", Exam: "exm_1"},
	} {
		e.Channel, e.Time = "email", start.Add(time.Duration(i)*time.Second)
		if err := h.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		key  HistoryKey
		want string
	}{
		{HistoryKey{HistoryByUser, "usr_1"}, "failed/reminder old@example.edu exm_1; sent/confirmation new@example.edu exm_2; sent/confirmation old@example.edu exm_1"},
		{HistoryKey{HistoryByUser, "usr_2"}, "sent/confirmation old@example.edu exm_3"},
		{HistoryKey{HistoryByEmail, "old@example.edu"}, "failed/reminder old@example.edu exm_1; sent/confirmation old@example.edu exm_3; sent/confirmation old@example.edu exm_1"},
	} {
		entries, err := h.Find(ctx, tt.key, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(entries); got != tt.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tt.key.By, tt.key.Value, got, tt.want)
		}
	}
	if entries, _ := h.Find(ctx, HistoryKey{HistoryByUser, "usr_1"}, 2); len(entries) != 2 || entries[0].Kind != "reminder" {
		t.Errorf("limit 2: %s", summary(entries))
	}
}

func TestHistoryFindsAnExamsStudentsAndDigestsNewestFirst(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(time.Hour)
	start := time.Now().Add(-time.Hour + time.Minute)
	// More students than findByExam reads at once, each also on another
	// exam, and a staff digest among them.
	const students = 250
	var want []string // newest first
	for i := range students {
		at := start.Add(time.Duration(i) * time.Second)
		email := fmt.Sprintf("student%03d@example.edu", i)
		for _, e := range []HistoryEntry{
			{Kind: "confirmation", Email: email, User: fmt.Sprint("usr_", i), Exam: "exm_1", Time: at},
			{Kind: "confirmation", Email: email, User: fmt.Sprint("usr_", i), Exam: "exm_2", Time: at.Add(time.Millisecond)},
		} {
			e.Channel, e.Status = "email", HistorySent
			if err := h.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		want = append([]string{"sent/confirmation " + email + " exm_1"}, want...)
		if i == 200 {
			digest := HistoryEntry{Channel: "slack", Kind: "digest", Status: HistorySent, Exam: "exm_1", Detail: "201 students", Time: at.Add(time.Millisecond)}
			if err := h.Record(ctx, digest); err != nil {
				t.Fatal(err)
			}
			want = append([]string{"sent/digest  exm_1"}, want...)
		}
	}
	for _, limit := range []int{0, 10, 60, 200} {
		entries, err := h.Find(ctx, HistoryKey{HistoryByExam, "exm_1"}, limit)
		if err != nil {
			t.Fatal(err)
		}
		w := want
		if limit > 0 {
			w = want[:limit]
		}
		if got := summary(entries); got != strings.Join(w, "; ") {
			t.Errorf("limit %d: %d entries, want %d; first %.200s", limit, len(entries), len(w), got)
		}
	}
}

func TestHistoryTrimsEntriesAndIndexesToTheRetention(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(time.Hour)
	now, old := time.Now(), time.Now().Add(-2*time.Hour)
	record := func(email, user, exam string, at time.Time) {
		t.Helper()
		err := h.Record(ctx, HistoryEntry{Channel: "email", Kind: "confirmation", Status: HistorySent, Email: email, User: user, Exam: exam, Time: at})
		if err != nil {
			t.Fatal(err)
		}
	}
	record("a@example.edu", "usr_a", "exm_old", old)
	record("b@example.edu", "usr_b", "exm_1", old)
	// Not yet written again: kept, but past the retention, so not shown.
	if entries, _ := h.Find(ctx, HistoryKey{HistoryByEmail, "a@example.edu"}, 10); len(entries) != 0 {
		t.Errorf("an entry past the retention is shown: %s", summary(entries))
	}
	if entries, _ := h.Find(ctx, HistoryKey{HistoryByExam, "exm_old"}, 10); len(entries) != 0 {
		t.Errorf("an exam's entry past the retention is shown: %s", summary(entries))
	}
	record("a@example.edu", "usr_a", "exm_1", now)
	record("c@example.edu", "usr_c", "exm_1", now.Add(time.Millisecond))
	if n := s.rdb.LLen(ctx, historyStudentKey(studentTag("a@example.edu"))).Val(); n != 1 {
		t.Errorf("the student's list holds %d entries after a write, want the new one only", n)
	}
	// b's last entry for exm_1 is past the retention: the write for c
	// took b out of the exam's index.
	if _, err := s.rdb.ZScore(ctx, historyStudentsKey(HistoryByExam, historyTag("exm_1")), studentTag("b@example.edu")).Result(); err == nil {
		t.Error("the exam's index still lists a student whose entries are past the retention")
	}
	if entries, _ := h.Find(ctx, HistoryKey{HistoryByExam, "exm_1"}, 10); summary(entries) != "sent/confirmation c@example.edu exm_1; sent/confirmation a@example.edu exm_1" {
		t.Errorf("exm_1: %s", summary(entries))
	}
	for _, key := range []string{historyStudentKey(studentTag("a@example.edu")), historyStudentsKey(HistoryByUser, historyTag("usr_a")), historyStudentsKey(HistoryByExam, historyTag("exm_1"))} {
		if ttl := s.rdb.TTL(ctx, key).Val(); ttl < 59*time.Minute || ttl > time.Hour {
			t.Errorf("%s expires in %v, want the retention", key, ttl)
		}
	}
}

func TestHistoryForgetRemovesTheStudentFromEveryIndex(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(time.Hour)
	now := time.Now()
	for _, e := range []HistoryEntry{
		// Past the retention, and then trimmed from the student's list by
		// the next write: only exm_old's index still lists them.
		{Email: "Amira@example.edu", User: "usr_a", Exam: "exm_old", Time: now.Add(-2 * time.Hour)},
		{Email: "amira@example.edu", User: "usr_a", Exam: "exm_1", Time: now},
		{Email: "amira@example.edu", User: "usr_a2", Exam: "exm_2", Time: now},
		{Email: "liam@example.edu", User: "usr_l", Exam: "exm_1", Time: now},
	} {
		e.Channel, e.Kind, e.Status = "email", "confirmation", HistorySent
		if err := h.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// An entry of the first layout, written before this one.
	firstIndex := firstHistoryIndexKey(HistoryByEmail, relay.Hash("amira@example.edu"))
	s.rdb.Set(ctx, firstHistoryEntryKey("AaIcvOUdvcLgyg"), `{"t":1,"c":"email","k":"confirmation","s":"sent","a":"amira@example.edu"}`, time.Hour)
	s.rdb.ZAdd(ctx, firstIndex, redis.Z{Score: 1, Member: "AaIcvOUdvcLgyg"})

	n, err := h.forget(ctx, "AMIRA@example.edu")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("forgot %d entries, want 3 (two in the list, one of the first layout)", n)
	}
	for _, by := range []string{HistoryByEmail, HistoryByUser, HistoryByExam} {
		for _, v := range []string{"amira@example.edu", "usr_a", "usr_a2", "exm_1", "exm_2"} {
			if entries, _ := h.Find(ctx, HistoryKey{by, v}, 10); strings.Contains(strings.ToLower(summary(entries)), "amira") {
				t.Errorf("%s %s still finds %s", by, v, summary(entries))
			}
		}
	}
	amira := studentTag("amira@example.edu")
	keys, _ := s.rdb.Keys(ctx, "*").Result()
	for _, k := range keys {
		if k == firstIndex || k == firstHistoryEntryKey("AaIcvOUdvcLgyg") || k == historyStudentKey(amira) {
			t.Errorf("%s is left", k)
		}
		if s.rdb.Type(ctx, k).Val() != "zset" {
			continue
		}
		if _, err := s.rdb.ZScore(ctx, k, amira).Result(); err == nil {
			t.Errorf("%s still lists the student", k)
		}
	}
	if entries, _ := h.Find(ctx, HistoryKey{HistoryByExam, "exm_1"}, 10); summary(entries) != "sent/confirmation liam@example.edu exm_1" {
		t.Errorf("the classmate's entries: %s", summary(entries))
	}
}

// TestHistoryEntryIsLean measures what an entry costs Redis, all in: its
// place in the student's list, and the indexes by user and exam. It also
// counts keys: at most two per student (their list and the index of their
// user id), besides one per exam. BENCHMARKS.md quotes the figures it logs.
func TestHistoryEntryIsLean(t *testing.T) {
	for _, tt := range []struct {
		name                  string
		students, exams, each int // each: entries per student
		ceiling               float64
	}{
		// Students with a few entries each: confirmations, reminders,
		// staff alerts.
		{"four entries per student", 2_500, 40, 4, 560},
		// What one registration costs in the relay-bench memory run: a
		// student's list and user index hold a single entry, and 500
		// students share an exam.
		{"one entry per student", 10_000, 20, 1, 1024},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			h := s.NewHistory(180 * 24 * time.Hour)
			usedMemory := func() int64 {
				n, err := strconv.ParseInt(relaytest.Info(t, s.rdb, "memory")["used_memory"], 10, 64)
				if err != nil {
					t.Fatalf("INFO memory's used_memory: %v", err)
				}
				return n
			}
			before := usedMemory()
			n := tt.students * tt.each
			for i := range n {
				student := i % tt.students
				err := h.Record(ctx, HistoryEntry{
					Channel: "email", Kind: "confirmation", Status: HistorySent,
					Registration: "eabf069cbf3f21aeb2bb7b47e4144067",
					Email:        fmt.Sprintf("student%05d@university.example.edu", student), User: fmt.Sprintf("usr_%08d", student),
					Exam: fmt.Sprintf("exm_%06d", i%tt.exams), ExamName: "Year 2 Pharmacology Summative", Route: "default",
					MessageID: "<eabf069cbf3f21aeb2bb7b47e4144067.confirmation@university.example.edu>",
					Detail:    "250 2.0.0 Ok: queued as 4Tq9Ld1xQkz3",
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			per := float64(usedMemory()-before) / float64(n)
			keys := s.rdb.DBSize(ctx).Val()
			t.Logf("history: %.0f bytes of Redis memory per entry, %d keys (%d entries over %d students and %d exams)", per, keys, n, tt.students, tt.exams)
			if per > tt.ceiling {
				t.Errorf("an entry costs %.0f bytes, over %.0f", per, tt.ceiling)
			}
			if keys > int64(2*tt.students+tt.exams) {
				t.Errorf("%d keys for %d students and %d exams, want at most 2 per student and 1 per exam", keys, tt.students, tt.exams)
			}
		})
	}
}

func TestMarkAndRecordWritesBothEvenAfterRedisForgotTheScripts(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(time.Hour)
	reg := registration(time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour))
	for i, flush := range []bool{false, true} {
		if _, err := s.SwapSchedule(ctx, reg, fmt.Sprint("task-", i)); err != nil {
			t.Fatal(err)
		}
		if flush {
			// What a restarted or failed-over Redis knows of our scripts.
			if err := s.rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		e := HistoryEntry{Channel: "email", Kind: "confirmation", Status: HistorySent, Email: reg.User.Email, User: reg.User.ID, Exam: reg.Exam.ObjectID}
		markErr, recordErr := h.MarkAndRecord(ctx, Mark{Reg: reg, Deliveries: []string{LedgerConfirmation}, FanOut: true}, e)
		if markErr != nil || recordErr != nil {
			t.Fatalf("flushed %v: mark %v, record %v", flush, markErr, recordErr)
		}
		if done, _, err := s.Delivered(ctx, reg, LedgerConfirmation); !done || err != nil {
			t.Errorf("flushed %v: the confirmation's mark is not there (%v)", flush, err)
		}
		if done, _, _ := s.Delivered(ctx, reg, LedgerFannedOut); !done {
			t.Errorf("flushed %v: the fan-out is not marked done", flush)
		}
		if n := s.rdb.Exists(ctx, claimKey(reg.SubjectID())).Val(); n != 0 {
			t.Errorf("flushed %v: the fan-out's claim is still held", flush)
		}
		entries, err := h.Find(ctx, HistoryKey{HistoryByUser, reg.User.ID}, 0)
		if err != nil || len(entries) != i+1 {
			t.Errorf("flushed %v: %d entries for the student (%v), want %d", flush, len(entries), err, i+1)
		}
		if err := s.rdb.HDel(ctx, scheduleKey(reg.SubjectID()), LedgerConfirmation, LedgerFannedOut).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// One script writes the mark and the entry, and the mark is written when
// the entry cannot be: a lost mark would be a second email.
func TestMarkAndRecordWritesOneWhenTheOtherFails(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	h := s.NewHistory(time.Hour)
	reg := registration(time.Now().Add(30 * 24 * time.Hour).Truncate(time.Hour))
	if _, err := s.SwapSchedule(ctx, reg, "task-1"); err != nil {
		t.Fatal(err)
	}
	e := HistoryEntry{Channel: "email", Kind: "confirmation", Status: HistorySent, Email: reg.User.Email, User: reg.User.ID, Exam: reg.Exam.ObjectID}
	m := Mark{Reg: reg, Deliveries: []string{LedgerConfirmation}, FanOut: true}

	// The student's history list is something else: the entry fails, the
	// mark is written.
	list := historyStudentKey(studentTag(reg.User.Email))
	if err := s.rdb.Set(ctx, list, "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	markErr, recordErr := h.MarkAndRecord(ctx, m, e)
	if markErr != nil || recordErr == nil || !strings.Contains(recordErr.Error(), "WRONGTYPE") {
		t.Errorf("mark %v, record %v; want the record's WRONGTYPE alone", markErr, recordErr)
	}
	if done, _, err := s.Delivered(ctx, reg, LedgerConfirmation); !done || err != nil {
		t.Errorf("the confirmation's mark is not there (%v)", err)
	}
	if err := s.rdb.Del(ctx, list).Err(); err != nil {
		t.Fatal(err)
	}

	// An erased ledger, which the mark does not bring back, is no failure:
	// the entry is kept.
	if err := s.rdb.Del(ctx, scheduleKey(reg.SubjectID())).Err(); err != nil {
		t.Fatal(err)
	}
	if markErr, recordErr := h.MarkAndRecord(ctx, m, e); markErr != nil || recordErr != nil {
		t.Errorf("mark %v, record %v", markErr, recordErr)
	}
	if entries, err := h.Find(ctx, HistoryKey{HistoryByUser, reg.User.ID}, 0); err != nil || len(entries) != 1 {
		t.Errorf("%d entries (%v), want 1", len(entries), err)
	}
}
