package proc

import (
	"bytes"
	"fmt"
	"strconv"
)

// stat is the part of /proc/PID/stat that zombiewatch uses.
//
// procfs's ProcStat stops before field 52 (the exit code a zombie will hand
// to wait) and parses with fmt.Fscan, which allocates per field; this parser
// reads the fields it needs from a buffer the caller may reuse, which matters
// when a parent holds thousands of zombies.
type stat struct {
	PID       int
	Comm      string
	State     byte
	PPID      int
	Threads   int
	StartTime uint64 // clock ticks after boot
	ExitCode  int    // wait status a zombie hands to wait (Linux >= 3.5), else 0
}

// parseStat parses one stat line. The comm sits in parentheses and may
// itself hold spaces and ')', so the fields start after the *last* ')'.
func parseStat(data []byte) (stat, error) { return parseStatInterned(data, nil) }

// parseStatInterned is parseStat with the comm taken from comms when it is
// there: a parent's thousands of zombies mostly share one name.
func parseStatInterned(data []byte, comms map[string]string) (stat, error) {
	var s stat
	l := bytes.IndexByte(data, '(')
	r := bytes.LastIndexByte(data, ')')
	if l < 0 || r < l || r+2 > len(data) {
		return s, fmt.Errorf("malformed stat %q", truncate(data))
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data[:l])))
	if err != nil {
		return s, fmt.Errorf("malformed stat pid %q", truncate(data))
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
			if len(tok) != 1 {
				return s, fmt.Errorf("malformed stat state %q", tok)
			}
			s.State = tok[0]
		case 4:
			s.PPID, err = atoi(tok)
		case 20:
			s.Threads, err = atoi(tok)
		case 22:
			s.StartTime, err = strconv.ParseUint(string(tok), 10, 64)
		case 52:
			s.ExitCode, err = atoi(tok)
		}
		if err != nil {
			return s, fmt.Errorf("malformed stat field %d %q", field, tok)
		}
		field++
	}
	if field <= 22 {
		return s, fmt.Errorf("malformed stat: %d fields", field-1)
	}
	return s, nil
}

// atoi parses a decimal int without allocating.
func atoi(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, strconv.ErrSyntax
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, strconv.ErrSyntax
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// readStat reads and parses /proc/PID/stat into buf's storage.
func (f *FS) readStat(pid int, buf []byte) (stat, []byte, error) {
	return f.readStatInterned(pid, buf, nil)
}

func (f *FS) readStatInterned(pid int, buf []byte, comms map[string]string) (stat, []byte, error) {
	data, err := readRecord(f.pidFile(pid, "stat"), buf)
	if err != nil {
		return stat{}, buf, err
	}
	s, err := parseStatInterned(data, comms)
	if err != nil {
		return s, data, fmt.Errorf("%s: %w", f.pidFile(pid, "stat"), err)
	}
	return s, data, nil
}
