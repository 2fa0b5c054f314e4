package relaytest

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"sync"
	"sync/atomic"
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
	Username string    // the user the client logged in as, "" if it did not
	Began    time.Time // when the client began it (MAIL FROM), past any dial and login
	At       time.Time // when the server accepted it
}

// SMTPSink is an SMTP server that keeps the mail it accepts in memory.
//
// It speaks plain SMTP (no TLS) on 127.0.0.1, offers AUTH PLAIN and
// accepts any credentials, and also takes mail from clients that do not
// log in. Hooks let a test refuse recipients or messages; options make it
// insist on an OAuth2 login or hang up after a few messages.
type SMTPSink struct {
	Addr string // 127.0.0.1:port

	server *smtp.Server
	// login, when set, checks XOAUTH2 logins, the only ones taken.
	login func(user, token string) error
	// hangUpAfter, when above 0, is how many messages a connection takes.
	hangUpAfter int
	// hangUpOnAccept closes a connection as soon as it took a message.
	hangUpOnAccept bool
	// idleTimeout, when above 0, closes a connection that sends nothing
	// for that long.
	idleTimeout time.Duration

	mu           sync.Mutex
	messages     []Message
	connections  int
	rejected     int
	authFailures int
	rcptHook     func(rcpt string) *smtp.SMTPError
	dataHook     func(from string, to []string) *smtp.SMTPError
	connectHook  func() *smtp.SMTPError
}

// An SMTPOption changes how a sink behaves from the start.
type SMTPOption func(*SMTPSink)

// HangUpOnAccept makes the sink close each connection as soon as it has
// accepted a message, without waiting for the client's RSET, as some
// servers do: the client must not take the message for refused.
func HangUpOnAccept() SMTPOption {
	return func(s *SMTPSink) { s.hangUpOnAccept = true }
}

// RequireXOAUTH2 makes the sink behave like Microsoft 365 or Gmail to a
// relay that logs in with OAuth2: it offers STARTTLS (the test binary
// runs with RunTrustingSinkCertificate), then AUTH XOAUTH2 and nothing
// else, and takes mail only after a login that valid accepts, such as
// OAuth.Check. A refused login gets 535.
func RequireXOAUTH2(valid func(user, token string) error) SMTPOption {
	return func(s *SMTPSink) { s.login = valid }
}

// HangUpAfter makes the sink close a connection once it has taken n
// messages on it, as servers that cap a session do, so the client has to
// dial, and log in, again. It hangs up when the connection is idle, after
// answering an RSET, or at the next MAIL, with 421: a client that had its
// message accepted is told so.
func HangUpAfter(n int) SMTPOption {
	return func(s *SMTPSink) { s.hangUpAfter = n }
}

// CloseIdleAfter makes the sink close a connection that sends nothing for
// d, as every server does after some time (Amazon SES after 10 s): a
// client that keeps connections open must find out before it sends.
func CloseIdleAfter(d time.Duration) SMTPOption {
	return func(s *SMTPSink) { s.idleTimeout = d }
}

// StartSMTP starts an SMTPSink that is closed when t ends.
func StartSMTP(t testing.TB, options ...SMTPOption) *SMTPSink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp sink: %v", err)
	}
	s := &SMTPSink{Addr: l.Addr().String()}
	for _, o := range options {
		o(s)
	}

	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		conn := c.Conn()
		if tlsConn, ok := conn.(*tls.Conn); ok {
			conn = tlsConn.NetConn()
		}
		return &smtpSession{sink: s, conn: conn.(*sinkConn)}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	if s.login != nil {
		// As real servers: no login, and so no token, before TLS.
		srv.TLSConfig = sinkTLSConfig(t)
		srv.AllowInsecureAuth = false
	}
	// Timeouts so that a client that hangs cannot keep the server's
	// goroutines alive after the test.
	srv.ReadTimeout = cmp.Or(s.idleTimeout, 30*time.Second)
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

// AuthFailures returns how many logins the sink refused.
func (s *SMTPSink) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFailures
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
			return nil, err
		}
		l.sink.mu.Lock()
		l.sink.connections++
		hook := l.sink.connectHook
		l.sink.mu.Unlock()
		if e := callHook(hook); e != nil {
			// Refuse at the greeting, as a server with too many
			// connections does, and hang up.
			l.sink.reject()
			fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message)
			c.Close()
			continue
		}
		return &sinkConn{Conn: c}, nil
	}
}

func callHook(hook func() *smtp.SMTPError) *smtp.SMTPError {
	if hook == nil {
		return nil
	}
	return hook()
}

// sinkConn is a client's TCP connection, which the session can ask to
// close once the reply in hand has been written: go-smtp writes a reply
// after the session's method returns, so closing there would lose it.
type sinkConn struct {
	net.Conn
	hangUp atomic.Bool
}

// Read is where go-smtp waits for the next command, its reply to the last
// one written: when asked to, close then.
func (c *sinkConn) Read(p []byte) (int, error) {
	if c.hangUp.Load() {
		c.Conn.Close()
		return 0, io.EOF
	}
	return c.Conn.Read(p)
}

// smtpSession is one client connection. go-smtp calls its methods one at a
// time for a connection (for BDAT, Data runs on a helper goroutine but the
// connection waits for it), so its own fields need no lock.
type smtpSession struct {
	sink     *SMTPSink
	conn     *sinkConn
	username string // kept across messages: AUTH is per connection
	from     string
	to       []string
	began    time.Time
	// inMessage is true from MAIL to the end of the message.
	inMessage bool
	// accepted counts the messages taken on this connection.
	accepted int
}

var _ smtp.AuthSession = (*smtpSession)(nil)

func (s *smtpSession) AuthMechanisms() []string {
	if s.sink.login != nil {
		return []string{xoauth2}
	}
	return []string{sasl.Plain}
}

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	switch {
	case s.sink.login != nil && mech == xoauth2:
		return &xoauth2Server{login: func(user, token string) error {
			if err := s.sink.login(user, token); err != nil {
				s.sink.mu.Lock()
				s.sink.authFailures++
				s.sink.mu.Unlock()
				// Microsoft 365's words; the reason stays in the sink.
				return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}
			}
			s.username = user
			return nil
		}}, nil
	case s.sink.login == nil && mech == sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			s.username = username
			return nil
		}), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.sink.login != nil && s.username == "" {
		return smtp.ErrAuthRequired
	}
	if s.sink.hangUpAfter > 0 && s.accepted >= s.sink.hangUpAfter {
		s.conn.hangUp.Store(true)
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many messages on this connection, closing it"}
	}
	s.from = from
	s.to = nil
	s.began = time.Now()
	s.inMessage = true
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
		Began:    s.began,
		At:       time.Now(),
	}
	s.sink.mu.Lock()
	s.sink.messages = append(s.sink.messages, m)
	s.sink.mu.Unlock()
	s.accepted++
	if s.sink.hangUpOnAccept {
		s.conn.hangUp.Store(true)
	}
	return nil
}

// Reset comes at the end of each message and on RSET. The first time it
// comes outside a message, after the last one the connection takes, the
// sink hangs up.
func (s *smtpSession) Reset() {
	if !s.inMessage && s.sink.hangUpAfter > 0 && s.accepted >= s.sink.hangUpAfter {
		s.conn.hangUp.Store(true)
	}
	s.inMessage = false
	s.from = ""
	s.to = nil
}

func (s *smtpSession) Logout() error {
	return nil
}

const xoauth2 = "XOAUTH2"

// xoauth2Server is the server side of XOAUTH2, which go-sasl lacks. The
// client's one message is "user=USER\x01auth=Bearer TOKEN\x01\x01".
type xoauth2Server struct {
	login func(user, token string) error
}

func (x *xoauth2Server) Next(response []byte) ([]byte, bool, error) {
	if response == nil {
		// AUTH XOAUTH2 without an initial response: ask for it.
		return []byte{}, false, nil
	}
	var user, token string
	for _, field := range bytes.Split(response, []byte{1}) {
		if v, ok := bytes.CutPrefix(field, []byte("user=")); ok {
			user = string(v)
		}
		if v, ok := bytes.CutPrefix(field, []byte("auth=Bearer ")); ok {
			token = string(v)
		}
	}
	if user == "" || token == "" {
		return nil, false, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "malformed XOAUTH2 response"}
	}
	if err := x.login(user, token); err != nil {
		return nil, false, err
	}
	return nil, true, nil
}
