package proc

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
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

// status is the part of /proc/PID/status that zombiewatch uses. procfs's
// ProcStatus has the uids but not the signal masks, so status is parsed here
// in one pass.
type status struct {
	Name    string // the comm (status escapes unprintable bytes)
	State   byte
	PPID    int
	UID     int  // real uid: the one RLIMIT_NPROC counts against
	NSInit  bool // pid 1 of its own pid namespace (a container's init)
	Threads int
	SigPnd  uint64
	ShdPnd  uint64
	SigBlk  uint64
	SigIgn  uint64
	SigCgt  uint64
}

func parseStatus(data []byte) (status, error) {
	var s status
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
		case "PPid":
			s.PPID, err = atoi(v)
		case "Uid":
			f := strings.Fields(string(v))
			if len(f) == 0 {
				return s, fmt.Errorf("malformed status Uid %q", v)
			}
			s.UID, err = strconv.Atoi(f[0])
			seen++
		case "NSpid":
			f := strings.Fields(string(v))
			s.NSInit = len(f) > 1 && f[len(f)-1] == "1"
		case "Threads":
			s.Threads, err = strconv.Atoi(string(v))
		case "SigPnd":
			s.SigPnd, err = strconv.ParseUint(string(v), 16, 64)
		case "ShdPnd":
			s.ShdPnd, err = strconv.ParseUint(string(v), 16, 64)
		case "SigBlk":
			s.SigBlk, err = strconv.ParseUint(string(v), 16, 64)
		case "SigIgn":
			s.SigIgn, err = strconv.ParseUint(string(v), 16, 64)
			seen++
		case "SigCgt":
			s.SigCgt, err = strconv.ParseUint(string(v), 16, 64)
			seen++
		}
		if err != nil {
			return s, fmt.Errorf("malformed status %s %q", k, v)
		}
	}
	if seen < 3 {
		return s, fmt.Errorf("malformed status: no Uid, SigIgn or SigCgt line")
	}
	return s, nil
}

// Sigchld is the process's SIGCHLD disposition as status shows it.
type Sigchld struct {
	Disposition Disposition `json:"disposition"`
	// Blocked: SIGCHLD is in the (main thread's) blocked mask, so a handler
	// does not run until it is unblocked (or the process reads a signalfd).
	Blocked bool `json:"blocked"`
	// Pending: a SIGCHLD has arrived and not been handled yet.
	Pending bool `json:"pending"`
}

func (s status) sigchld() Sigchld {
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
