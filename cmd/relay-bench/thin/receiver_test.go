package main

import (
	"os"
	"strings"
	"testing"
)

func TestDecodeRegistrationChecksTheEmailAndTheDates(t *testing.T) {
	example, err := os.ReadFile("../../../examples/registration.json")
	if err != nil {
		t.Fatal(err)
	}
	reg, id, err := decodeRegistration(example)
	if err != nil {
		t.Fatalf("the example registration: %v", err)
	}
	if reg.User.Email == "" || reg.Exam.Name == "" || !strings.HasPrefix(id, taskType+":") {
		t.Errorf("decoded %+v with id %q", reg, id)
	}
	// The same time written with an offset is the same registration; a
	// new time is a new one.
	for openDate, same := range map[string]bool{"2026-12-14T10:00:00+01:00": true, "2026-12-15T09:00:00Z": false} {
		body := strings.Replace(string(example), "2026-12-14T09:00:00.000Z", openDate, 1)
		if _, other, err := decodeRegistration([]byte(body)); err != nil || (other == id) != same {
			t.Errorf("open date %s: id %q, err %v; the example's id %q", openDate, other, err, id)
		}
	}

	for name, body := range map[string]string{
		"no email":        `{"user":{"email":""},"exam":{"schedule":{"openDate":"2027-01-11T09:00:00Z"}}}`,
		"a name":          `{"user":{"email":"Ann <ann@example.edu>"},"exam":{"schedule":{"openDate":"2027-01-11T09:00:00Z"}}}`,
		"two addresses":   `{"user":{"email":"ann@example.edu, bob@example.edu"},"exam":{"schedule":{"openDate":"2027-01-11T09:00:00Z"}}}`,
		"no open date":    `{"user":{"email":"ann@example.edu"},"exam":{"schedule":{}}}`,
		"a bad open date": `{"user":{"email":"ann@example.edu"},"exam":{"schedule":{"openDate":"11/01/2027"}}}`,
		"a bad close":     `{"user":{"email":"ann@example.edu"},"exam":{"schedule":{"openDate":"2027-01-11T09:00:00Z","closeDate":"soon"}}}`,
		"not JSON":        `user=ann`,
	} {
		if _, _, err := decodeRegistration([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
