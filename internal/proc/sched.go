package proc

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// The scheduler's clock. /proc/PID/sched (CONFIG_SCHED_DEBUG, present on
// most distribution kernels) gives se.exec_start: when the task last ran,
// in milliseconds on the runqueue clock. A zombie last ran when it exited,
// so its exec_start is its exit instant. The runqueue clock is not
// CLOCK_MONOTONIC or CLOCK_BOOTTIME over long uptimes (it stops in
// suspend, drifts against them), so an exit age is the difference between
// two readings of the one clock: the zombie's exec_start and the reader's
// own thread's, read in the same pass (a running task's exec_start is
// "now" to within a tick).

// ErrNoSched: the tree has no sched files (a kernel without
// CONFIG_SCHED_DEBUG, or a copied tree without them): exit times are
// unknown.
var ErrNoSched = errors.New("no sched file (kernel without CONFIG_SCHED_DEBUG)")

// schedRule is the line of dashes under the sched file's header. The
// header holds the comm, which a process sets to any 15 bytes, newlines
// included: the first line after the rule is the kernel's.
var schedRule = []byte("\n" + string(bytes.Repeat([]byte("-"), 67)) + "\n")

// ParseExecStart reads se.exec_start from a sched file.
func ParseExecStart(data []byte) (time.Duration, error) {
	i := bytes.Index(data, schedRule)
	if i < 0 {
		return 0, fmt.Errorf("malformed sched: no header rule in %q", truncate(data))
	}
	line := data[i+len(schedRule):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	rest, ok := bytes.CutPrefix(line, []byte("se.exec_start"))
	if !ok {
		return 0, fmt.Errorf("malformed sched: want se.exec_start, have %q", truncate(line))
	}
	rest = bytes.TrimSpace(rest)
	rest, ok = bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return 0, fmt.Errorf("malformed sched line %q", truncate(line))
	}
	return parseMillis(bytes.TrimSpace(rest))
}

// maxExecStart bounds the clock: 100 years in milliseconds.
const maxExecStart = 100 * 365 * 24 * time.Hour

// parseMillis parses "455981.202264" (ms, six decimals) exactly.
func parseMillis(b []byte) (time.Duration, error) {
	whole, frac, _ := bytes.Cut(b, []byte("."))
	ms, err := parseUint(whole)
	if err != nil || len(frac) > 6 {
		return 0, fmt.Errorf("malformed exec_start %q", truncate(b))
	}
	var ns uint64
	for i := range 6 {
		ns *= 10
		if i >= len(frac) {
			continue
		}
		if frac[i] < '0' || frac[i] > '9' {
			return 0, fmt.Errorf("malformed exec_start %q", truncate(b))
		}
		ns += uint64(frac[i] - '0')
	}
	if ms > uint64(maxExecStart/time.Millisecond) {
		return 0, fmt.Errorf("exec_start %q: more than 100 years", truncate(b))
	}
	return time.Duration(ms)*time.Millisecond + time.Duration(ns), nil
}

// ExecStart reads pid's se.exec_start. A tree without sched files gives
// ErrNoSched.
func (f *FS) ExecStart(pid int, buf []byte) (time.Duration, []byte, error) {
	return f.execStart(f.PIDFile(pid, "sched"), buf)
}

func (f *FS) execStart(path string, buf []byte) (time.Duration, []byte, error) {
	// The line sits in the file's first 200 bytes: one read of 512, not
	// the whole file (2 KB, 40 lines formatted).
	data, err := readHead(path, buf, 512)
	if err != nil {
		return 0, buf, err
	}
	d, err := ParseExecStart(data)
	if err != nil {
		return 0, data, &ParseError{Path: path, Err: err}
	}
	return d, data, nil
}

// ReadExecStarts reads the exec_start of each pid, one reader per CPU
// (as ReadStats).
func (f *FS) ReadExecStarts(pids []int) ([]time.Duration, []error) {
	out := make([]time.Duration, len(pids))
	errs := make([]error, len(pids))
	Parallel(len(pids), func(lo, hi int) {
		buf := make([]byte, 512)
		for i := lo; i < hi; i++ {
			out[i], _, errs[i] = f.ExecStart(pids[i], buf)
		}
	})
	return out, errs
}

// SchedNow is "now" on the runqueue clock: the exec_start of the calling
// thread, which is running. On a mounted procfs it is the kernel's own
// (thread-self, whatever the tree's pid namespace: the clock is the
// kernel's); a copied tree gives its own in self/sched. ErrNoSched when
// there is none.
func (f *FS) SchedNow() (time.Duration, error) {
	path := f.path("self", "sched")
	if f.real {
		path = "/proc/thread-self/sched"
	}
	d, _, err := f.execStart(path, nil)
	if IsGone(err) {
		return 0, ErrNoSched
	}
	return d, err
}

// ExitClock turns exec_start readings into exit ages: Age(execStart) is how
// long ago a task last ran (a zombie: exited), against Now read once.
type ExitClock struct {
	Now time.Duration // the runqueue clock at the reading
}

// Age is how long before the clock's reading a task last ran: never
// negative (a task that ran after the reading, on another CPU, ran now).
func (c ExitClock) Age(execStart time.Duration) time.Duration {
	return max(c.Now-execStart, 0)
}
