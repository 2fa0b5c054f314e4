package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// ErrSpoolFull is returned by Append when the spool holds its maximum.
var ErrSpoolFull = errors.New("spool is full")

// Spool keeps registrations on local disk while Redis cannot take them.
// Synap does not retry, so when Redis is away the receiver appends the
// registration here, fsyncs, and only then answers 202. A drainer moves
// them into Redis when it is back; task ids make a repeat harmless.
//
// Files: "current.jsonl" takes appends, one payload per line. A drain
// first renames it to "pending-<n>.jsonl", so appends never wait for
// Redis, then enqueues each pending file's lines and removes the file.
type Spool struct {
	dir string
	max int
	log *slog.Logger

	lock    *os.File // held for the spool's life: one process per folder
	mu      sync.Mutex
	current *os.File
	depth   int // lines in current and pending files
	drainMu sync.Mutex
}

const currentSpool = "current.jsonl"

// OpenSpool opens the spool in dir. What an earlier process left there is
// set aside to be drained first.
func OpenSpool(dir string, max int, log *slog.Logger) (*Spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Two receivers appending and rotating in one folder would lose lines.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool folder %s is in use by another relay process: give each its own RELAY_SPOOL_DIR", dir)
	}
	s := &Spool{dir: dir, max: max, log: log, lock: lock}
	// A file the last process appended to may end in a torn line; it is
	// never appended to again, and the reader skips the tear.
	if err := s.rotate(); err != nil {
		return nil, err
	}
	pending, err := s.pending()
	if err != nil {
		return nil, err
	}
	for _, path := range pending {
		lines, _, err := readSpoolFile(path)
		if err != nil {
			return nil, err
		}
		s.depth += len(lines)
	}
	if s.depth > 0 {
		log.Warn("spool holds registrations from an earlier run; draining them into Redis", "count", s.depth, "dir", dir)
	}
	return s, nil
}

// Append stores payload durably: when it returns nil the registration is
// on disk.
func (s *Spool) Append(payload []byte) error {
	if bytes.IndexByte(payload, '\n') >= 0 {
		return errors.New("spool: payload holds a line break")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.depth >= s.max {
		return ErrSpoolFull
	}
	if s.current == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, currentSpool), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if err := syncDir(s.dir); err != nil {
			f.Close()
			return err
		}
		s.current = f
	}
	line := append(payload[:len(payload):len(payload)], '\n')
	if _, err := s.current.Write(line); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := s.current.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.depth++
	return nil
}

// Depth is how many registrations wait in the spool.
func (s *Spool) Depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.depth
}

// Drain hands every spooled payload to enqueue, oldest first, and forgets
// those it accepted. It stops at the first error, keeping the rest.
func (s *Spool) Drain(enqueue func([]byte) error) (int, error) {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	pending, err := s.setAside()
	if err != nil {
		return 0, err
	}
	drained := 0
	for _, path := range pending {
		lines, err := s.read(path)
		if err != nil {
			return drained, err
		}
		for i, line := range lines {
			if err := enqueue(line); err != nil {
				// Keep what is left, so the count stays true and nothing
				// is enqueued twice more than needed.
				if werr := rewriteSpoolFile(path, lines[i:]); werr != nil {
					return drained, werr
				}
				s.forget(i)
				return drained + i, err
			}
		}
		if err := os.Remove(path); err != nil {
			return drained, fmt.Errorf("spool: %w", err)
		}
		s.forget(len(lines))
		drained += len(lines)
	}
	return drained, nil
}

// Sweep hands check the lines set aside, and forgets those it says are
// done; the rest stay, in one file, for the next sweep. On an error it
// keeps them all.
func (s *Spool) Sweep(check func(lines [][]byte) (done []bool, err error)) (int, error) {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	pending, err := s.setAside()
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	var lines [][]byte
	for _, path := range pending {
		got, err := s.read(path)
		if err != nil {
			return 0, err
		}
		lines = append(lines, got...)
	}
	done, err := check(lines)
	if err != nil {
		return 0, err
	}
	var kept [][]byte
	for i, line := range lines {
		if !done[i] {
			kept = append(kept, line)
		}
	}
	if len(kept) == len(lines) && len(pending) <= 16 {
		return 0, nil // nothing to rewrite, nor yet files enough to gather
	}
	// The kept lines are written before the files that held them go: a
	// crash in between leaves a line twice, which a sweep takes as once.
	if len(kept) > 0 {
		if err := rewriteSpoolFile(filepath.Join(s.dir, pendingName()), kept); err != nil {
			return 0, err
		}
	}
	for _, path := range pending {
		if err := os.Remove(path); err != nil {
			return 0, fmt.Errorf("spool: %w", err)
		}
	}
	s.forget(len(lines) - len(kept))
	return len(lines) - len(kept), nil
}

func (s *Spool) forget(n int) {
	s.mu.Lock()
	s.depth = max(0, s.depth-n)
	s.mu.Unlock()
}

// setAside rotates the current file and lists every file set aside,
// oldest first: what a drain or an erasure goes through, while appends go
// on to a new file. The caller holds drainMu.
func (s *Spool) setAside() ([]string, error) {
	s.mu.Lock()
	err := s.rotate()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.pending()
}

// rotate sets the current file aside for draining. The caller holds mu.
func (s *Spool) rotate() error {
	if s.current != nil {
		if err := s.current.Close(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.current = nil
	}
	from := filepath.Join(s.dir, currentSpool)
	if _, err := os.Stat(from); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	to := filepath.Join(s.dir, pendingName())
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(s.dir)
}

// pendingName names a file set aside now: the names sort by age.
func pendingName() string { return fmt.Sprintf("pending-%020d.jsonl", time.Now().UnixNano()) }

// pending lists the files waiting to be drained, oldest first.
func (s *Spool) pending() ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(s.dir, "pending-*.jsonl"))
	sort.Strings(paths)
	return paths, err
}

// Close closes the current file and lets another process open the
// folder; what it holds is drained at next start.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.current != nil {
		err = s.current.Close()
		s.current = nil
	}
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
	return err
}

// RunDrainer drains the spool every interval while it holds anything,
// until ctx ends.
func (s *Spool) RunDrainer(ctx context.Context, interval time.Duration, enqueue func([]byte) error) {
	s.every(ctx, interval, interval, func() (int, error) { return s.Drain(enqueue) })
}

// RunSweeper sweeps the spool every interval while it holds anything,
// until ctx ends. Each sweep reads the whole spool: while it holds more
// than sweptAtOnce lines, sweeps that leave everything wait longer, up to
// 30 intervals.
func (s *Spool) RunSweeper(ctx context.Context, interval time.Duration, check func(lines [][]byte) ([]bool, error)) {
	s.every(ctx, interval, 30*interval, func() (int, error) { return s.Sweep(check) })
}

// sweptAtOnce is how many lines a sweep reads every interval, however
// often it leaves them all.
const sweptAtOnce = 1000

// every runs pass while the spool holds anything, until ctx ends: after
// interval or, when the last pass did nothing with more than sweptAtOnce
// lines, twice as long as last time, up to longest.
func (s *Spool) every(ctx context.Context, interval, longest time.Duration, pass func() (int, error)) {
	wait := interval
	var warned time.Time // while it fails, once a minute is enough
	for {
		if s.Depth() > 0 {
			n, err := pass()
			if n > 0 {
				s.log.Info("spool drained", "count", n, "left", s.Depth())
			}
			switch {
			case err == nil:
				warned = time.Time{}
			case time.Since(warned) >= time.Minute:
				s.log.Warn("spool: not drained yet; will try again", "left", s.Depth(), "err", err)
				warned = time.Now()
			}
			wait = min(2*wait, longest)
			if n > 0 || s.Depth() <= sweptAtOnce {
				wait = interval
			}
		} else {
			wait = interval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// read is readSpoolFile for a drain or a sweep, which logs what it skips.
func (s *Spool) read(path string) ([][]byte, error) {
	lines, torn, err := readSpoolFile(path)
	if torn > 0 {
		s.log.Warn("spool: skipped a torn or unreadable line, left by a crash mid-write", "file", path, "count", torn)
	}
	return lines, err
}

// readSpoolFile returns the well-formed lines of path and how many it
// skipped. A crash mid-append leaves a last line without its newline: it
// was never acknowledged, since the receiver answers only once the whole
// line is synced.
func readSpoolFile(path string) (lines [][]byte, skipped int, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("spool: %w", err)
	}
	segments := bytes.Split(b, []byte("\n"))
	last := len(segments) - 1 // empty when the file ends with a newline
	for i, seg := range segments {
		seg = bytes.TrimSpace(seg)
		if len(seg) == 0 {
			continue
		}
		if i == last || !json.Valid(seg) {
			skipped++
			continue
		}
		lines = append(lines, seg)
	}
	return lines, skipped, nil
}

func rewriteSpoolFile(path string, lines [][]byte) error {
	tmp := path + ".tmp"
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a created or renamed file's name durable, not only its
// contents.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// Forget removes the spooled registrations theirs picks, and says how
// many. The spool must be this process's: erasure opens a spool that no
// relay serve holds.
func (s *Spool) Forget(theirs func(payload []byte) bool) (int, error) {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	pending, err := s.setAside()
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, path := range pending {
		lines, _, err := readSpoolFile(path)
		if err != nil {
			return removed, err
		}
		var kept [][]byte
		for _, line := range lines {
			if !theirs(line) {
				kept = append(kept, line)
			}
		}
		if len(kept) == len(lines) {
			continue
		}
		// The torn lines readSpoolFile skipped go too: never answered,
		// they are nobody's registration.
		if len(kept) == 0 {
			err = os.Remove(path)
		} else {
			err = rewriteSpoolFile(path, kept)
		}
		if err != nil {
			return removed, fmt.Errorf("spool: %w", err)
		}
		removed += len(lines) - len(kept)
		s.forget(len(lines) - len(kept))
	}
	return removed, nil
}
