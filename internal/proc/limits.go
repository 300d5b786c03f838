package proc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Limit is one resource limit. Unlimited (RLIM_INFINITY) marshals to JSON
// null and prints as "unlimited".
type Limit uint64

// Unlimited is RLIM_INFINITY.
const Unlimited = Limit(math.MaxUint64)

func (l Limit) String() string {
	if l == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(uint64(l), 10)
}

// MarshalJSON writes null for unlimited.
func (l Limit) MarshalJSON() ([]byte, error) {
	if l == Unlimited {
		return []byte("null"), nil
	}
	return json.Marshal(uint64(l))
}

// UnmarshalJSON reads what MarshalJSON writes.
func (l *Limit) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = Unlimited
		return nil
	}
	var v uint64
	err := json.Unmarshal(b, &v)
	*l = Limit(v)
	return err
}

// Limits are the rows of /proc/PID/limits zombiewatch reports.
type Limits struct {
	NofileSoft, NofileHard Limit
	NprocSoft, NprocHard   Limit
}

// ParseLimits parses a limits file.
func ParseLimits(data []byte) (Limits, error) {
	var l Limits
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		var soft, hard *Limit
		switch {
		case strings.HasPrefix(line, "Max open files "):
			soft, hard = &l.NofileSoft, &l.NofileHard
		case strings.HasPrefix(line, "Max processes "):
			soft, hard = &l.NprocSoft, &l.NprocHard
		default:
			continue
		}
		// "Max open files            1024                 524288               files"
		f := strings.Fields(line)
		if len(f) < 5 {
			return l, fmt.Errorf("malformed limits line %q", line)
		}
		var err error
		if *soft, err = parseLimit(f[len(f)-3]); err == nil {
			*hard, err = parseLimit(f[len(f)-2])
		}
		if err != nil {
			return l, fmt.Errorf("malformed limits line %q", line)
		}
		found++
	}
	if found != 2 {
		return l, fmt.Errorf("malformed limits: no open files or processes row")
	}
	return l, nil
}

func parseLimit(s string) (Limit, error) {
	if s == "unlimited" {
		return Unlimited, nil
	}
	v, err := parseUint([]byte(s))
	return Limit(v), err
}

// ReadLimits gives pid's RLIMIT_NOFILE and RLIMIT_NPROC, soft and hard:
// with two prlimit calls on the live /proc where permitted (no text to
// format and parse), from the limits file otherwise (any user may read
// it; procfs's Limits has the soft column only). One function for every
// view, so that --pid and the host scan cannot disagree.
func (f *FS) ReadLimits(pid int, buf []byte) (Limits, []byte, error) {
	if f.live {
		var a, b unix.Rlimit
		if rawPrlimit(pid, unix.RLIMIT_NOFILE, &a) == nil && rawPrlimit(pid, unix.RLIMIT_NPROC, &b) == nil {
			return Limits{NofileSoft: Limit(a.Cur), NofileHard: Limit(a.Max), NprocSoft: Limit(b.Cur), NprocHard: Limit(b.Max)}, buf, nil
		}
	}
	path := f.PIDFile(pid, "limits")
	data, err := readRecord(path, buf)
	if err != nil {
		return Limits{}, buf, err
	}
	l, err := ParseLimits(data)
	if err != nil {
		return l, data, &ParseError{Path: path, Err: err}
	}
	return l, data, nil
}
