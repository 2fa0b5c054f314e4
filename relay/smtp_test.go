package relay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/wneessen/go-mail"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/relaytest"
	"github.com/exam-relay/relay/templates"
)

func TestSMTPPoolReusesConnections(t *testing.T) {
	sink := relaytest.StartSMTP(t)
	server, err := config.ParseSMTPURL(sink.URL())
	if err != nil {
		t.Fatal(err)
	}
	pool := NewSMTPPool(server, 3)
	defer pool.Close()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			if err := pool.Send(context.Background(), testMessage(t, i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := sink.Count(); n != 30 {
		t.Fatalf("%d messages arrived, want 30", n)
	}
	if n := sink.Connections(); n < 1 || n > 3 {
		t.Errorf("%d connections for 30 messages over a pool of 3", n)
	}
}

func TestSMTPErrorsAreClassified(t *testing.T) {
	sink := relaytest.StartSMTP(t)
	server, _ := config.ParseSMTPURL(sink.URL())
	pool := NewSMTPPool(server, 1)
	defer pool.Close()
	for code, want := range map[int]Kind{451: KindTemporary, 452: KindTemporary, 550: KindPermanent, 553: KindPermanent} {
		sink.SetRcptHook(func(string) *smtp.SMTPError { return &smtp.SMTPError{Code: code, Message: "no"} })
		err := pool.Send(context.Background(), testMessage(t, code))
		if KindOf(err) != want {
			t.Errorf("SMTP %d: %v is %v, want %v", code, err, KindOf(err), want)
		}
	}
	sink.SetRcptHook(nil)
	if err := pool.Send(context.Background(), testMessage(t, 0)); err != nil {
		t.Errorf("after refusals the pool cannot send: %v", err)
	}

	unreachable := NewSMTPPool(config.SMTPServer{Host: "127.0.0.1", Port: 1, TLS: config.TLSNone}, 1)
	if err := unreachable.Send(context.Background(), testMessage(t, 0)); KindOf(err) != KindTemporary {
		t.Errorf("dial failure: %v is %v, want temporary", err, KindOf(err))
	}
}

func testMessage(t *testing.T, i int) *mail.Msg {
	t.Helper()
	reg := decode(t, example(t, "registration.json"))
	reg.User.ID = reg.User.ID + string(rune('a'+i%26))
	tmpl, err := templates.Load(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := tmpl.Confirmation(templates.NewData(reg, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	m, err := newConfirmation(Sender{From: "exams@example.edu"}, reg, e, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return m
}
