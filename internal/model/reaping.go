package model

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Whether a parent reaps is a question about time: every parent holds a
// zombie between a child's exit and its wait, and lazy reapers (a prefork
// server's once-a-second maintenance, Python's ForkingMixIn every 0.5 s, an
// init's poll loop) hold them for a while without a SIGCHLD handler. So
// the diagnosis says "does not wait" only with time evidence: zombies
// older than StaleAge since their exit, and none reaped while observed.

// StaleAge is how long after its exit a zombie counts as not being reaped:
// above the loops of the lazy reapers measured (Python's ForkingMixIn
// 0.5 s, apache's maintenance 1 s).
const StaleAge = 2 * time.Second

// Reaping is the time evidence of whether a parent reaps its zombies.
type Reaping struct {
	// ExitAgesKnown: every zombie's exit time was read (/proc/PID/sched);
	// OldestExitSeconds is the oldest exit age known, null if none is.
	ExitAgesKnown     bool     `json:"exit_ages_known"`
	OldestExitSeconds *float64 `json:"oldest_exit_age_seconds"`
	// Stale: its zombies at least StaleAgeSeconds past their exit (known,
	// or seen that long) at the end of the reading or observation.
	Stale           int     `json:"stale"`
	StaleAgeSeconds float64 `json:"stale_age_seconds"`
	// ObservedSeconds: how long its children were watched after the
	// reading (0: judged from exit ages alone), and how.
	ObservedSeconds float64 `json:"observed_seconds"`
	ObservedBy      string  `json:"observed_by,omitempty"`
	// Reaped: zombies that went away while observed (its waits), Appeared:
	// new ones, ReapDelayMaxSeconds: the longest exit-to-reap delay seen
	// (to within the observation's step), Remaining: zombies at the end.
	Reaped              int      `json:"reaped"`
	Appeared            int      `json:"appeared"`
	ReapDelayMaxSeconds *float64 `json:"reap_delay_max_seconds"`
	Remaining           *int     `json:"remaining,omitempty"`
	// Note says why an observation ended early (the parent exited).
	Note string `json:"note,omitempty"`
}

// exitAges fills each zombie's exit age from its sched file against the
// runqueue clock read right after (so a zombie that exited during the
// reads is not in the future). Zombies in the cache keep the exec_start
// read before. Where the kernel has no sched files, ages stay null.
func (r *Reader) exitAges(zs []Zombie, c *ZombieCache) {
	if len(zs) == 0 {
		return
	}
	var todo []int
	for i := range zs {
		if c != nil && c.zombies != nil {
			if old, ok := c.zombies[zs[i].PID]; ok && old.hasExec && old.raw.StartTime == zs[i].raw.StartTime {
				zs[i].exec, zs[i].hasExec = old.exec, true
				continue
			}
		}
		todo = append(todo, i)
	}
	pids := make([]int, len(todo))
	for j, i := range todo {
		pids[j] = zs[i].PID
	}
	execs, errs := r.FS.ReadExecStarts(pids)
	for j, i := range todo {
		if errs[j] == nil {
			zs[i].exec, zs[i].hasExec = execs[j], true
		}
	}
	now, err := r.FS.SchedNow()
	if err != nil {
		return
	}
	clock := proc.ExitClock{Now: now}
	for i := range zs {
		if zs[i].hasExec {
			age := round2(clock.Age(zs[i].exec).Seconds())
			zs[i].ExitAgeSeconds, zs[i].ExitAgeFrom = &age, "sched"
		}
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// judgeFromExitAges sets the time evidence one reading gives: the exit
// ages of the zombies p holds itself.
func (p *Process) judgeFromExitAges() {
	if p.Zombies == 0 {
		p.Reaping = nil
		return
	}
	rp := &Reaping{StaleAgeSeconds: StaleAge.Seconds()}
	known := 0
	var oldest float64
	for _, z := range p.ZombieList {
		if z.PPID != p.PID || z.ExitAgeSeconds == nil {
			continue
		}
		known++
		oldest = max(oldest, *z.ExitAgeSeconds)
		if *z.ExitAgeSeconds >= rp.StaleAgeSeconds {
			rp.Stale++
		}
	}
	rp.ExitAgesKnown = known == p.Zombies
	if known > 0 {
		rp.OldestExitSeconds = &oldest
	}
	p.Reaping = rp
}

// ObserveStep is how often an observation re-reads the children: the
// resolution of the reap delays it reports.
const ObserveStep = 100 * time.Millisecond

// RecentAge: zombies that all exited less than this ago are recent enough
// that one reading may have met a parent that had no chance to reap yet
// (busy, or stopped until a moment ago): they are observed before they
// are judged.
const RecentAge = 10 * time.Second

// NeedsObservation tells whether one reading leaves the question open: p
// holds zombies, none older than RecentAge (or none yet stale, where exit
// times are unknown), and it can run (a stopped parent cannot reap,
// whatever it would do once resumed).
func (p *Process) NeedsObservation() bool {
	rp := p.Reaping
	if rp == nil || p.State == "T" || p.State == "t" {
		return false
	}
	if rp.OldestExitSeconds != nil {
		return *rp.OldestExitSeconds < RecentAge.Seconds()
	}
	return rp.Stale == 0
}

// Observable tells whether Observe would follow p for window: the question
// is open, and the tree is a mounted procfs that changes (a copied tree
// stands still).
func (r *Reader) Observable(p *Process, window time.Duration) bool {
	return window > 0 && r.FS.Real() && p.NeedsObservation()
}

// observed is one zombie child followed by an observation.
type observed struct {
	exitAt time.Time // zero when its exit time is unknown
	seen   time.Time // when the observation first saw it
}

type zombieID struct {
	pid   int
	start uint64
}

// Observe follows p's own zombie children for up to window after the
// reading, re-reading them every step: the ones that go away were reaped
// (with the delay since their exit), the ones that stay age. It ends early
// once every zombie it started with has been reaped, and re-diagnoses p
// from what it saw. Nothing is done unless NeedsObservation.
func (r *Reader) Observe(ctx context.Context, p *Process, window, step time.Duration) {
	if !r.Observable(p, window) {
		return
	}
	rp := p.Reaping
	begin := time.Now()
	followed := followedZombies(p, begin)
	initial := make(map[zombieID]bool, len(followed))
	for id := range followed {
		initial[id] = true
	}
	var maxDelay time.Duration
	hasDelay := false
	end := begin
	for end.Sub(begin) < window && len(initial) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(step, window-end.Sub(begin))):
		}
		now, err := r.ownZombies(p, followed)
		end = time.Now()
		if err != nil {
			rp.Note = "observation ended early: pid " + strconv.Itoa(p.PID) + " exited"
			break
		}
		for id, z := range followed {
			if _, ok := now[id]; ok {
				continue
			}
			rp.Reaped++
			delete(initial, id)
			if !z.exitAt.IsZero() {
				maxDelay, hasDelay = max(maxDelay, end.Sub(z.exitAt)), true
			}
		}
		for id := range now {
			if _, ok := followed[id]; !ok {
				rp.Appeared++
			}
		}
		followed = now
	}
	rp.ObservedSeconds = round2(end.Sub(begin).Seconds())
	rp.ObservedBy = "re-reading its children every " + step.String()
	if hasDelay {
		d := round2(maxDelay.Seconds())
		rp.ReapDelayMaxSeconds = &d
	}
	judgeStale(rp, followed, end, maxDelay)
	p.Diagnose()
}

// followedZombies is p's own zombies at the reading, from which the
// observation follows them: one reaped between the reading and the first
// re-read is a reap seen.
func followedZombies(p *Process, begin time.Time) map[zombieID]observed {
	followed := map[zombieID]observed{}
	for _, z := range p.ZombieList {
		if z.PPID != p.PID {
			continue
		}
		o := observed{seen: begin}
		if z.ExitAgeSeconds != nil {
			o.exitAt = begin.Add(-seconds(*z.ExitAgeSeconds))
		}
		followed[zombieID{z.PID, z.raw.StartTime}] = o
	}
	return followed
}

// judgeStale counts the zombies left at the end that are stale: older,
// since their exit (or since first seen, a lower bound), than StaleAge and
// than twice the longest delay this parent took to reap another (a lazy
// reaper under load).
func judgeStale(rp *Reaping, left map[zombieID]observed, end time.Time, maxDelay time.Duration) {
	judge := max(StaleAge, 2*maxDelay)
	rp.StaleAgeSeconds = round2(judge.Seconds())
	rp.Stale = 0
	remaining := len(left)
	rp.Remaining = &remaining
	var oldest time.Duration
	hasOldest := false
	for _, z := range left {
		age := end.Sub(z.seen)
		if !z.exitAt.IsZero() {
			age = end.Sub(z.exitAt)
			oldest, hasOldest = max(oldest, age), true
		}
		if age >= judge {
			rp.Stale++
		}
	}
	if hasOldest {
		o := round2(oldest.Seconds())
		rp.OldestExitSeconds = &o
	}
}

// ownZombies reads p's own zombie children now, keeping what last knew
// of the ones it saw before (exit time, first seen). An error means p is
// gone (or its pid names another process).
func (r *Reader) ownZombies(p *Process, last map[zombieID]observed) (map[zombieID]observed, error) {
	now := time.Now()
	kids, _, err := r.FS.Children(p.PID, nil)
	if err != nil || !r.sameProcess(p.PID, p.startTicks) {
		return nil, ErrNoProcess
	}
	stats, errs := r.FS.ReadStats(kids)
	out := make(map[zombieID]observed)
	var fresh []int
	var freshIDs []zombieID
	for i, st := range stats {
		if errs[i] != nil || st.State != 'Z' || st.PPID != p.PID {
			continue
		}
		id := zombieID{st.PID, st.StartTime}
		if z, ok := last[id]; ok {
			out[id] = z
			continue
		}
		out[id] = observed{seen: now}
		fresh = append(fresh, st.PID)
		freshIDs = append(freshIDs, id)
	}
	if len(fresh) == 0 {
		return out, nil
	}
	execs, execErrs := r.FS.ReadExecStarts(fresh)
	schedNow, err := r.FS.SchedNow()
	if err != nil {
		return out, nil
	}
	clock := proc.ExitClock{Now: schedNow}
	at := time.Now()
	for j, id := range freshIDs {
		if execErrs[j] == nil {
			z := out[id]
			z.exitAt = at.Add(-clock.Age(execs[j]))
			out[id] = z
		}
	}
	return out, nil
}

// WatchedReaps is what a watch saw of a parent's reaping over its window:
// how long it has watched, the reaps it saw (by re-reads, or the kernel's
// process events) and the longest exit-to-reap delay among them.
type WatchedReaps struct {
	Watched  time.Duration
	By       string
	Reaped   int
	MaxDelay *time.Duration
	// FirstSeen is when the watch first saw a zombie (the lower bound of
	// its exit age where the kernel does not tell it).
	FirstSeen func(Zombie) (time.Time, bool)
	Now       time.Time
}

// JudgeWatched sets p's time evidence from a watch and re-diagnoses it:
// the watch's cause agrees with the reaps the watch itself counted.
func (p *Process) JudgeWatched(w WatchedReaps) {
	if p.Reaping == nil {
		return
	}
	rp := p.Reaping
	rp.ObservedSeconds, rp.ObservedBy, rp.Reaped = round2(w.Watched.Seconds()), w.By, w.Reaped
	judge := StaleAge
	if w.MaxDelay != nil {
		d := round2(w.MaxDelay.Seconds())
		rp.ReapDelayMaxSeconds = &d
		judge = max(judge, 2**w.MaxDelay)
	}
	rp.StaleAgeSeconds = round2(judge.Seconds())
	rp.Stale = 0
	for _, z := range p.ZombieList {
		if z.PPID != p.PID {
			continue
		}
		age, known := time.Duration(0), false
		if z.ExitAgeSeconds != nil {
			age, known = seconds(*z.ExitAgeSeconds), true
		} else if w.FirstSeen != nil {
			if seen, ok := w.FirstSeen(z); ok {
				age, known = w.Now.Sub(seen), true
			}
		}
		if known && age >= judge {
			rp.Stale++
		}
	}
	p.Diagnose()
}
