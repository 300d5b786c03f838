package watch

import (
	"cmp"
	"context"
	"os"
	"slices"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/events"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// HostSample is one sample of the whole host: totals, and the processes
// whose zombies, fds or tasks grow, most urgent first.
type HostSample struct {
	Seq       int       `json:"sample"`
	Time      time.Time `json:"time"`
	Processes int       `json:"processes"`
	Threads   int       `json:"threads"`
	Zombies   int       `json:"zombies"`
	// ProcessesRead: the processes whose counts this sample read; the
	// others' stood still and were read at most 8 s ago (model.Scan).
	ProcessesRead int       `json:"processes_read"`
	Growing       []Growing `json:"growing"`
	// Containers: the cgroups (containers, pods, units) whose tasks or
	// zombies grow, or whose pids.max refused forks, most urgent first.
	Containers []ContainerGrowth `json:"containers"`
	// Window is the span, in seconds, the rates are taken over.
	WindowSeconds float64 `json:"window_seconds"`
}

// Growing is one process whose counts grow over the window.
type Growing struct {
	PID           int     `json:"pid"`
	Comm          string  `json:"comm"`
	User          string  `json:"user"`
	Zombies       int     `json:"zombies"`
	ZombiesPerMin float64 `json:"zombies_per_min"`
	FDs           int     `json:"fds"`
	FDsPerMin     float64 `json:"fds_per_min"`
	Tasks         int     `json:"tasks"` // its threads and its children, zombies included
	TasksPerMin   float64 `json:"tasks_per_min"`
	// Since: when the growth began, the last sample in the window at which
	// the fastest-growing count was at its lowest.
	Since time.Time `json:"since"`
	// Limit: the limit the growth reaches first (RLIMIT_NOFILE,
	// RLIMIT_NPROC, kernel.pid_max), and in how many seconds at the rate;
	// null when no growth heads to a known limit.
	Limit          string   `json:"limit,omitempty"`
	LimitInSeconds *float64 `json:"limit_in_seconds"`
	// ReapLatencyP99: its children's exit-to-reap p99 over the events
	// window, in seconds (with process events only).
	ReapLatencyP99 *float64 `json:"reap_latency_p99_seconds,omitempty"`
	// FDGroupsGrowing: for the first processes whose fds grow, the groups
	// of descriptors that grew since the watch first listed them.
	FDGroupsGrowing []GroupGrowth `json:"fd_groups_growing,omitempty"`
}

// HostSampler samples the host again and again with one host reading
// each, keeping a short history per process. A process is followed by its
// pid, name and parent: a pid reused by another program starts a new
// history.
type HostSampler struct {
	Reader *model.Reader
	Window int // samples the rates look back over (default DefaultWindow)
	// Top bounds the growing list (default 20).
	Top int
	// Events, when not nil, adds the parents that reap late (exit-to-reap
	// p99 over a second) to the list, ranked among what grows: a slow
	// reaper is found before it leaks.
	Events *events.Source
	// Origins, when not nil (--origin), traces the processes whose fd
	// groups a sample names, and names the code behind their growth.
	Origins Origins

	seq     int
	times   []time.Time // of the samples in the window, by seq % window
	scan    *model.Scan
	groups  map[hostKey]*groupBase // fd groups of the fd growers, when first listed
	cgroups map[string]*cgHist
	history map[hostKey]*hostHist
}

type hostKey struct {
	pid, ppid int
	comm      string
}

// hostHist is a process's counts over the window, as runs of samples with
// the same counts (most processes: one run, however long the window), and
// what the newest sample says of its limits.
type hostHist struct {
	runs[counts]
	fdLimit, nproc        proc.Limit
	uidTasks, uid         int
	hostTasks, hostPIDMax int
	// pidsLeft: what its cgroup's pids.max leaves (-1: unknown, or none);
	// known for the parents holding zombies, whose cgroup is read.
	pidsLeft int
	seq      int // the sample it was last seen in
}

type counts struct{ zombies, fds, tasks int32 }

// Next takes one host sample.
func (s *HostSampler) Next(ctx context.Context) (*HostSample, error) {
	if s.scan == nil {
		s.scan = s.Reader.NewScan()
		s.scan.Cgroups = true // the containers' sums
	}
	if s.Events != nil {
		s.scan.Due(s.Events.TakeTouched())
	}
	h, err := s.scan.Host(ctx, model.HostOptions{Counts: true, Parents: maxParentsRead})
	if err != nil {
		return nil, err
	}
	now := s.Reader.Now()
	s.seq++
	window := s.Window
	if window <= 0 {
		window = DefaultWindow
	}
	s.remember(h, window)
	// The time of each sample in the window.
	if len(s.times) != window {
		s.times = make([]time.Time, window)
	}
	s.times[s.seq%window] = now
	at := func(seq int) time.Time { return s.times[seq%window] }

	sample := &HostSample{Seq: s.seq, Time: now, Processes: h.Processes, Threads: h.Threads, Zombies: h.Zombies, ProcessesRead: h.Read}
	sample.Growing = s.growing(h, window, at)
	oldest := s.seq
	for _, hist := range s.history {
		oldest = min(oldest, hist.first)
	}
	sample.WindowSeconds = now.Sub(at(max(oldest, s.seq-window+1))).Seconds()
	top := s.Top
	if top <= 0 {
		top = 20
	}
	if len(sample.Growing) > top {
		sample.Growing = sample.Growing[:top]
	}
	s.nameGroups(sample)
	sample.Containers = s.containers(h, now, window, at)
	if len(sample.Containers) > top {
		sample.Containers = sample.Containers[:top]
	}
	return sample, nil
}

// remember adds each process's counts in reading h to its history, and
// forgets the processes gone (the map does not grow).
func (s *HostSampler) remember(h *model.Host, window int) {
	if s.history == nil {
		s.history = map[hostKey]*hostHist{}
	}
	uidTasks := map[int]int{}
	for _, u := range h.UIDs {
		uidTasks[u.UID] = u.Tasks
	}
	hostPIDMax := 0
	if h.Kernel != nil {
		hostPIDMax = h.Kernel.PIDMax
	}
	self := -1
	if s.Reader.FS.Live() {
		self = os.Getpid() // the watcher's own threads are not the host's news
	}
	// Every parent's zombies from the counts; the cgroup (and pids.max)
	// of the parents the reading enriched, those holding the most.
	zombies, pidsLeft := map[int]int{}, map[int]int{}
	for _, c := range h.Counts {
		if c.Zombie {
			zombies[c.PPID]++
		}
	}
	for _, p := range h.Parents {
		if c := p.Cgroup; c != nil && c.PidsMax != nil && c.PidsCurrent != nil {
			pidsLeft[p.PID] = *c.PidsMax - *c.PidsCurrent
		}
	}
	for _, c := range h.Counts {
		if c.PID == self || c.Zombie || c.FDs < 0 {
			continue
		}
		k := hostKey{c.PID, c.PPID, c.Comm}
		hh := s.history[k]
		if hh == nil {
			hh = &hostHist{runs: runs[counts]{first: s.seq}}
			s.history[k] = hh
		}
		z := zombies[c.PID]
		// zombies are tasks of the uid and pids on the host
		hh.add(s.seq, window, counts{zombies: int32(z), fds: int32(c.FDs), tasks: int32(max(c.Threads, 1) + z)})
		hh.fdLimit, hh.nproc, hh.uid, hh.uidTasks = c.FDSoftLimit, c.NprocSoftLimit, c.UID, uidTasks[c.UID]
		hh.hostTasks, hh.hostPIDMax, hh.seq = h.Threads, hostPIDMax, s.seq
		hh.pidsLeft = -1
		if left, ok := pidsLeft[c.PID]; ok {
			hh.pidsLeft = left
		}
	}
	for k, hh := range s.history {
		if hh.seq != s.seq {
			delete(s.history, k)
		}
	}
}

// growing lists the processes whose counts grow over the window, and the
// parents that reap late (with events), most urgent first.
func (s *HostSampler) growing(h *model.Host, window int, at func(int) time.Time) []Growing {
	users := map[int]string{}
	for _, u := range h.UIDs {
		users[u.UID] = u.User
	}
	out := []Growing{}
	for k, hist := range s.history {
		g, ok := growth(k, hist, s.seq, window, at)
		if s.Events != nil {
			if st := s.Events.Parent(k.pid); st.P99 != nil && *st.P99 >= slowReap {
				p99 := roundMs(st.P99.Seconds())
				if !ok {
					_, last := hist.ends()
					g, ok = Growing{PID: k.pid, Comm: k.comm, Zombies: int(last.zombies), FDs: int(last.fds), Tasks: int(last.tasks),
						Since: at(max(hist.first, s.seq-window+1))}, true
				}
				g.ReapLatencyP99 = &p99
			}
		}
		if ok {
			g.User = users[hist.uid]
			out = append(out, g)
		}
	}
	SortGrowing(out, "urgency")
	return out
}

// maxFDListed is how many fd growers a sample lists the fds of (the
// costly read: one readlink per fd), most urgent first.
const maxFDListed = 3

// nameGroups names, for the first fd growers, the groups of descriptors
// that grew since the watch first listed their fds.
func (s *HostSampler) nameGroups(sample *HostSample) {
	if s.groups == nil {
		s.groups = map[hostKey]*groupBase{}
	}
	listed := map[hostKey]bool{}
	for i := range sample.Growing {
		g := &sample.Growing[i]
		if g.FDsPerMin <= 0 || len(listed) == maxFDListed {
			continue
		}
		k := hostKey{pid: g.PID, comm: g.Comm}
		listed[k] = true
		p, err := s.Reader.FDList(g.PID)
		if err != nil {
			continue
		}
		groups := p.FDGroups
		if b := s.groups[k]; b == nil {
			s.groups[k] = newGroupBase(groups, sample.Time)
			if s.Origins != nil {
				s.Origins.Follow(g.PID) // refused: its groups go unnamed
			}
		} else {
			g.FDGroupsGrowing = b.growing(groups, sample.Time)
			if s.Origins != nil && len(g.FDGroupsGrowing) > 0 {
				s.Origins.Name(p, g.FDGroupsGrowing)
			}
		}
	}
	for k := range s.groups {
		if !listed[k] {
			delete(s.groups, k) // no longer growing: a later growth starts a new base
			if s.Origins != nil {
				s.Origins.Unfollow(k.pid)
			}
		}
	}
}

// Origins traces processes and names the code behind their growing fd
// groups.
type Origins interface {
	// Follow starts tracing pid, Unfollow ends it.
	Follow(pid int) error
	Unfollow(pid int)
	// Name sets the Origin of the growing groups of p (read with its fd
	// list) that were opened while it was traced.
	Name(p *model.Process, growing []GroupGrowth)
}

// maxParentsRead bounds the parents holding zombies whose cgroup, wait
// and diagnosis a sample reads (those holding the most): every parent's
// count comes from the pass itself.
const maxParentsRead = 100

// minHistory is how many samples of a process its growth needs.
const minHistory = 3

// slowReap is the exit-to-reap p99 from which a parent is listed as
// reaping late.
const slowReap = time.Second

// growth is a process's rates over its history, when something grows.
func growth(k hostKey, h *hostHist, seq, window int, at func(seq int) time.Time) (Growing, bool) {
	start, ok := h.window(seq, window)
	if !ok {
		return Growing{}, false // too new, or nothing moved: most processes, most samples
	}
	first, last := h.ends()
	secs := at(seq).Sub(at(start)).Seconds()
	if secs <= 0 {
		return Growing{}, false
	}
	perMin := func(a, b int32) float64 { return round1(float64(b-a) / secs * 60) }
	g := Growing{PID: k.pid, Comm: k.comm, Zombies: int(last.zombies), FDs: int(last.fds), Tasks: int(last.tasks),
		ZombiesPerMin: perMin(first.zombies, last.zombies), FDsPerMin: perMin(first.fds, last.fds), TasksPerMin: perMin(first.tasks, last.tasks)}
	if g.ZombiesPerMin <= 0 && g.FDsPerMin <= 0 && g.TasksPerMin <= 0 {
		return Growing{}, false
	}
	// The change point of the fastest-growing count.
	val := func(c counts) int32 { return c.fds }
	if g.TasksPerMin > g.FDsPerMin {
		val = func(c counts) int32 { return c.tasks }
	}
	g.Since = at(h.lowest(val))
	// The limit reached first at these rates.
	try := func(name string, left, perMin float64) {
		if perMin <= 0 || left < 0 {
			return
		}
		in := round1(left / (perMin / 60))
		if g.LimitInSeconds == nil || in < *g.LimitInSeconds {
			g.Limit, g.LimitInSeconds = name, &in
		}
	}
	if h.fdLimit != proc.Unlimited && h.fdLimit > 0 {
		try("RLIMIT_NOFILE", float64(h.fdLimit)-float64(last.fds), g.FDsPerMin)
	}
	if h.uid != 0 && h.nproc != proc.Unlimited && h.nproc > 0 {
		try("RLIMIT_NPROC", float64(h.nproc)-float64(h.uidTasks), g.TasksPerMin)
	}
	if h.hostPIDMax > 0 {
		try("kernel.pid_max", float64(h.hostPIDMax-h.hostTasks), g.TasksPerMin)
	}
	if h.pidsLeft >= 0 {
		try("pids.max", float64(h.pidsLeft), g.TasksPerMin)
	}
	return g, true
}

// SortGrowing orders the list by key: "urgency" (soonest to a limit, then
// the slowest reaper, then fastest), "zombies", "fds", "growth" (the
// fastest rate of the three), "latency" (exit-to-reap p99).
func SortGrowing(list []Growing, key string) {
	fastest := func(g Growing) float64 { return max(g.ZombiesPerMin, g.FDsPerMin, g.TasksPerMin) }
	slices.SortFunc(list, func(a, b Growing) int {
		switch key {
		case "zombies":
			return cmp.Or(b.Zombies-a.Zombies, cmp.Compare(b.ZombiesPerMin, a.ZombiesPerMin), a.PID-b.PID)
		case "fds":
			return cmp.Or(b.FDs-a.FDs, cmp.Compare(b.FDsPerMin, a.FDsPerMin), a.PID-b.PID)
		case "growth":
			return cmp.Or(cmp.Compare(fastest(b), fastest(a)), a.PID-b.PID)
		case "latency":
			return cmp.Or(cmp.Compare(latency(b), latency(a)), a.PID-b.PID)
		}
		return cmp.Or(soonest(a.LimitInSeconds, b.LimitInSeconds), cmp.Compare(latency(b), latency(a)), cmp.Compare(fastest(b), fastest(a)), a.PID-b.PID)
	})
}

// soonest orders times to a limit: the nearer first, none last.
func soonest(a, b *float64) int {
	switch {
	case a != nil && b == nil:
		return -1
	case a == nil && b != nil:
		return 1
	case a != nil:
		return cmp.Compare(*a, *b)
	}
	return 0
}

func latency(g Growing) float64 {
	if g.ReapLatencyP99 == nil {
		return 0
	}
	return *g.ReapLatencyP99
}

// RunHost samples the host at once and then at every trigger, handing
// each sample to emit, until ctx ends, the triggers close or count samples
// were taken (0: no bound).
func RunHost[T any](ctx context.Context, s *HostSampler, triggers <-chan T, count int, emit func(*HostSample) error) error {
	return drive(ctx, triggers, func() bool { return count <= 0 || s.seq < count }, func() error {
		sample, err := s.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		return emit(sample)
	})
}
