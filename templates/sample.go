package templates

import (
	"encoding/json"
	"time"

	"github.com/exam-relay/relay/tasks"
)

// sampleRegistrations cover what templates must cope with: a close date
// and none, custom attributes and none, a group and none, a zone with DST.
func sampleRegistrations() []tasks.Registration {
	opens := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	closes := opens.Add(3 * time.Hour)
	full := tasks.Registration{
		User: tasks.User{ID: "usr_8f2k1Qa", Name: "Amara Okafor", Email: "amara.okafor@example.edu",
			CustomAttributes: map[string]any{"candidateNumber": "C-10422", "extraTimeMinutes": json.Number("30")}},
		Portal:    tasks.Portal{ID: "portal_uk_med"},
		Exam:      tasks.Exam{ObjectID: "exm_3Jd9xK", URL: "https://med.example.edu/exams/exm_3Jd9xK", Name: "Year 2 Pharmacology Summative", Schedule: tasks.Schedule{OpenDate: opens, CloseDate: &closes}},
		UserGroup: tasks.UserGroup{ObjectID: "grp_77aZ", Name: "MBBS Cohort 2025"},
	}
	bare := tasks.Registration{
		User: tasks.User{Email: "student@example.org"},
		Exam: tasks.Exam{Schedule: tasks.Schedule{OpenDate: opens}},
	}
	moved := full
	moved.Previous = &tasks.Previous{Schedule: tasks.Schedule{OpenDate: opens.AddDate(0, 0, -7)}, Sequence: 1}
	return []tasks.Registration{full, bare, moved}
}

func sampleData() []Data {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.UTC
	}
	var out []Data
	for _, r := range sampleRegistrations() {
		out = append(out, NewData(r, time.UTC), NewData(r, paris))
	}
	return out
}

func sampleDigest() Digest {
	d := NewData(sampleRegistrations()[0], time.UTC)
	return Digest{Exam: d.Exam, Groups: []string{d.Group.Name}, Count: 3, Students: []Student{d.Student, d.Student}, More: 1, Zone: d.Zone}
}
