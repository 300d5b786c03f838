package proc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
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

// limits is the pair of rows of /proc/PID/limits zombiewatch reports.
// procfs's Limits returns soft limits only; unix.Prlimit gives the hard ones
// only for processes we may ptrace and never for a fixture, so both columns
// are read from the file, which any user may read.
type limits struct {
	NofileSoft, NofileHard Limit
	NprocSoft, NprocHard   Limit
}

func parseLimits(data []byte) (limits, error) {
	var l limits
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
	v, err := strconv.ParseUint(s, 10, 64)
	return Limit(v), err
}
