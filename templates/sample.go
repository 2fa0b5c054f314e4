package templates

import (
	"encoding/json"
	"time"

	"github.com/exam-relay/relay/relay"
)

// sampleRegistrations cover what templates must cope with: a close date
// and none, custom attributes and none, a group and none, new dates.
func sampleRegistrations() []relay.Registration {
	opens := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	closes := opens.Add(3 * time.Hour)
	full := relay.Registration{
		User: relay.User{ID: "usr_8f2k1Qa", Name: "Amara Okafor", Email: "amara.okafor@example.edu",
			CustomAttributes: map[string]any{"candidateNumber": "C-10422", "extraTimeMinutes": json.Number("30")}},
		Portal:    relay.Portal{ID: "portal_uk_med"},
		Exam:      relay.Exam{ObjectID: "exm_3Jd9xK", URL: "https://med.example.edu/exams/exm_3Jd9xK", Name: "Year 2 Pharmacology Summative", Schedule: relay.Schedule{OpenDate: opens, CloseDate: &closes}},
		UserGroup: relay.UserGroup{ObjectID: "grp_77aZ", Name: "MBBS Cohort 2025"},
	}
	bare := relay.Registration{
		User: relay.User{Email: "student@example.org"},
		Exam: relay.Exam{Schedule: relay.Schedule{OpenDate: opens}},
	}
	moved := full
	moved.Previous = &relay.Previous{Schedule: relay.Schedule{OpenDate: opens.AddDate(0, 0, -7)}}
	return []relay.Registration{full, bare, moved}
}

// sampleZones are UTC and a zone with DST.
func sampleZones() []*time.Location {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.UTC
	}
	return []*time.Location{time.UTC, paris}
}

// sampleDigest is three students of one exam.
func sampleDigest() relay.Digest {
	d := relay.Digest{Group: "digest:sample"}
	for i, name := range []string{"Amara Okafor", "Ben Adeyemi", "Chloé Martin"} {
		reg := sampleRegistrations()[0]
		reg.User.Name, reg.User.ID = name, reg.User.ID+string(rune('a'+i))
		d.Items = append(d.Items, relay.DigestItem{Registration: reg})
	}
	return d
}
