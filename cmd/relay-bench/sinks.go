package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpSink is an SMTP server that counts what it accepts rather than
// keeping it: enough to tell delivered, duplicated and how fast.
type smtpSink struct {
	addr   string
	server *smtp.Server

	mu       sync.Mutex
	count    int
	bytes    int64
	sample   []byte          // the first message after a reset
	seen     map[string]bool // recipient + registration id
	dups     int
	first    time.Time
	last     time.Time
	open     int // connections open now
	peakOpen int
}

func startSMTPSink() (*smtpSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &smtpSink{addr: l.Addr().String(), seen: map[string]bool{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.server = srv
	go srv.Serve(&sinkListener{Listener: l, sink: s})
	return s, nil
}

func (s *smtpSink) url() string { return "smtp://" + s.addr + "?tls=none" }

func (s *smtpSink) close() { _ = s.server.Close() }

// reset forgets what was counted, between phases.
func (s *smtpSink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count, s.dups, s.bytes, s.sample = 0, 0, 0, nil
	s.seen = map[string]bool{}
	s.first, s.last = time.Time{}, time.Time{}
	s.peakOpen = s.open
}

type sinkStats struct {
	count, dups, peakOpen int
	bytes                 int64
	first, last           time.Time
}

func (s *smtpSink) stats() sinkStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sinkStats{count: s.count, dups: s.dups, peakOpen: s.peakOpen, bytes: s.bytes, first: s.first, last: s.last}
}

// registrationHeader is how the relay's emails name their registration,
// which is a hash of student, exam and dates.
var registrationHeader = []byte("\nX-Exam-Relay-Registration: ")

// sampleMessage is the first message accepted since the last reset.
func (s *smtpSink) sampleMessage() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sample
}

func (s *smtpSink) accept(to []string, data []byte) {
	id := ""
	if i := bytes.Index(data, registrationHeader); i >= 0 {
		rest := data[i+len(registrationHeader):]
		if j := bytes.IndexByte(rest, '\r'); j >= 0 {
			id = string(rest[:j])
		}
	}
	key := strings.Join(to, ",") + " " + id
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	s.bytes += int64(len(data))
	if s.sample == nil {
		s.sample = data
	}
	if s.seen[key] {
		s.dups++
	}
	s.seen[key] = true
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
}

// sinkListener counts the connections open at once: the relay's SMTP pool
// at work, which the ceiling then uses as many of.
type sinkListener struct {
	net.Listener
	sink *smtpSink
}

func (l *sinkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.sink.mu.Lock()
	l.sink.open++
	l.sink.peakOpen = max(l.sink.peakOpen, l.sink.open)
	l.sink.mu.Unlock()
	return &sinkConn{Conn: c, sink: l.sink}, nil
}

type sinkConn struct {
	net.Conn
	sink *smtpSink
	once sync.Once
}

func (c *sinkConn) Close() error {
	c.once.Do(func() {
		c.sink.mu.Lock()
		c.sink.open--
		c.sink.mu.Unlock()
	})
	return c.Conn.Close()
}

type sinkSession struct {
	sink *smtpSink
	to   []string
}

func (s *sinkSession) Mail(string, *smtp.MailOptions) error { s.to = nil; return nil }

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.accept(s.to, data)
	return nil
}

func (s *sinkSession) Reset()        { s.to = nil }
func (s *sinkSession) Logout() error { return nil }

// slackSink answers like a Slack incoming webhook and adds up the students
// the digests it receives say they cover.
type slackSink struct {
	server *http.Server
	url    string

	mu       sync.Mutex
	posts    int
	students int
	last     time.Time
}

// digestCount reads "*42 students* registered for …", the first line of
// the default digest template.
var digestCount = regexp.MustCompile(`^\*(\d+) students?\*`)

func startSlackSink() (*slackSink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &slackSink{url: "http://" + l.Addr().String() + "/services/T000/B000/BENCH"}
	s.server = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go s.server.Serve(l)
	return s, nil
}

func (s *slackSink) serveHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Text string `json:"text"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil || msg.Text == "" {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	n := 1 // an alert names one student
	if m := digestCount.FindStringSubmatch(msg.Text); m != nil {
		n, _ = strconv.Atoi(m[1])
	}
	s.mu.Lock()
	s.posts++
	s.students += n
	s.last = time.Now()
	s.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (s *slackSink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posts, s.students, s.last = 0, 0, time.Time{}
}

func (s *slackSink) stats() (posts, students int, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts, s.students, s.last
}

func (s *slackSink) close() { _ = s.server.Close() }
