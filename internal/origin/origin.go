// Package origin names the code behind a leak: the user call stacks that
// opened the descriptors a process holds and forked the zombie children
// it has not reaped. A tracer in the kernel (BPF on two tracepoints)
// records each opener and forker while it runs; at the end the records
// are joined with the descriptor table and the zombies actually there, so
// what was opened and closed meanwhile costs nothing, and what was opened
// before tracing began is counted as such, never guessed.
package origin

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Report is what tracing one process found.
type Report struct {
	PID           int     `json:"pid"`
	TracedSeconds float64 `json:"traced_seconds"`
	// FDs are the open descriptors opened while traced, by opening stack
	// and fd group, largest first.
	FDs []FDOrigin `json:"fds"`
	// FDsUntraced are open descriptors no traced call opened: opened
	// before tracing began, or received in a way not traced (recvmmsg,
	// beyond eight in one message, io_uring), or not recorded (lost).
	FDsUntraced int `json:"fds_untraced"`
	// Zombies are the zombie children forked while traced, by stack.
	Zombies []ZombieOrigin `json:"zombies"`
	// ZombiesUntraced were forked before tracing began.
	ZombiesUntraced int `json:"zombies_untraced"`
	// RecordsLost are descriptors and children opened while traced that
	// the kernel's maps had no room for: counted among the untraced.
	RecordsLost uint64 `json:"records_lost"`
	// CutShort counts the stacks shown that do not reach their thread's
	// entry: frames without a frame pointer end the kernel's walk.
	CutShort int `json:"stacks_cut_short"`
}

// FDOrigin is one fd group opened from one stack. Files, pipes and the
// other kinds that are not sockets group by kind alone (a leak of log
// files is one leak, whatever their names); Example is one of them.
type FDOrigin struct {
	model.FDGroup
	Example string `json:"example,omitempty"`
	// PerMinute is how fast these were opened (and stayed open) while traced.
	PerMinute float64 `json:"opened_per_minute"`
	// Stack is innermost first; empty when the kernel's stack map was
	// full, or when NotSampled.
	Stack []Frame `json:"stack"`
	Whole bool    `json:"stack_whole"`
	// NotSampled: opened over the budget of stack walks a second, so
	// with no stack.
	NotSampled bool `json:"not_sampled,omitempty"`
}

// ZombieOrigin is the zombies forked from one stack, with their exit ages.
type ZombieOrigin struct {
	Count      int     `json:"count"`
	Stack      []Frame `json:"stack"`
	Whole      bool    `json:"stack_whole"`
	NotSampled bool    `json:"not_sampled,omitempty"`
	// Exit ages of the youngest and the oldest (null where the kernel
	// does not tell them).
	NewestExitSeconds *float64 `json:"newest_exit_age_seconds"`
	OldestExitSeconds *float64 `json:"oldest_exit_age_seconds"`
}

// Recorded is what a tracer kept: records by descriptor and by child pid,
// and the stacks their ids name.
type Recorded struct {
	FDs, Forks map[int]Record
	Stacks     map[int64][]uint64
	Lost       uint64
}

// Recorded reads everything the tracer kept of pid.
func (t *Tracer) Recorded(pid int) (Recorded, error) {
	fds, forks, err := t.Records(pid)
	if err != nil {
		return Recorded{}, err
	}
	lost, err := t.Lost()
	if err != nil {
		return Recorded{}, err
	}
	r := Recorded{FDs: fds, Forks: forks, Stacks: map[int64][]uint64{}, Lost: lost}
	for _, m := range []map[int]Record{fds, forks} {
		for _, rec := range m {
			if _, ok := r.Stacks[rec.StackID]; !ok {
				r.Stacks[rec.StackID] = t.stackOf(pid, rec.StackID)
			}
		}
	}
	return r, nil
}

// Join groups what p holds now (read with its fd list and zombie list
// after tracing) by the records; resolve turns a stack into frames.
func Join(p *model.Process, rec Recorded, traced time.Duration, resolve func([]uint64) []Frame) *Report {
	r := &Report{PID: p.PID, TracedSeconds: traced.Seconds(), FDs: []FDOrigin{}, Zombies: []ZombieOrigin{}, RecordsLost: rec.Lost}
	frames := map[int64][]Frame{}
	stack := func(id int64) []Frame {
		f, ok := frames[id]
		if !ok {
			if addrs := rec.Stacks[id]; len(addrs) > 0 {
				f = resolve(addrs)
			}
			frames[id] = f
		}
		return f
	}
	// Stacks that differ only past where they can be resolved read the
	// same: they are one origin.
	key := func(id int64) string {
		if id == NotSampled {
			return "\x00not sampled"
		}
		var b strings.Builder
		for _, f := range stack(id) {
			b.WriteString(f.String())
			b.WriteByte('\n')
		}
		return b.String()
	}
	type fdKey struct {
		stack string
		group model.FDGroup
	}
	fds := map[fdKey]int{}
	fdStacks := map[string]int64{}
	examples := map[fdKey]string{}
	for i, g := range model.GroupEach(p.FDList) {
		opened, ok := rec.FDs[p.FDList[i].FD]
		if !ok {
			r.FDsUntraced++
			continue
		}
		example := ""
		if g.Kind != proc.FDSocket && strings.HasPrefix(g.Target, "/") {
			example, g.Target = g.Target, ""
		}
		k := fdKey{key(opened.StackID), g}
		fdStacks[k.stack] = opened.StackID
		if fds[k]++; fds[k] == 1 {
			examples[k] = example
		}
	}
	for k, n := range fds {
		id := fdStacks[k.stack]
		o := FDOrigin{FDGroup: k.group, Example: examples[k], Stack: stack(id), NotSampled: id == NotSampled}
		o.Count, o.Whole = n, Whole(o.Stack)
		if traced >= time.Second {
			o.PerMinute = float64(n) / traced.Minutes()
		}
		r.FDs = append(r.FDs, o)
	}
	slices.SortFunc(r.FDs, func(a, b FDOrigin) int {
		return cmp.Or(b.Count-a.Count, cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Target, b.Target), cmp.Compare(a.Remote, b.Remote))
	})
	zombies := map[string]*ZombieOrigin{}
	for _, z := range p.ZombieList {
		if z.PPID != p.PID {
			continue // a grandchild, adopted: not forked by p
		}
		forked, ok := rec.Forks[z.PID]
		if !ok {
			r.ZombiesUntraced++
			continue
		}
		k := key(forked.StackID)
		o := zombies[k]
		if o == nil {
			o = &ZombieOrigin{Stack: stack(forked.StackID), NotSampled: forked.StackID == NotSampled}
			o.Whole = Whole(o.Stack)
			zombies[k] = o
		}
		o.Count++
		if age := z.ExitAgeSeconds; age != nil {
			if o.NewestExitSeconds == nil || *age < *o.NewestExitSeconds {
				o.NewestExitSeconds = age
			}
			if o.OldestExitSeconds == nil || *age > *o.OldestExitSeconds {
				o.OldestExitSeconds = age
			}
		}
	}
	for _, o := range zombies {
		r.Zombies = append(r.Zombies, *o)
	}
	slices.SortFunc(r.Zombies, func(a, b ZombieOrigin) int { return b.Count - a.Count })
	for _, o := range r.FDs {
		if len(o.Stack) > 0 && !o.Whole {
			r.CutShort++
		}
	}
	for _, o := range r.Zombies {
		if len(o.Stack) > 0 && !o.Whole {
			r.CutShort++
		}
	}
	return r
}

// Of names the stack that opened the most of group's descriptors open now
// (p read with its fd list), with how many it opened and how many of the
// group were opened while traced; nil when none was.
func Of(p *model.Process, rec Recorded, group model.FDGroup, resolve func([]uint64) []Frame) (stack []Frame, opened, traced int) {
	group.Count = 1
	byStack := map[int64]int{}
	for i, g := range model.GroupEach(p.FDList) {
		if g != group {
			continue
		}
		if r, ok := rec.FDs[p.FDList[i].FD]; ok && r.StackID != NotSampled && len(rec.Stacks[r.StackID]) > 0 {
			byStack[r.StackID]++
			traced++
		}
	}
	best := int64(-1)
	for id, n := range byStack {
		if n > opened || (n == opened && id < best) {
			best, opened = id, n
		}
	}
	if opened == 0 {
		return nil, 0, traced
	}
	return resolve(rec.Stacks[best]), opened, traced
}
