package proc

import (
	"bytes"
	"fmt"
	"strconv"
)

// sigchldBit is SIGCHLD (signal 17) in the masks of /proc/PID/status.
const sigchldBit = uint64(1) << (17 - 1)

// Disposition is what a process does when a child exits.
type Disposition string

const (
	// SigchldDefault: no handler and not ignored. Nobody reaps unless the
	// code calls wait itself.
	SigchldDefault Disposition = "default"
	// SigchldCaught: a handler is installed. It reaps only if it calls wait
	// for every child (the Go runtime catches every signal, reaping or not).
	SigchldCaught Disposition = "caught"
	// SigchldIgnored: SIG_IGN, so the kernel reaps children itself.
	SigchldIgnored Disposition = "ignored"
)

// Status is the part of /proc/PID/status that zombiewatch uses. procfs's
// ProcStatus has the uids but not the signal masks, so status is parsed here
// in one pass.
type Status struct {
	Name    string // the comm (status escapes unprintable bytes)
	State   byte
	Tgid    int // the process a thread id belongs to
	PPID    int
	UID     int   // real uid: the one RLIMIT_NPROC counts against
	NSpid   []int // the pid in each pid namespace, outermost first
	Kthread bool  // "Kthread: 1" (Linux 6.x): a kernel thread
	Threads int
	SigPnd  uint64
	ShdPnd  uint64
	SigBlk  uint64
	SigIgn  uint64
	SigCgt  uint64
}

// NSInit tells whether the process is pid 1 of a pid namespace nested in
// the reader's (a container's init seen from the host).
func (s Status) NSInit() bool {
	return len(s.NSpid) > 1 && s.NSpid[len(s.NSpid)-1] == 1
}

// ParseStatus parses a status file.
func ParseStatus(data []byte) (Status, error) {
	var s Status
	var seen int
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		var err error
		switch string(k) {
		case "Name":
			s.Name = string(v)
		case "State":
			if len(v) > 0 {
				s.State = v[0]
			}
		case "Tgid":
			s.Tgid, err = atoi(v)
		case "PPid":
			s.PPID, err = atoi(v)
		case "Uid":
			first := v
			if i := bytes.IndexAny(v, " \t"); i >= 0 {
				first = v[:i]
			}
			s.UID, err = atoi(first)
			seen++
		case "NSpid":
			s.NSpid = s.NSpid[:0]
			for f := range bytes.FieldsSeq(v) {
				var n int
				if n, err = atoi(f); err != nil {
					break
				}
				s.NSpid = append(s.NSpid, n)
			}
		case "Kthread":
			s.Kthread = string(v) == "1"
		case "Threads":
			s.Threads, err = atoi(v)
		case "SigPnd":
			s.SigPnd, err = parseMask(v)
		case "ShdPnd":
			s.ShdPnd, err = parseMask(v)
		case "SigBlk":
			s.SigBlk, err = parseMask(v)
		case "SigIgn":
			s.SigIgn, err = parseMask(v)
			seen++
		case "SigCgt":
			s.SigCgt, err = parseMask(v)
			seen++
		}
		if err != nil {
			return s, fmt.Errorf("malformed status %s %q", k, truncate(v))
		}
		if seen == 3 {
			break // SigCgt comes after every line read here; the rest (capabilities, memory) is not
		}
	}
	if seen < 3 {
		return s, fmt.Errorf("malformed status: no Uid, SigIgn or SigCgt line")
	}
	return s, nil
}

func parseMask(v []byte) (uint64, error) {
	if len(v) == 0 || len(v) > 16 {
		return 0, errNotCanonical
	}
	return strconv.ParseUint(string(v), 16, 64)
}

// ReadStatus reads and parses /proc/PID/status into buf's storage.
func (f *FS) ReadStatus(pid int, buf []byte) (Status, []byte, error) {
	f.statusReads.Add(1)
	path := f.PIDFile(pid, "status")
	data, err := readRecord(path, buf)
	if err != nil {
		return Status{}, buf, err
	}
	s, err := ParseStatus(data)
	if err != nil {
		return s, data, &ParseError{Path: path, Err: err}
	}
	return s, data, nil
}

// StatusReads is how many status files this FS has read: what a reading
// costs grows with it (a test holds the selection's cost to one count).
func (f *FS) StatusReads() int64 { return f.statusReads.Load() }

// Sigchld is the process's SIGCHLD disposition as status shows it.
type Sigchld struct {
	Disposition Disposition
	// Blocked: SIGCHLD is in the (main thread's) blocked mask, so a handler
	// does not run until it is unblocked (or the process reads a signalfd).
	Blocked bool
	// Pending: a SIGCHLD has arrived and not been handled yet.
	Pending bool
}

// Sigchld reads the SIGCHLD bits of the masks.
func (s Status) Sigchld() Sigchld {
	d := SigchldDefault
	switch {
	case s.SigIgn&sigchldBit != 0:
		d = SigchldIgnored
	case s.SigCgt&sigchldBit != 0:
		d = SigchldCaught
	}
	return Sigchld{
		Disposition: d,
		Blocked:     s.SigBlk&sigchldBit != 0,
		Pending:     (s.SigPnd|s.ShdPnd)&sigchldBit != 0,
	}
}
