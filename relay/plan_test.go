package relay

import (
	"testing"
	"time"
)

func TestRemindersArePlannedForEveryOffsetAndZeroWhenPast(t *testing.T) {
	opens := time.Date(2026, 12, 14, 9, 0, 0, 0, time.UTC)
	closes := opens.Add(3 * time.Hour)
	reg := Registration{Exam: Exam{Schedule: Schedule{OpenDate: opens, CloseDate: &closes}}}
	noClose := Registration{Exam: Exam{Schedule: Schedule{OpenDate: opens}}}
	rs := Reminders{BeforeOpen: []time.Duration{24 * time.Hour, time.Hour}, BeforeClose: []time.Duration{30 * time.Minute}}
	tests := []struct {
		name string
		reg  Registration
		now  time.Time
		want []time.Time // At of each, in order; zero: passed
	}{
		{"two days ahead", reg, opens.Add(-48 * time.Hour), []time.Time{opens.Add(-24 * time.Hour), opens.Add(-time.Hour), closes.Add(-30 * time.Minute)}},
		{"the day before, late", reg, opens.Add(-2 * time.Hour), []time.Time{{}, opens.Add(-time.Hour), closes.Add(-30 * time.Minute)}},
		{"exactly due is past", reg, opens.Add(-time.Hour), []time.Time{{}, {}, closes.Add(-30 * time.Minute)}},
		{"no close date", noClose, opens.Add(-48 * time.Hour), []time.Time{opens.Add(-24 * time.Hour), opens.Add(-time.Hour), {}}},
	}
	for _, tt := range tests {
		got := rs.Plan(tt.reg, tt.now)
		if len(got) != len(tt.want) {
			t.Fatalf("%s: %d reminders, want %d", tt.name, len(got), len(tt.want))
		}
		for i, rem := range got {
			if !rem.At.Equal(tt.want[i]) {
				t.Errorf("%s: reminder %d (%s %v before) at %v, want %v", tt.name, i, rem.Event, rem.Before, rem.At, tt.want[i])
			}
		}
		if got[2].Event != ExamCloses {
			t.Errorf("%s: the last reminder is about %s, want the close", tt.name, got[2].Event)
		}
	}
	if (Reminders{}).On() || !rs.On() {
		t.Error("On does not say whether any reminder is asked for")
	}
}

func TestMergedDigestListsEachStudentOnceSorted(t *testing.T) {
	item := func(name, email string) DigestItem {
		return DigestItem{Registration: Registration{User: User{Name: name, Email: email}}}
	}
	earlier := []DigestItem{item("Zoë", "z@example.edu"), item("adam", "a@example.edu")}
	later := []DigestItem{item("Adam", "a2@example.edu"), item("adam", "a@example.edu"), item("Béa", "b@example.edu")}
	var got []string
	for _, it := range MergeDigestItems(earlier, later) {
		got = append(got, it.Registration.User.Email)
	}
	want := []string{"a2@example.edu", "a@example.edu", "b@example.edu", "z@example.edu"}
	if len(got) != len(want) {
		t.Fatalf("merged %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("merged %v, want %v", got, want)
		}
	}
	first := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	d := Digest{Items: []DigestItem{{ReceivedAt: first.Add(time.Minute)}, {ReceivedAt: first}, {ReceivedAt: first.Add(time.Second)}}}
	if !d.FirstReceived().Equal(first) {
		t.Errorf("first received %v, want %v", d.FirstReceived(), first)
	}
}

func TestScheduleEqualityAndOddities(t *testing.T) {
	opens := time.Date(2026, 12, 14, 9, 0, 0, 0, time.UTC)
	closes, earlier := opens.Add(time.Hour), opens.Add(-time.Hour)
	paris := opens.In(time.FixedZone("CET", 3600))
	tests := []struct {
		a, b  Schedule
		equal bool
	}{
		{Schedule{OpenDate: opens}, Schedule{OpenDate: paris}, true},
		{Schedule{OpenDate: opens, CloseDate: &closes}, Schedule{OpenDate: opens}, false},
		{Schedule{OpenDate: opens, CloseDate: &closes}, Schedule{OpenDate: opens, CloseDate: &earlier}, false},
		{Schedule{OpenDate: opens}, Schedule{OpenDate: closes}, false},
	}
	for i, tt := range tests {
		if tt.a.Equal(tt.b) != tt.equal || tt.b.Equal(tt.a) != tt.equal {
			t.Errorf("case %d: Equal = %v, want %v", i, tt.a.Equal(tt.b), tt.equal)
		}
	}
	if (Schedule{OpenDate: opens, CloseDate: &earlier}).Problem() == "" || (Schedule{OpenDate: opens, CloseDate: &closes}).Problem() != "" {
		t.Error("Problem does not tell an exam that closes before it opens")
	}
}
