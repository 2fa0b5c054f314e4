package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/exam-relay/relay/relay"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/tasks"
)

func reminderRegistration(opens time.Time) []byte {
	return []byte(fmt.Sprintf(`{"user":{"id":"usr_r","name":"Rita Remind","email":"rita@example.edu"},
		"portal":{"id":"p"},"exam":{"objectId":"exm_r","name":"Statistics Quiz","url":"https://exams.example.edu/r",
		"schedule":{"openDate":%q}},"userGroup":{"objectId":"g","name":"G"}}`, opens.UTC().Format(time.RFC3339)))
}

// emails splits what arrived into confirmations and reminders.
func emails(t *testing.T, msgs []relaytest.Message) (confirmations, reminders []relaytest.Email, reminderAt []time.Time) {
	for _, m := range msgs {
		e := relaytest.ParseEmail(t, m.Data)
		if strings.HasPrefix(e.Subject, "Reminder:") {
			reminders = append(reminders, e)
			reminderAt = append(reminderAt, m.At)
		} else {
			confirmations = append(confirmations, e)
		}
	}
	return
}

func TestReminderArrivesOnTimeAndOnce(t *testing.T) {
	t.Parallel()
	// 3 s before opening is due soon; an hour before has already passed.
	h := newHarness(t, withReminders(3*time.Second, time.Hour))
	opens := time.Now().Add(7 * time.Second).Truncate(time.Second)
	body := reminderRegistration(opens)
	if code, resp := h.post(body); code != 202 {
		t.Fatalf("POST: %d %s", code, resp)
	}
	if code, _ := h.post(body); code != 200 {
		t.Fatalf("repeat: %d", code)
	}
	h.smtp.WaitFor(t, 2, 15*time.Second)
	time.Sleep(time.Until(opens) + time.Second)
	confirmations, reminders, at := emails(t, h.smtp.Messages())
	if len(confirmations) != 1 || len(reminders) != 1 {
		t.Fatalf("%d confirmations and %d reminders, want 1 and 1", len(confirmations), len(reminders))
	}
	if due := opens.Add(-3 * time.Second); at[0].Before(due) || !at[0].Before(opens) {
		t.Errorf("reminder arrived at %v; due %v, exam opens %v", at[0], due, opens)
	}
	if !strings.Contains(reminders[0].Subject, "Statistics Quiz opens in") || !strings.Contains(reminders[0].Text, "https://exams.example.edu/r") {
		t.Errorf("reminder %q:\n%s", reminders[0].Subject, reminders[0].Text)
	}
}

func TestNewDatesMoveTheReminderAndSaySo(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withReminders(3*time.Second))
	first := time.Now().Add(7 * time.Second).Truncate(time.Second)
	moved := first.Add(5 * time.Second)
	h.post(reminderRegistration(first))
	h.smtp.WaitFor(t, 1, 10*time.Second)
	if code, resp := h.post(reminderRegistration(moved)); code != 202 {
		t.Fatalf("new dates: %d %s", code, resp)
	}
	time.Sleep(time.Until(moved) + time.Second)
	confirmations, reminders, at := emails(t, h.smtp.Messages())
	if len(confirmations) != 2 || len(reminders) != 1 {
		t.Fatalf("%d confirmations and %d reminders, want 2 and 1", len(confirmations), len(reminders))
	}
	if due := moved.Add(-3 * time.Second); at[0].Before(due) {
		t.Errorf("reminder at %v: the old dates' reminder (due %v) was sent, not the new one (due %v)", at[0], first.Add(-3*time.Second), due)
	}
	var changed bool
	for _, c := range confirmations {
		changed = changed || strings.Contains(c.Text, "Its dates have changed")
	}
	if !changed {
		t.Error("no confirmation says the dates changed")
	}
	// The email about new dates carries the higher SEQUENCE, so calendars
	// replace the event.
	before, after := calendarSequence(t, confirmations[0]), calendarSequence(t, confirmations[1])
	if strings.Contains(confirmations[0].Text, "Its dates have changed") {
		before, after = after, before
	}
	if after <= before {
		t.Errorf("SEQUENCE %d for the new dates, %d for the first: the calendar would keep the old event", after, before)
	}
	// The same UID, so calendars move the event instead of adding another.
	uid := regexp.MustCompile(`(?m)^UID:.*$`)
	if a, b := uid.FindString(confirmations[0].Calendar), uid.FindString(confirmations[1].Calendar); a == "" || a != b {
		t.Errorf("UIDs %q and %q differ", a, b)
	}
}

func TestReminderTooLateIsArchivedNotSent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withReminders(time.Hour))
	reg := decodeBody(t, reminderRegistration(time.Now().Add(-time.Minute)))
	// As if the worker had been down from the reminder's time until after
	// the exam opened.
	rem := relay.Reminder{Registration: reg, Event: relay.ExamOpens, Before: time.Hour, At: time.Now().Add(-time.Hour)}
	task, err := tasks.NewReminderTask(rem, tasks.Options{MaxRetry: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asynq.NewClientFromRedisClient(h.redis.Client()).Enqueue(task); err != nil {
		t.Fatal(err)
	}
	info := h.waitForTask(tasks.QueueEmail, tasks.ReminderTaskID(reg, relay.ExamOpens, time.Hour), asynq.TaskStateArchived, 10*time.Second)
	if !strings.Contains(info.LastErr, "too late") || h.smtp.Count() != 0 {
		t.Errorf("archived with %q; %d emails", info.LastErr, h.smtp.Count())
	}
}

// calendarSequence is the SEQUENCE of e's calendar event.
func calendarSequence(t *testing.T, e relaytest.Email) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^SEQUENCE:(\d+)\r?$`).FindStringSubmatch(e.Calendar)
	if m == nil {
		t.Fatalf("no SEQUENCE in:\n%s", e.Calendar)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
