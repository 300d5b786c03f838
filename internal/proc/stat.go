package proc

import (
	"bytes"
	"errors"
	"fmt"
)

// Stat is the part of /proc/PID/stat that zombiewatch uses.
//
// procfs's ProcStat stops before field 52 (the exit code a zombie will hand
// to wait) and parses with fmt.Fscan, which allocates per field; this parser
// reads the fields it needs from a buffer the caller may reuse, which matters
// when a parent holds thousands of zombies.
type Stat struct {
	PID       int
	Comm      string // as the process named itself: any bytes but NUL
	State     byte
	PPID      int
	Flags     uint64 // field 9: the kernel's PF_* flags
	Threads   int
	StartTime uint64 // clock ticks after boot
	ExitCode  int    // wait status a zombie hands to wait (Linux >= 3.5), else 0
}

// ParseStat parses one stat line. The comm sits in parentheses and may
// itself hold spaces and ')', so the fields start after the *last* ')'.
func ParseStat(data []byte) (Stat, error) { return parseStatInterned(data, nil) }

// parseStatInterned is ParseStat with the comm taken from comms when it is
// there: a parent's thousands of zombies mostly share one name.
func parseStatInterned(data []byte, comms map[string]string) (Stat, error) {
	var s Stat
	l := bytes.IndexByte(data, '(')
	// The record is one line; a file with more after its newline (a copied
	// tree, procfs's own fixtures) ends at that newline. The comm, which
	// may hold newlines and ')', is at most 64 bytes: the line's end is
	// the first newline after it could have ended.
	if l >= 0 && l+66 < len(data) {
		if nl := bytes.IndexByte(data[l+66:], '\n'); nl >= 0 {
			data = data[:l+66+nl+1]
		}
	}
	r := bytes.LastIndexByte(data, ')')
	if l < 0 || r < l || r+2 > len(data) {
		return s, fmt.Errorf("malformed stat %q", truncate(data))
	}
	pid, err := atoi(bytes.TrimSpace(data[:l]))
	if err != nil || pid <= 0 {
		return s, fmt.Errorf("malformed stat pid %q", truncate(data[:l]))
	}
	s.PID = pid
	if c, ok := comms[string(data[l+1:r])]; ok { // no allocation to look up
		s.Comm = c
	} else {
		s.Comm = string(data[l+1 : r])
		if comms != nil {
			comms[s.Comm] = s.Comm
		}
	}

	// Field numbers as in proc(5): field 3 is the first after the comm.
	// Fields past 52 (a newer kernel's) are ignored.
	field := 3
	rest := data[r+2:]
	for len(rest) > 0 && field <= 52 {
		var tok []byte
		if i := bytes.IndexByte(rest, ' '); i >= 0 {
			tok, rest = rest[:i], rest[i+1:]
		} else {
			tok, rest = bytes.TrimRight(rest, "\n"), nil
		}
		switch field {
		case 3:
			if len(tok) != 1 || tok[0] < 'A' || tok[0] > 'z' {
				return s, fmt.Errorf("malformed stat state %q", truncate(tok))
			}
			s.State = tok[0]
		case 4:
			s.PPID, err = atoi(tok)
		case 9:
			s.Flags, err = parseUint(tok)
		case 20:
			s.Threads, err = atoi(tok)
		case 22:
			// More than 100 years of clock ticks is no process's.
			if s.StartTime, err = parseUint(tok); err == nil && s.StartTime > maxTicks {
				err = errNotCanonical
			}
		case 52:
			s.ExitCode, err = atoi(tok)
		}
		if err != nil {
			return s, fmt.Errorf("malformed stat field %d %q", field, truncate(tok))
		}
		field++
	}
	if field <= 22 {
		return s, fmt.Errorf("malformed stat: %d fields", field-1)
	}
	return s, nil
}

// PFKthread is PF_KTHREAD among stat's flags: a kernel thread, with no
// fd table, no command line and no user limits.
const PFKthread = 0x00200000

// KernelThread tells whether the process is a kernel thread.
func (s Stat) KernelThread() bool { return s.Flags&PFKthread != 0 }

// errNotCanonical: a number as the kernel never writes it.
var errNotCanonical = errors.New("not a canonical decimal number")

// parseUint parses a canonical unsigned decimal: digits only, no sign, no
// leading zero (the kernel writes none: a tree that does, "0100" beside
// "100", would count one process twice), no overflow. It does not
// allocate.
func parseUint(b []byte) (uint64, error) {
	if len(b) == 0 || len(b) > 20 || (b[0] == '0' && len(b) > 1) {
		return 0, errNotCanonical
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errNotCanonical
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, errNotCanonical
		}
		n = n*10 + d
	}
	return n, nil
}

// atoi is parseUint for values that must fit an int (pids, counts).
func atoi(b []byte) (int, error) {
	n, err := parseUint(b)
	if err != nil || n > 1<<62 {
		return 0, errNotCanonical
	}
	return int(n), nil
}

// ParsePID parses a pid as a directory or children file names it.
func ParsePID(s string) (int, bool) {
	n, err := atoi([]byte(s))
	return n, err == nil && n > 0 && n <= 1<<22 // PID_MAX_LIMIT
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// ReadStat reads and parses /proc/PID/stat into buf's storage.
func (f *FS) ReadStat(pid int, buf []byte) (Stat, []byte, error) {
	return f.readStatInterned(pid, buf, nil)
}

func (f *FS) readStatInterned(pid int, buf []byte, comms map[string]string) (Stat, []byte, error) {
	path := f.PIDFile(pid, "stat")
	data, err := readRecord(path, buf)
	if err != nil {
		return Stat{}, buf, err
	}
	s, err := parseStatInterned(data, comms)
	if err == nil && s.PID != pid {
		err = fmt.Errorf("stat names pid %d", s.PID)
	}
	if err != nil {
		return s, data, &ParseError{Path: path, Err: err}
	}
	return s, data, nil
}

// ReadStats reads the stat of each pid, one reader per CPU: the reads are
// independent and almost all kernel time (measured on 2 cores with 5,000
// zombie children: 38 ms -> 29 ms for the whole reading).
func (f *FS) ReadStats(pids []int) ([]Stat, []error) {
	stats := make([]Stat, len(pids))
	errs := make([]error, len(pids))
	Parallel(len(pids), func(lo, hi int) {
		buf := make([]byte, 0, 1024)
		comms := map[string]string{}
		for i := lo; i < hi; i++ {
			stats[i], buf, errs[i] = f.readStatInterned(pids[i], buf, comms)
		}
	})
	return stats, errs
}

// ParseError is a kernel file that did not parse: a hostile or broken
// tree. Callers skip the one record and count it; they do not fail the
// whole reading.
type ParseError struct {
	Path string
	Err  error
}

func (e *ParseError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *ParseError) Unwrap() error { return e.Err }
