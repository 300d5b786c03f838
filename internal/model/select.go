package model

import (
	"context"
	"regexp"
	"slices"
	"strings"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Selector picks processes the way pgrep does: by name (comm, or with Full
// the command line) and by real uid.
type Selector struct {
	Names []*regexp.Regexp // any may match
	Full  bool             // match the command line, as pgrep -f
	UID   *int
}

// Select lists the pids the selector matches, sorted. Processes that exit
// during the pass are skipped; zombiewatch's own process is left out.
func (r *Reader) Select(ctx context.Context, s Selector) ([]int, error) {
	pids, err := r.FS.PIDs()
	if err != nil {
		return nil, err
	}
	var out []int
	buf := make([]byte, 0, 2048)
	self := -1
	if r.FS.Live() {
		self = selfPID()
	}
	for i, pid := range pids {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if pid == self {
			continue
		}
		var st proc.Status
		st, buf, err = r.FS.ReadStatus(pid, buf)
		if err != nil {
			continue // gone, or not parsable: not a match
		}
		if s.UID != nil && st.UID != *s.UID {
			continue
		}
		if len(s.Names) > 0 {
			subject := st.Name
			if s.Full {
				args, err := r.FS.Cmdline(pid)
				if err != nil {
					continue
				}
				if len(args) > 0 {
					subject = strings.Join(args, " ")
				}
			}
			if !slices.ContainsFunc(s.Names, func(re *regexp.Regexp) bool { return re.MatchString(subject) }) {
				continue
			}
		}
		out = append(out, pid)
	}
	slices.Sort(out)
	return out, nil
}
