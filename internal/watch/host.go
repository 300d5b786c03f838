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
	Growing   []Growing `json:"growing"`
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

	seq     int
	history map[hostKey][]hostPoint
}

type hostKey struct {
	pid, ppid int
	comm      string
}

type hostPoint struct {
	t                     time.Time
	zombies, fds, tasks   int
	fdLimit, nproc        proc.Limit
	uidTasks, uid         int
	hostTasks, hostPIDMax int
}

// Next takes one host sample.
func (s *HostSampler) Next(ctx context.Context) (*HostSample, error) {
	h, err := s.Reader.Host(ctx, model.HostOptions{})
	if err != nil {
		return nil, err
	}
	now := s.Reader.Now()
	s.seq++
	window := s.Window
	if window <= 0 {
		window = DefaultWindow
	}
	if s.history == nil {
		s.history = map[hostKey][]hostPoint{}
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
	points := map[hostKey]hostPoint{}
	for _, p := range h.FDUsers {
		if p.PID == self {
			continue
		}
		k := hostKey{p.PID, p.PPID, p.Comm}
		points[k] = hostPoint{t: now, fds: *p.FDs, tasks: max(p.Threads, 1), fdLimit: p.FDSoftLimit, nproc: p.NprocSoftLimit,
			uid: p.UID, uidTasks: uidTasks[p.UID], hostTasks: h.Threads, hostPIDMax: hostPIDMax}
	}
	for _, p := range h.Parents {
		k := hostKey{p.PID, p.PPID, p.Comm}
		pt := points[k]
		pt.t, pt.zombies = now, p.Zombies
		pt.tasks += p.Zombies // zombies are tasks of the uid and pids on the host
		points[k] = pt
	}
	next := make(map[hostKey][]hostPoint, len(points))
	for k, pt := range points {
		hist := append(s.history[k], pt)
		if len(hist) > window {
			hist = hist[len(hist)-window:]
		}
		next[k] = hist
	}
	s.history = next // processes gone are forgotten: the map does not grow

	sample := &HostSample{Seq: s.seq, Time: now, Processes: h.Processes, Threads: h.Threads, Zombies: h.Zombies, Growing: []Growing{}}
	users := map[int]string{}
	for _, u := range h.UIDs {
		users[u.UID] = u.User
	}
	for k, hist := range s.history {
		g, ok := growth(k, hist)
		if s.Events != nil {
			if st := s.Events.Parent(k.pid); st.P99 != nil && *st.P99 >= slowReap {
				p99 := roundMs(st.P99.Seconds())
				if !ok {
					last := hist[len(hist)-1]
					g, ok = Growing{PID: k.pid, Comm: k.comm, Zombies: last.zombies, FDs: last.fds, Tasks: last.tasks, Since: hist[0].t}, true
				}
				g.ReapLatencyP99 = &p99
			}
		}
		if ok {
			g.User = users[hist[len(hist)-1].uid]
			sample.Growing = append(sample.Growing, g)
		}
	}
	for _, hist := range s.history {
		if len(hist) > 1 {
			sample.WindowSeconds = max(sample.WindowSeconds, hist[len(hist)-1].t.Sub(hist[0].t).Seconds())
		}
	}
	SortGrowing(sample.Growing, "urgency")
	top := s.Top
	if top <= 0 {
		top = 20
	}
	if len(sample.Growing) > top {
		sample.Growing = sample.Growing[:top]
	}
	return sample, nil
}

// minHistory is how many samples of a process its growth needs.
const minHistory = 3

// slowReap is the exit-to-reap p99 from which a parent is listed as
// reaping late.
const slowReap = time.Second

// growth is a process's rates over its history, when something grows.
func growth(k hostKey, hist []hostPoint) (Growing, bool) {
	// Three samples at least: a process just started (its threads coming
	// up) is not a leak.
	if len(hist) < minHistory {
		return Growing{}, false
	}
	first, last := hist[0], hist[len(hist)-1]
	secs := last.t.Sub(first.t).Seconds()
	if secs <= 0 {
		return Growing{}, false
	}
	perMin := func(a, b int) float64 { return round1(float64(b-a) / secs * 60) }
	g := Growing{PID: k.pid, Comm: k.comm, Zombies: last.zombies, FDs: last.fds, Tasks: last.tasks,
		ZombiesPerMin: perMin(first.zombies, last.zombies), FDsPerMin: perMin(first.fds, last.fds), TasksPerMin: perMin(first.tasks, last.tasks)}
	if g.ZombiesPerMin <= 0 && g.FDsPerMin <= 0 && g.TasksPerMin <= 0 {
		return Growing{}, false
	}
	// The change point of the fastest-growing count.
	val := func(p hostPoint) int { return p.fds }
	if g.TasksPerMin > g.FDsPerMin {
		val = func(p hostPoint) int { return p.tasks }
	}
	low := 0
	for i, p := range hist {
		if val(p) <= val(hist[low]) {
			low = i
		}
	}
	g.Since = hist[low].t
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
	if last.fdLimit != proc.Unlimited && last.fdLimit > 0 {
		try("RLIMIT_NOFILE", float64(last.fdLimit)-float64(last.fds), g.FDsPerMin)
	}
	if last.uid != 0 && last.nproc != proc.Unlimited && last.nproc > 0 {
		try("RLIMIT_NPROC", float64(last.nproc)-float64(last.uidTasks), g.TasksPerMin)
	}
	if last.hostPIDMax > 0 {
		try("kernel.pid_max", float64(last.hostPIDMax-last.hostTasks), g.TasksPerMin)
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
		switch {
		case a.LimitInSeconds != nil && b.LimitInSeconds == nil:
			return -1
		case a.LimitInSeconds == nil && b.LimitInSeconds != nil:
			return 1
		case a.LimitInSeconds != nil && *a.LimitInSeconds != *b.LimitInSeconds:
			return cmp.Compare(*a.LimitInSeconds, *b.LimitInSeconds)
		}
		return cmp.Or(cmp.Compare(latency(b), latency(a)), cmp.Compare(fastest(b), fastest(a)), a.PID-b.PID)
	})
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
