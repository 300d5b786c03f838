// Package watch samples over time, one process (Sampler) or the whole host
// (HostSampler): each sample is the one-shot reading plus the change since
// the last one, rates per minute judged by the samples' own times, and how
// soon a limit runs out at that rate; the host sampler ranks what grows,
// by process and by container. It tells when a process exits and when its
// pid starts naming another process. It writes nothing: internal/render
// and internal/screen show the samples.
package watch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/events"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Sample is one reading. Its JSON keys are the one-shot --json keys plus
// the watch keys below.
type Sample struct {
	*model.Process
	Seq           int       `json:"sample"`
	Time          time.Time `json:"time"`
	ZombiesDelta  int       `json:"zombies_delta"`
	FDsDelta      int       `json:"fds_delta"`
	ZombiesPerMin float64   `json:"zombies_per_min"`
	FDsPerMin     float64   `json:"fds_per_min"`
	// FDLimitIn and NprocLimitIn: seconds until the soft RLIMIT_NOFILE or
	// RLIMIT_NPROC is reached at the rate over the window; null when the
	// count does not grow, the limit is unlimited, or (NPROC) the uid is root.
	FDLimitIn    *float64 `json:"fd_limit_in_seconds"`
	NprocLimitIn *float64 `json:"nproc_limit_in_seconds"`
	// Limit and LimitIn: the limit the growth reaches first of all those
	// known (RLIMIT_NOFILE, RLIMIT_NPROC, the cgroup's pids.max, the
	// kernel's pid_max and threads-max), and in how many seconds.
	Limit   string   `json:"limit,omitempty"`
	LimitIn *float64 `json:"limit_in_seconds"`

	tasksPerMin float64
	// FDTypesFrom and UIDProcessesFrom are the samples fd_types and
	// tcp_states, and uid_processes, were read in (they are read every
	// few samples: see Sampler.SlowEvery).
	FDTypesFrom      int `json:"fd_types_from_sample,omitempty"`
	UIDProcessesFrom int `json:"uid_processes_from_sample,omitempty"`
	// UIDProcessesEstimated: uid_processes is the last full count moved by
	// the change in the target's own threads and children since.
	UIDProcessesEstimated bool `json:"uid_processes_estimated,omitempty"`
	// ZombiesAppeared and ZombiesReaped: the zombies below the target that
	// are new since the last sample, and the pids of those gone (reaped).
	// JSON lines send the whole zombie_list in the first sample only.
	ZombiesAppeared []model.Zombie `json:"zombies_appeared"`
	ZombiesReaped   []int          `json:"zombies_reaped"`
	// Events: the numbers below come from the kernel's process events
	// (every exit seen); false where they are not available, and the
	// fields below are then absent.
	Events bool `json:"events"`
	// Exits and Reaped: the target's children that exited, and that it
	// reaped, since the last sample.
	Exits  *int64 `json:"exits,omitempty"`
	Reaped *int64 `json:"reaped,omitempty"`
	// Exit-to-reap latency over the last ReapLatencyWindow seconds.
	ReapLatencyP50    *float64 `json:"reap_latency_p50_seconds,omitempty"`
	ReapLatencyP99    *float64 `json:"reap_latency_p99_seconds,omitempty"`
	ReapLatencyWindow float64  `json:"reap_latency_window_seconds,omitempty"`
	// EventsLost: times the kernel dropped events: the counts are lower bounds.
	EventsLost int64 `json:"events_lost,omitempty"`
	// FDGroupsGrowing: the groups of descriptors (same file, same peer and
	// state, pipes) that grew since the first sample, most first; read
	// with the fd kinds, when the fd count has grown.
	FDGroupsGrowing []GroupGrowth `json:"fd_groups_growing,omitempty"`
}

// Ended is how a watch ends when its target does: Reason says so for a
// person ("pid 42 exited (exit 0) ...").
type Ended struct{ Reason string }

func (e *Ended) Error() string { return e.Reason }

// point is what the history keeps of a sample.
type point struct {
	t                       time.Time
	zombies, fds            int
	uidProcesses            int
	hasFDs, hasUIDProcesses bool
	// tasks: the target's threads and children (zombies included): what
	// it adds to a pids.max and to the host's pid_max.
	tasks int
}

// Sampler takes samples of one process.
type Sampler struct {
	Reader *model.Reader
	PID    int
	Opt    model.Options
	// Events, when not nil, gives exits, reaps and exit-to-reap latency.
	Events *events.Source
	// Window is how many samples the rates and the chart look back over.
	Window int
	// SlowEvery: the reads that cost more than the rest are made on the
	// first sample and every SlowEvery samples after (default 30): the
	// uid's tasks (every process's status, for a uid other than 0), and the
	// fd kinds (one readlink per fd, with Opt.FDTypes), which are also read
	// whenever the fd count has changed since. Samples between carry the
	// last values; FDTypesFrom and UIDProcessesFrom say which sample they
	// come from.
	SlowEvery int
	// Origins, when not nil (--origin), names the code behind each growing
	// fd group: it sets their Origin, from a tracer that follows PID and
	// p, the fd list the groups were read from.
	Origins func(p *model.Process, growing []GroupGrowth)

	seq     int
	start   time.Time // the target's start time, to tell pid reuse
	history []point
	cache   model.ZombieCache
	kinds   *kinds // the last fd kinds read
	tasks   *int   // the last uid task count read, in sample tasksAt
	tasksAt int
	// ownAtCount: the target's threads and children when tasks was read.
	ownAtCount int
	lastFDs    *int // the fd count of the last sample
	// seen: the zombies of the last sample, by pid and start, to tell
	// which appeared and which were reaped, with when each was first seen
	// and when it exited (zero where unknown).
	seen map[zombieKey]seenZombie
	// reaps: what each sample saw reaped, over the last ReapWindow, and
	// when the watch began: the time evidence of its diagnosis.
	reaps []reapsAt
	began time.Time
	// The event counts at the last sample, for the deltas.
	lastExits, lastReaped int64
	// groups: the fd groups at the first sample; growing: the last named.
	groups  *groupBase
	growing []GroupGrowth
}

type seenZombie struct{ first, exited time.Time }

// reapsAt is what one sample saw reaped: by re-reading (with the longest
// exit-to-reap delay among those whose exit time is known) and by the
// kernel's events.
type reapsAt struct {
	t               time.Time
	reread, events  int64
	maxDelay        time.Duration
	hasDelay        bool
	eventP99        time.Duration
	hasEventLatency bool
}

// ReapWindow is how far back the watch's reaping evidence goes.
const ReapWindow = time.Minute

type zombieKey struct {
	pid, ppid int
	age0      int64 // start, as the age at a fixed clock, to tell a reused pid
}

func keyOf(z model.Zombie, now time.Time) zombieKey {
	return zombieKey{z.PID, z.PPID, now.Add(-seconds(z.AgeSeconds)).Round(time.Second).Unix()}
}

// judge gives the sample's diagnosis the watch's own evidence: the reaps
// it saw over the last ReapWindow (re-read, or by the kernel's events,
// whichever saw more: events see a zombie reaped between two samples) and
// the longest delay among them, so its cause agrees with its counts.
func (s *Sampler) judge(snap *model.Process, got reapsAt, now time.Time) {
	s.reaps = append(s.reaps, got)
	for len(s.reaps) > 0 && now.Sub(s.reaps[0].t) > ReapWindow {
		s.reaps = s.reaps[1:]
	}
	var reread, evs int64
	var maxDelay time.Duration
	hasDelay := false
	for _, r := range s.reaps {
		reread += r.reread
		evs += r.events
		if r.hasDelay {
			maxDelay, hasDelay = max(maxDelay, r.maxDelay), true
		}
	}
	if n := len(s.reaps); n > 0 && s.reaps[n-1].hasEventLatency && evs > 0 {
		maxDelay, hasDelay = max(maxDelay, s.reaps[n-1].eventP99), true
	}
	by := "re-reading every sample"
	if s.Events != nil {
		by = "re-reading every sample and the kernel's process events"
	}
	w := model.WatchedReaps{Watched: min(now.Sub(s.began), ReapWindow), By: by, Reaped: int(max(reread, evs)), Now: now,
		FirstSeen: func(z model.Zombie) (time.Time, bool) {
			sz, ok := s.seen[keyOf(z, now)]
			return sz.first, ok
		}}
	if hasDelay {
		w.MaxDelay = &maxDelay
	}
	snap.JudgeWatched(w)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// readGroups lists the fd groups (when the kinds are read): at the first
// sample as the base, later when the count has grown past the base's, to
// name the groups that grew.
func (s *Sampler) readGroups(fds int) {
	now := s.Reader.Now()
	switch {
	case s.groups == nil:
		if p, err := s.Reader.FDList(s.PID); err == nil {
			s.groups = newGroupBase(p.FDGroups, now)
		}
	case fds > s.groups.total():
		if p, err := s.Reader.FDList(s.PID); err == nil {
			s.growing = s.groups.growing(p.FDGroups, now)
			if s.Origins != nil && len(s.growing) > 0 {
				s.Origins(p, s.growing)
			}
		}
	default:
		s.growing = nil
	}
}

// kindsDue tells whether this sample reads the fd kinds: on the first, when
// the fd count has changed since the last, and every few samples.
func (s *Sampler) kindsDue(every int) bool {
	if s.kinds == nil || s.seq%every == 0 || s.lastFDs == nil {
		return true
	}
	n, _, err := s.Reader.FS.FDCount(s.PID)
	return err != nil || n != s.kinds.fds
}

// kinds are fd kinds and TCP states as read in sample seq, when the
// process had fds descriptors.
type kinds struct {
	seq, fds     int // fds: the slot count (the O(1) count) when read
	reserved     int
	fdTypes, tcp map[string]int
}

// DefaultWindow is the rate and chart window, in samples.
const DefaultWindow = 60

// Next takes one sample. When the target has exited it returns *Ended;
// when its pid names another process, an error wrapping model.ErrPIDReused.
func (s *Sampler) Next(ctx context.Context) (*Sample, error) {
	every := s.SlowEvery
	if every <= 0 {
		every = 30
	}
	readTasks := s.tasks == nil || s.seq%every == 0
	snap, opt, err := s.read(ctx, every, readTasks)
	if err != nil {
		return nil, err
	}
	s.start = snap.StartTime
	s.seq++
	tasksFrom, estimated := s.carryTasks(snap, readTasks)
	fdTypesFrom := s.carryKinds(snap, opt.FDTypes)
	if estimated {
		snap.Diagnose() // with the current estimate
	}
	sample := &Sample{Process: snap, Seq: s.seq, Time: s.Reader.Now(), FDGroupsGrowing: s.growing,
		FDTypesFrom: fdTypesFrom, UIDProcessesFrom: tasksFrom, UIDProcessesEstimated: estimated,
		ZombiesAppeared: []model.Zombie{}, ZombiesReaped: []int{}}
	got := s.trackZombies(sample)
	s.addEvents(sample, &got)
	s.judge(snap, got, sample.Time)
	s.record(sample)
	s.rates(sample)
	return sample, nil
}

// read reads the target, the costly parts only when due: the fd kinds
// (see kindsDue) and the uid's tasks when readTasks. The zombie cache
// reads only new children, and all of them every few samples.
func (s *Sampler) read(ctx context.Context, every int, readTasks bool) (*model.Process, model.Options, error) {
	opt := s.Opt
	opt.Cache = &s.cache
	s.cache.Full = s.seq%every == 0
	opt.FDTypes = s.Opt.FDTypes && s.kindsDue(every)
	opt.NoUIDCount = !readTasks
	snap, err := s.Reader.Process(ctx, s.PID, opt)
	var denied *model.PermissionError
	switch {
	case errors.Is(err, model.ErrNoProcess) && s.seq == 0:
		return nil, opt, err // it was never there: the same error as one reading
	case errors.Is(err, model.ErrNoProcess):
		return nil, opt, &Ended{Reason: fmt.Sprintf("pid %d is gone: it exited and was reaped", s.PID)}
	case err != nil && !errors.As(err, &denied):
		return nil, opt, err
	}
	if s.seq > 0 && !snap.StartTime.Equal(s.start) {
		return nil, opt, fmt.Errorf("pid %d now names another process (%s, started %s): stopped following it: %w",
			s.PID, snap.Comm, snap.StartTime.Format("15:04:05"), model.ErrPIDReused)
	}
	if snap.State == "Z" {
		return nil, opt, &Ended{Reason: fmt.Sprintf("pid %d exited (%s) and is a zombie until its parent, pid %d, waits for it", s.PID, snap.Exit, snap.PPID)}
	}
	return snap, opt, nil
}

// carryTasks keeps the uid's task count when this sample read it, and
// estimates it otherwise; it returns the sample the count comes from, and
// whether it is an estimate.
func (s *Sampler) carryTasks(snap *model.Process, readTasks bool) (from int, estimated bool) {
	own := snap.Children + snap.Threads // its own tasks and its children's, zombies included
	if readTasks && snap.UIDProcesses != nil {
		s.tasks, s.tasksAt, s.ownAtCount = snap.UIDProcesses, s.seq, own
	}
	if snap.UIDProcesses == nil && s.tasks != nil {
		// Between full counts, the uid's count moves with what this
		// sample reads anyway: the target's threads and its children,
		// zombies included (they are tasks of its uid, and what runs a
		// forking server into RLIMIT_NPROC). So the projection warns
		// before fork fails, not up to 30 samples late.
		n := max(*s.tasks+own-s.ownAtCount, 0)
		snap.UIDProcesses = &n
		snap.NprocRatio = model.Ratio(n, snap.NprocSoftLimit)
		estimated = true
	}
	if s.tasks != nil {
		from = s.tasksAt
	}
	return from, estimated
}

// carryKinds keeps the fd kinds when this sample read them (readKinds),
// carries the last ones otherwise, and names the fd groups that grew; it
// returns the sample the kinds come from (0: none).
func (s *Sampler) carryKinds(snap *model.Process, readKinds bool) (from int) {
	defer func() { s.lastFDs = snap.FDs }()
	if !s.Opt.FDTypes || snap.FDs == nil {
		return 0
	}
	if snap.FDTypes != nil { // read in this sample
		s.kinds = &kinds{seq: s.seq, fds: *snap.FDs + snap.FDSlotsReserved, reserved: snap.FDSlotsReserved,
			fdTypes: snap.FDTypes, tcp: snap.TCPStates}
	} else if s.kinds != nil && *snap.FDs == s.kinds.fds {
		// The slot count has not moved since the listing: the listing
		// (and its reserved slots) still holds.
		n := *snap.FDs - s.kinds.reserved
		snap.FDs, snap.FDSlotsReserved = &n, s.kinds.reserved
	}
	if s.kinds != nil {
		snap.FDTypes, snap.TCPStates, from = s.kinds.fdTypes, s.kinds.tcp, s.kinds.seq
	}
	snap.Diagnose() // with the carried kinds
	if readKinds {
		s.readGroups(*snap.FDs)
	}
	return from
}

// trackZombies says which zombies appeared and which were reaped since the
// last sample, and returns what was seen reaped by re-reading, with the
// longest exit-to-reap delay among those whose exit time is known.
func (s *Sampler) trackZombies(sample *Sample) reapsAt {
	snap := sample.Process
	seen := make(map[zombieKey]seenZombie, len(snap.ZombieList))
	for _, z := range snap.ZombieList {
		k := keyOf(z, sample.Time)
		sz, ok := s.seen[k]
		if !ok {
			sz.first = sample.Time
			if s.seen != nil {
				sample.ZombiesAppeared = append(sample.ZombiesAppeared, z)
			}
		}
		if z.ExitAgeSeconds != nil && sz.exited.IsZero() {
			sz.exited = sample.Time.Add(-seconds(*z.ExitAgeSeconds))
		}
		seen[k] = sz
	}
	got := reapsAt{t: sample.Time}
	for k, sz := range s.seen {
		if _, ok := seen[k]; ok {
			continue
		}
		sample.ZombiesReaped = append(sample.ZombiesReaped, k.pid)
		if k.ppid == s.PID {
			got.reread++
			if !sz.exited.IsZero() {
				got.maxDelay, got.hasDelay = max(got.maxDelay, sample.Time.Sub(sz.exited)), true
			}
		}
	}
	slices.Sort(sample.ZombiesReaped)
	if s.seen == nil {
		sample.ZombiesAppeared = slices.Clone(snap.ZombieList)
		s.began = sample.Time
	}
	s.seen = seen
	return got
}

// addEvents adds what the kernel's process events saw since the last
// sample: exits, reaps and the exit-to-reap latency.
func (s *Sampler) addEvents(sample *Sample, got *reapsAt) {
	if s.Events == nil {
		return
	}
	st := s.Events.Parent(s.PID)
	exits, reaped := st.Exits-s.lastExits, st.Reaped-s.lastReaped
	s.lastExits, s.lastReaped = st.Exits, st.Reaped
	sample.Events, sample.Exits, sample.Reaped = true, &exits, &reaped
	sample.ReapLatencyWindow = events.Window.Seconds()
	sample.EventsLost = s.Events.Lost()
	if st.P50 != nil {
		p50, p99 := roundMs(st.P50.Seconds()), roundMs(st.P99.Seconds())
		sample.ReapLatencyP50, sample.ReapLatencyP99 = &p50, &p99
		got.eventP99, got.hasEventLatency = *st.P99, true
	}
	if s.seq > 1 {
		got.events = reaped
	}
}

// record adds the sample to the history (the last Window samples) and
// fills its deltas.
func (s *Sampler) record(sample *Sample) {
	snap := sample.Process
	p := point{t: sample.Time, zombies: snap.Zombies, hasFDs: snap.FDs != nil, tasks: snap.Threads + snap.Children}
	if snap.UIDProcesses != nil {
		p.uidProcesses, p.hasUIDProcesses = *snap.UIDProcesses, true
	}
	if snap.FDs != nil {
		p.fds = *snap.FDs
	}
	if n := len(s.history); n > 0 {
		last := s.history[n-1]
		sample.ZombiesDelta = p.zombies - last.zombies
		sample.FDsDelta = p.fds - last.fds
	}
	window := s.Window
	if window <= 0 {
		window = DefaultWindow
	}
	s.history = append(s.history, p)
	if len(s.history) > window {
		s.history = s.history[len(s.history)-window:]
	}
}

// rates fills the per-minute rates and projections from the first and the
// last point of the window.
func (s *Sampler) rates(sample *Sample) {
	first, last := s.history[0], s.history[len(s.history)-1]
	secs := last.t.Sub(first.t).Seconds()
	if secs <= 0 {
		return
	}
	// Rates are the median of the slopes between every two samples of the
	// window (Theil-Sen): a start-up burst, one interval's jump, moves
	// them no more than one sample's worth, where first-to-last would
	// carry it for the whole window.
	fdRate := medianSlope(s.history, func(p point) float64 { return float64(p.fds) })
	sample.ZombiesPerMin = round1(medianSlope(s.history, func(p point) float64 { return float64(p.zombies) }) * 60)
	sample.FDsPerMin = round1(fdRate * 60)
	// No projection before the window holds enough time and samples to
	// tell a rate from a moment.
	project := len(s.history) >= MinProjectSamples && secs >= MinProjectSpan.Seconds()
	if rate := fdRate; project && rate > 0 && last.hasFDs && sample.FDSoftLimit != proc.Unlimited {
		sample.FDLimitIn = eta(float64(sample.FDSoftLimit)-float64(last.fds), rate)
	}
	// The uid's tasks are read every few samples: the rate runs from the
	// first to the last sample that read them.
	var tf, tl *point
	for i := range s.history {
		if s.history[i].hasUIDProcesses {
			if tf == nil {
				tf = &s.history[i]
			}
			tl = &s.history[i]
		}
	}
	if project && tf != nil && tl != tf && sample.NprocSoftLimit != proc.Unlimited {
		if rate := float64(tl.uidProcesses-tf.uidProcesses) / tl.t.Sub(tf.t).Seconds(); rate > 0 {
			sample.NprocLimitIn = eta(float64(sample.NprocSoftLimit)-float64(tl.uidProcesses), rate)
		}
	}
	// The nearest of every limit: each limit's count moves with the
	// target's own growth (its tasks for pids.max and the kernel's).
	taskRate := medianSlope(s.history, func(p point) float64 { return float64(p.tasks) })
	sample.tasksPerMin = round1(taskRate * 60)
	if !project {
		taskRate = 0
	}
	nearest := func(name string, in *float64) {
		if in != nil && (sample.LimitIn == nil || *in < *sample.LimitIn) {
			sample.Limit, sample.LimitIn = name, in
		}
	}
	nearest("RLIMIT_NOFILE", sample.FDLimitIn)
	nearest("RLIMIT_NPROC", sample.NprocLimitIn)
	for _, l := range sample.Limits {
		if (l.Name == "pids.max" || strings.HasPrefix(l.Name, "kernel.")) && taskRate > 0 {
			nearest(l.Name, eta(float64(l.Limit)-float64(l.Used), taskRate))
		}
	}
}

// MinProjectSamples and MinProjectSpan: a projection to a limit needs a
// window of at least this many samples over at least this long.
const (
	MinProjectSamples = 5
	MinProjectSpan    = 3 * time.Second
)

// medianSlope is the Theil-Sen rate per second of v over the points: the
// median of the slopes between every two of them (at most 60: 1,770
// pairs).
func medianSlope(ps []point, v func(point) float64) float64 {
	slopes := make([]float64, 0, len(ps)*(len(ps)-1)/2)
	for i := range ps {
		for j := i + 1; j < len(ps); j++ {
			if dt := ps[j].t.Sub(ps[i].t).Seconds(); dt > 0 {
				slopes = append(slopes, (v(ps[j])-v(ps[i]))/dt)
			}
		}
	}
	if len(slopes) == 0 {
		return 0
	}
	slices.Sort(slopes)
	n := len(slopes)
	if n%2 == 1 {
		return slopes[n/2]
	}
	return (slopes[n/2-1] + slopes[n/2]) / 2
}

func eta(left, perSec float64) *float64 {
	v := round1(max(left, 0) / perSec)
	return &v
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func roundMs(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// History returns the zombie and fd counts of the window, oldest first.
func (s *Sampler) History() (zombies, fds []float64) {
	for _, p := range s.history {
		zombies = append(zombies, float64(p.zombies))
		fds = append(fds, float64(p.fds))
	}
	return zombies, fds
}

// Run samples once at once and then at every trigger (a ticker's tick, a
// key that asks for a fresh sample, and later a kernel event), handing each
// sample to emit, until ctx ends, the trigger channel closes, count samples
// were taken (0: no bound), the target ends (*Ended) or an error.
func Run[T any](ctx context.Context, s *Sampler, triggers <-chan T, count int, emit func(*Sample) error) error {
	return drive(ctx, triggers, func() bool { return count <= 0 || s.seq < count }, func() error {
		sample, err := s.Next(ctx)
		if err != nil {
			return err
		}
		return emit(sample)
	})
}

// drive takes a sample at once and then at every trigger while more says
// so, until ctx ends, the triggers close or take fails: the one loop of
// both watches.
func drive[T any](ctx context.Context, triggers <-chan T, more func() bool, take func() error) error {
	if err := take(); err != nil {
		return err
	}
	for more() {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-triggers:
			if !ok {
				return nil
			}
			if err := take(); err != nil {
				return err
			}
		}
	}
	return nil
}

// TasksPerMinute is the target's tasks (threads and children) growth over
// the window.
func (s *Sample) TasksPerMinute() float64 { return s.tasksPerMin }
