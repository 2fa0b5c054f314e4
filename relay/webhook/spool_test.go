package webhook

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestSpoolKeepsAcrossRestartAndDrainsInOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 100, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Append([]byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s, err = OpenSpool(dir, 100, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Depth(); d != 3 {
		t.Fatalf("depth after restart %d, want 3", d)
	}
	s.Append([]byte(`{"n":3}`))
	var got []string
	n, err := s.Drain(func(p []byte) error { got = append(got, string(p)); return nil })
	if err != nil || n != 4 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	if strings.Join(got, "") != `{"n":0}{"n":1}{"n":2}{"n":3}` {
		t.Errorf("drained %v", got)
	}
	if d := s.Depth(); d != 0 {
		t.Errorf("depth after drain %d", d)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl")); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

func TestSpoolSkipsATornLastLine(t *testing.T) {
	dir := t.TempDir()
	// What a crash between write and fsync of the third append leaves.
	os.WriteFile(filepath.Join(dir, "current.jsonl"), []byte("{\"n\":0}\n{\"n\":1}\n{\"n\":2, \"user\":{\"em"), 0o600)
	s, err := OpenSpool(dir, 100, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if d := s.Depth(); d != 2 {
		t.Errorf("depth %d, want 2", d)
	}
	// New appends must not be glued to the torn line.
	s.Append([]byte(`{"n":3}`))
	var got []string
	if _, err := s.Drain(func(p []byte) error { got = append(got, string(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != `{"n":0} {"n":1} {"n":3}` {
		t.Errorf("drained %v", got)
	}
}

func TestSpoolKeepsWhatRedisDidNotTake(t *testing.T) {
	s, _ := OpenSpool(t.TempDir(), 100, quietLog())
	for i := range 4 {
		s.Append([]byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	calls := 0
	n, err := s.Drain(func([]byte) error {
		calls++
		if calls == 3 {
			return errors.New("redis: connection refused")
		}
		return nil
	})
	if err == nil || n != 2 || s.Depth() != 2 {
		t.Fatalf("Drain = %d, %v; depth %d; want 2, an error, 2", n, err, s.Depth())
	}
	var rest []string
	s.Drain(func(p []byte) error { rest = append(rest, string(p)); return nil })
	if strings.Join(rest, " ") != `{"n":2} {"n":3}` || s.Depth() != 0 {
		t.Errorf("second drain got %v, depth %d", rest, s.Depth())
	}
}

func TestSpoolFolderBelongsToOneProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 10, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSpool(dir, 10, quietLog()); err == nil || !strings.Contains(err.Error(), "RELAY_SPOOL_DIR") {
		t.Errorf("second open of one folder: %v", err)
	}
	s.Close()
	again, err := OpenSpool(dir, 10, quietLog())
	if err != nil {
		t.Fatalf("open after Close: %v", err)
	}
	again.Close()
}

func TestSpoolIsBounded(t *testing.T) {
	s, _ := OpenSpool(t.TempDir(), 2, quietLog())
	s.Append([]byte(`{}`))
	s.Append([]byte(`{}`))
	if err := s.Append([]byte(`{}`)); !errors.Is(err, ErrSpoolFull) {
		t.Errorf("third append: %v, want ErrSpoolFull", err)
	}
}

func TestSweepKeepsWhatIsNotDoneInOneFile(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSpool(dir, 100, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		s.Append([]byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	// The middle one is done; then the spool takes another meanwhile.
	n, err := s.Sweep(func(lines [][]byte) ([]bool, error) {
		return []bool{false, true, false}, nil
	})
	if err != nil || n != 1 || s.Depth() != 2 {
		t.Fatalf("Sweep = %d, %v, depth %d; want 1 done, 2 kept", n, err, s.Depth())
	}
	s.Append([]byte(`{"n":3}`))
	if _, err := s.Sweep(func([][]byte) ([]bool, error) { return nil, errors.New("Redis away") }); err == nil || s.Depth() != 3 {
		t.Fatalf("a failed sweep: %v, depth %d; want the error and all 3 kept", err, s.Depth())
	}
	var got []string
	n, err = s.Sweep(func(lines [][]byte) ([]bool, error) {
		done := make([]bool, len(lines))
		for i, l := range lines {
			got, done[i] = append(got, string(l)), true
		}
		return done, nil
	})
	if want := `{"n":0} {"n":2} {"n":3}`; err != nil || n != 3 || strings.Join(got, " ") != want {
		t.Errorf("last sweep = %d, %v, saw %q; want 3 done, %s", n, err, got, want)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl")); s.Depth() != 0 || len(files) != 0 {
		t.Errorf("after everything was done: depth %d, files %v", s.Depth(), files)
	}
}
