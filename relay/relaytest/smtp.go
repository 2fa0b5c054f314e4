package relaytest

import (
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is a mail the SMTPSink accepted.
type Message struct {
	From     string
	To       []string
	Data     []byte    // as sent after DATA, headers included
	Username string    // the AUTH PLAIN user, "" if the client did not log in
	At       time.Time // when the server accepted it
}

// SMTPSink is an SMTP server that keeps the mail it accepts in memory.
//
// It speaks plain SMTP (no TLS) on 127.0.0.1, offers AUTH PLAIN and
// accepts any credentials, and also takes mail from clients that do not
// log in. Hooks let a test refuse recipients or messages.
type SMTPSink struct {
	Addr string // 127.0.0.1:port

	server *smtp.Server

	mu          sync.Mutex
	messages    []Message
	connections int
	rejected    int
	rcptHook    func(rcpt string) *smtp.SMTPError
	dataHook    func(from string, to []string) *smtp.SMTPError
	connectHook func() *smtp.SMTPError
}

// StartSMTP starts an SMTPSink that is closed when t ends.
func StartSMTP(t testing.TB) *SMTPSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp sink: %v", err)
	}
	s := &SMTPSink{Addr: l.Addr().String()}

	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &smtpSession{sink: s}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	// Timeouts so that a client that hangs cannot keep the server's
	// goroutines alive after the test.
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	// The server logs clients that hang up mid-command, which fault tests
	// do on purpose; that noise says nothing about the test.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.server = srv

	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(&countingListener{Listener: l, sink: s})
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	return s
}

// URL returns the sink's address in the form smtp://127.0.0.1:port?tls=none.
func (s *SMTPSink) URL() string {
	return "smtp://" + s.Addr + "?tls=none"
}

// Messages returns a copy of the messages accepted so far, in order.
func (s *SMTPSink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.messages))
	for i, m := range s.messages {
		m.To = append([]string(nil), m.To...)
		m.Data = append([]byte(nil), m.Data...)
		out[i] = m
	}
	return out
}

// Count returns the number of messages accepted so far.
func (s *SMTPSink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.messages)
}

// Connections returns the number of TCP connections accepted so far, so a
// test can check that a client reuses its connection.
func (s *SMTPSink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// Rejected returns how many connections, RCPT TO and DATA commands the
// hooks refused.
func (s *SMTPSink) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// SetRcptHook makes the sink call f on every RCPT TO. If f returns an
// error, for example
//
//	&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
//
// the client gets it and the recipient is not added. A nil f removes the
// hook. f runs on the server's goroutines.
func (s *SMTPSink) SetRcptHook(f func(rcpt string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcptHook = f
}

// SetDataHook makes the sink call f when a message's data has been
// received. If f returns an error the client gets it as the reply to DATA
// and the message is not kept. A nil f removes the hook.
func (s *SMTPSink) SetDataHook(f func(from string, to []string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dataHook = f
}

// SetConnectHook makes the sink call f on every new connection. If f
// returns an error the client gets it instead of the greeting, and the
// connection is closed. A nil f removes the hook.
func (s *SMTPSink) SetConnectHook(f func() *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connectHook = f
}

// WaitFor waits until at least n messages have been accepted and returns
// them. If that takes longer than timeout it fails the test. It is for
// mail sent asynchronously, not a statement about speed: be generous.
func (s *SMTPSink) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if s.Count() >= n {
			return s.Messages()
		}
		if time.Now().After(deadline) {
			t.Fatalf("smtp sink: waited %v for %d messages, got %d", timeout, n, s.Count())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *SMTPSink) hooks() (func(string) *smtp.SMTPError, func(string, []string) *smtp.SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rcptHook, s.dataHook
}

func (s *SMTPSink) reject() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected++
}

// countingListener counts accepted connections. go-smtp only creates a
// session at EHLO, so counting sessions would miss clients that connect
// and give up before greeting.
type countingListener struct {
	net.Listener
	sink *SMTPSink
}

func (l *countingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return c, err
		}
		l.sink.mu.Lock()
		l.sink.connections++
		hook := l.sink.connectHook
		l.sink.mu.Unlock()
		if hook == nil {
			return c, nil
		}
		e := hook()
		if e == nil {
			return c, nil
		}
		// Refuse at the greeting, as a server with too many connections
		// does, and hang up.
		l.sink.reject()
		fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message)
		c.Close()
	}
}

// smtpSession is one client connection. go-smtp calls its methods one at a
// time for a connection (for BDAT, Data runs on a helper goroutine but the
// connection waits for it), so its own fields need no lock.
type smtpSession struct {
	sink     *SMTPSink
	username string // kept across messages: AUTH is per connection
	from     string
	to       []string
}

var _ smtp.AuthSession = (*smtpSession)(nil)

func (s *smtpSession) AuthMechanisms() []string {
	return []string{sasl.Plain}
}

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		s.username = username
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	s.to = nil
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if hook, _ := s.sink.hooks(); hook != nil {
		// Compare the *SMTPError, not an error: a nil *SMTPError in an
		// error interface would not be nil and would refuse everything.
		if e := hook(to); e != nil {
			s.sink.reject()
			return e
		}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		// The client sent too much or went away; there is no message.
		return err
	}
	if _, hook := s.sink.hooks(); hook != nil {
		if e := hook(s.from, append([]string(nil), s.to...)); e != nil {
			s.sink.reject()
			return e
		}
	}
	m := Message{
		From:     s.from,
		To:       append([]string(nil), s.to...),
		Data:     data,
		Username: s.username,
		At:       time.Now(),
	}
	s.sink.mu.Lock()
	s.sink.messages = append(s.sink.messages, m)
	s.sink.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset() {
	s.from = ""
	s.to = nil
}

func (s *smtpSession) Logout() error {
	return nil
}
