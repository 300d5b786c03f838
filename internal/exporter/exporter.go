// Package exporter serves zombiewatch's host scan as Prometheus metrics,
// with github.com/prometheus/client_golang: the parents holding zombies, the
// processes nearest their fd limit and the ones asked for, each uid's tasks
// against RLIMIT_NPROC, and the scrape's own cost and errors.
//
// Each scrape is one host reading of internal/model, so the numbers are the
// CLI's. Label cardinality is bounded: only parents that hold zombies (at
// most MaxParents), the Top fd users, the MaxUIDs uids nearest their
// RLIMIT_NPROC, the processes named by PIDs and
// Names, and the fixed sets of causes and sources. Label values from /proc
// are made valid UTF-8 (client_golang refuses a scrape holding one that is
// not), so a process cannot black out the exporter by its name.
package exporter

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/events"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Config chooses what is exported.
type Config struct {
	Reader     *model.Reader    // with the sources the exporter reports on
	PIDs       []int            // processes to export whatever their rank
	Names      []*regexp.Regexp // comm patterns of processes to export likewise
	Top        int              // fd users exported by rank
	MaxParents int              // parents holding zombies exported, most first
	MaxUIDs    int              // uids exported, nearest their RLIMIT_NPROC first (0: no bound)
	// Events, when not nil, gives every exit and reap on the host: the
	// exit-to-reap histogram and exit counts of the busiest parents.
	Events *events.Source
}

var (
	labelsProc = []string{"pid", "comm"}
	labelsUID  = []string{"uid", "user"}

	descZombieChildren = prometheus.NewDesc("zombiewatch_zombie_children",
		"Zombie children a parent holds, by parent (only parents holding zombies).", labelsProc, nil)
	descOldestZombie = prometheus.NewDesc("zombiewatch_oldest_zombie_age_seconds",
		"Time since the oldest zombie child a parent holds started (as ps's ELAPSED).", labelsProc, nil)
	descOldestExit = prometheus.NewDesc("zombiewatch_oldest_zombie_exit_age_seconds",
		"Time since the longest-dead zombie child a parent holds exited, from the scheduler's clock; absent where the kernel does not tell it.", labelsProc, nil)
	descAdopted = prometheus.NewDesc("zombiewatch_adopted_zombie_children",
		"Zombie children that started before their parent: orphans it adopted (an init or subreaper).", labelsProc, nil)
	descZombies   = prometheus.NewDesc("zombiewatch_zombies", "Zombie processes on the host.", nil, nil)
	descProcesses = prometheus.NewDesc("zombiewatch_processes", "Processes on the host.", nil, nil)
	descThreads   = prometheus.NewDesc("zombiewatch_threads", "Threads on the host.", nil, nil)
	descOpenFDs   = prometheus.NewDesc("zombiewatch_open_fds",
		"Open file descriptors, for the processes nearest their limit and those asked for.", labelsProc, nil)
	descFDSoft = prometheus.NewDesc("zombiewatch_fd_soft_limit",
		"Soft RLIMIT_NOFILE of the same processes (absent when unlimited).", labelsProc, nil)
	descFDKind = prometheus.NewDesc("zombiewatch_fds_by_kind",
		"Open file descriptors by kind (socket, pipe, file, device, anon_inode:*, other).", []string{"pid", "comm", "kind"}, nil)
	descCloseWait = prometheus.NewDesc("zombiewatch_close_wait_sockets",
		"TCP sockets in CLOSE_WAIT: the peer closed and the process never did.", labelsProc, nil)
	descUIDTasks = prometheus.NewDesc("zombiewatch_uid_tasks",
		"Processes and threads of a uid, zombies included: what RLIMIT_NPROC counts.", labelsUID, nil)
	descUIDZombies = prometheus.NewDesc("zombiewatch_uid_zombies", "Zombie processes of a uid.", labelsUID, nil)
	descUIDNproc   = prometheus.NewDesc("zombiewatch_uid_nproc_soft_limit",
		"Lowest soft RLIMIT_NPROC among a uid's processes (absent when unlimited; not enforced for root).", labelsUID, nil)
	descWatchedUp = prometheus.NewDesc("zombiewatch_watched_process_up",
		"1 if a process asked for with --pid exists, 0 if not.", []string{"pid"}, nil)
	descDuration = prometheus.NewDesc("zombiewatch_scrape_duration_seconds", "How long the scan of /proc took.", nil, nil)
	descByCause  = prometheus.NewDesc("zombiewatch_zombie_children_by_cause",
		"Zombie children of the exported parents, by the diagnosis's cause (a fixed set: none, no_reaper, coalesced_wait, init_not_reaping, ...).", []string{"cause"}, nil)
	descSourceOK = prometheus.NewDesc("zombiewatch_source_success",
		"1 if the source (tcp, server, ...) answered for every listed process in the last scrape, 0 if it failed for one.", []string{"source"}, nil)
	descSourceDuration = prometheus.NewDesc("zombiewatch_source_duration_seconds",
		"Time the source took over the last scrape.", []string{"source"}, nil)

	labelsCgroup     = []string{"cgroup", "container_id", "pod_uid"}
	descCgroupZombie = prometheus.NewDesc("zombiewatch_cgroup_zombies",
		"Zombies held by the exported parents inside a cgroup (container, pod, unit).", labelsCgroup, nil)
	descCgroupPids = prometheus.NewDesc("zombiewatch_cgroup_pids",
		"Tasks in a cgroup with a pids.max (pids.current): zombies count.", labelsCgroup, nil)
	descCgroupPidsMax = prometheus.NewDesc("zombiewatch_cgroup_pids_max",
		"The cgroup's pids.max: forks beyond it fail with EAGAIN.", labelsCgroup, nil)
	descCgroupRefused = prometheus.NewDesc("zombiewatch_cgroup_pids_refused_total",
		"Forks the cgroup's pids.max refused (pids.events max).", labelsCgroup, nil)
	descKernelPidMax     = prometheus.NewDesc("zombiewatch_kernel_pid_max", "kernel.pid_max.", nil, nil)
	descKernelPids       = prometheus.NewDesc("zombiewatch_kernel_pids", "Tasks (processes and threads, zombies included) on the host: each holds a pid.", nil, nil)
	descKernelThreadsMax = prometheus.NewDesc("zombiewatch_kernel_threads_max", "kernel.threads-max.", nil, nil)
	descKernelFileNr     = prometheus.NewDesc("zombiewatch_kernel_file_nr", "Allocated file handles (fs/file-nr).", nil, nil)
	descKernelFileMax    = prometheus.NewDesc("zombiewatch_kernel_file_max", "fs.file-max.", nil, nil)

	descReapLatency = prometheus.NewDesc("zombiewatch_reap_latency_seconds",
		"Time from a child's exit to its parent's wait (from the kernel's process events), by the parent's comm: the busiest parents and those with children pending.", []string{"comm"}, nil)
	descChildExits = prometheus.NewDesc("zombiewatch_child_exits_total",
		"Children that exited, by the parent's comm (the same parents).", []string{"comm"}, nil)
	descEventsLost = prometheus.NewDesc("zombiewatch_events_lost_total",
		"Times the kernel dropped process events (the socket overflowed): the counts above are then lower bounds.", nil, nil)
	descEventsUp = prometheus.NewDesc("zombiewatch_events_up",
		"1 if process events are followed, 0 if only polling (another pid namespace than the host's).", nil, nil)
)

// maxReapParents bounds the parents in the reap-latency series (beside
// those with children pending).
const maxReapParents = 20

// Label makes a label value of a string from /proc: invalid UTF-8 bytes
// become '?', as ps shows them.
func Label(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			b.WriteByte('?')
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Collector is the prometheus.Collector for one host.
type Collector struct {
	cfg    Config
	errors *prometheus.CounterVec
	mu     sync.Mutex  // one scan at a time
	scan   *model.Scan // kept from scrape to scrape: each reads what changed

	scrapeMu sync.Mutex      // one scrape at a time, with its context
	ctx      context.Context // the current scrape's request: a scan stops when its caller leaves
}

// New makes the collector. Register it with a registry; it sends its own
// error counter, so the count is part of the scrape that increments it.
func New(cfg Config) *Collector {
	c := &Collector{
		cfg: cfg,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zombiewatch_scrape_errors_total",
			Help: "Reads that failed during scrapes, by kind: permission (a refused read; fix: run as root or with CAP_SYS_PTRACE), no_process (a --pid that is gone), scan (the scan failed), abandoned (the scraper left: its scan was stopped, or never started while it waited its turn).",
		}, []string{"kind"}),
	}
	for _, kind := range []string{"permission", "no_process", "scan", "abandoned"} {
		c.errors.WithLabelValues(kind) // present at 0 from the first scrape
	}
	return c
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descZombieChildren, descOldestZombie, descOldestExit, descAdopted, descZombies, descProcesses,
		descThreads, descOpenFDs, descFDSoft, descFDKind, descCloseWait, descUIDTasks, descUIDZombies, descUIDNproc,
		descWatchedUp, descDuration, descByCause, descSourceOK, descSourceDuration,
		descCgroupZombie, descCgroupPids, descCgroupPidsMax, descCgroupRefused,
		descKernelPidMax, descKernelPids, descKernelThreadsMax, descKernelFileNr, descKernelFileMax,
		descReapLatency, descChildExits, descEventsLost, descEventsUp} {
		ch <- d
	}
	c.errors.Describe(ch)
}

// Scrape runs serve (a promhttp handler) for one request, one scrape at a
// time: the scan it makes stops when ctx (the request's) ends.
func (c *Collector) Scrape(ctx context.Context, serve func()) {
	c.scrapeMu.Lock()
	defer c.scrapeMu.Unlock()
	if ctx.Err() != nil {
		c.errors.WithLabelValues("abandoned").Inc() // left while waiting its turn: no scan made for nobody
		return
	}
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.ctx = nil
		c.mu.Unlock()
	}()
	serve()
}

// Collect scans /proc once and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.errors.Collect(ch)
	start := time.Now()
	ctx := c.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	if c.scan == nil {
		c.scan = c.cfg.Reader.NewScan()
	}
	if c.cfg.Events != nil {
		c.scan.Due(c.cfg.Events.TakeTouched())
	}
	h, err := c.scan.Host(ctx, model.HostOptions{Parents: c.cfg.MaxParents, FDUsers: c.cfg.Top, UIDs: c.cfg.MaxUIDs, FDTypes: true, Include: c.include})
	if err != nil {
		kind := "scan"
		if ctx.Err() != nil {
			kind = "abandoned" // the scraper left: the scan stopped rather than burn a core for nobody
		}
		c.errors.WithLabelValues(kind).Inc()
		gauge(ch, descDuration, time.Since(start).Seconds())
		return
	}
	gauge(ch, descZombies, float64(h.Zombies))
	gauge(ch, descProcesses, float64(h.Processes))
	gauge(ch, descThreads, float64(h.Threads))
	collectParents(ch, h.Parents)
	collectCgroups(ch, h.Cgroups)
	collectKernel(ch, h.Kernel)
	c.collectEvents(ch)
	collectSources(ch, h.Sources)
	c.collectWatched(ch, collectFDUsers(ch, h.FDUsers))
	collectUIDs(ch, h.UIDs)
	if n := len(h.Denied); n > 0 {
		c.errors.WithLabelValues("permission").Add(float64(n))
	}
	gauge(ch, descDuration, time.Since(start).Seconds())
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// collectParents: the parents holding the most zombies, and all zombies
// by cause.
func collectParents(ch chan<- prometheus.Metric, parents []*model.Process) {
	byCause := map[diagnose.Cause]int{}
	for _, p := range parents {
		pid, comm := strconv.Itoa(p.PID), Label(p.Comm)
		gauge(ch, descZombieChildren, float64(p.Zombies), pid, comm)
		gauge(ch, descOldestZombie, p.OldestAge().Seconds(), pid, comm)
		if rp := p.Reaping; rp != nil && rp.OldestExitSeconds != nil {
			gauge(ch, descOldestExit, *rp.OldestExitSeconds, pid, comm)
		}
		gauge(ch, descAdopted, float64(p.AdoptedZombies), pid, comm)
		byCause[p.Cause] += p.Zombies
	}
	for _, cause := range diagnose.Causes {
		if n, ok := byCause[cause]; ok {
			gauge(ch, descByCause, float64(n), string(cause))
		}
	}
}

// collectCgroups: the host view keeps the cgroups holding zombies, at half
// their pids.max or more, with refused forks, and the top 10: bounded.
func collectCgroups(ch chan<- prometheus.Metric, cgroups []model.CgroupUse) {
	for _, cg := range cgroups {
		labels := []string{Label(cg.Path), cg.ContainerID, cg.PodUID}
		gauge(ch, descCgroupZombie, float64(cg.Zombies), labels...)
		if cg.PidsCurrent != nil && cg.PidsMax != nil {
			gauge(ch, descCgroupPids, float64(*cg.PidsCurrent), labels...)
			gauge(ch, descCgroupPidsMax, float64(*cg.PidsMax), labels...)
		}
		if cg.PidsRefused != nil {
			ch <- prometheus.MustNewConstMetric(descCgroupRefused, prometheus.CounterValue, float64(*cg.PidsRefused), labels...)
		}
	}
}

// collectKernel: the host's tasks and file handles against the kernel's
// limits; nothing where they were not read.
func collectKernel(ch chan<- prometheus.Metric, k *model.Kernel) {
	if k == nil {
		return
	}
	gauge(ch, descKernelPidMax, float64(k.PIDMax))
	gauge(ch, descKernelPids, float64(k.Pids))
	gauge(ch, descKernelThreadsMax, float64(k.ThreadsMax))
	gauge(ch, descKernelFileNr, float64(k.FileNr))
	gauge(ch, descKernelFileMax, float64(k.FileMax))
}

// collectSources: each source's success and duration, as node_exporter
// reports its collectors.
func collectSources(ch chan<- prometheus.Metric, sources []model.SourceResult) {
	for _, s := range sources {
		ok := 1.0
		if s.Err != nil {
			ok = 0
		}
		gauge(ch, descSourceOK, ok, s.Name)
		gauge(ch, descSourceDuration, s.Duration.Seconds(), s.Name)
	}
}

// collectFDUsers: the processes nearest their fd limit and those asked
// for, with their fds by kind and CLOSE_WAIT; it returns the pids seen.
func collectFDUsers(ch chan<- prometheus.Metric, users []*model.Process) map[int]bool {
	seen := map[int]bool{}
	for _, u := range users {
		pid, comm := strconv.Itoa(u.PID), Label(u.Comm)
		seen[u.PID] = true
		gauge(ch, descOpenFDs, float64(*u.FDs), pid, comm)
		if u.FDSoftLimit != proc.Unlimited {
			gauge(ch, descFDSoft, float64(u.FDSoftLimit), pid, comm)
		}
		for _, k := range slices.Sorted(maps.Keys(u.FDTypes)) {
			gauge(ch, descFDKind, float64(u.FDTypes[k]), pid, comm, k)
		}
		if u.TCPStates != nil { // null when the kinds or the tables were not read: no series, never a 0
			gauge(ch, descCloseWait, float64(u.TCPStates["CLOSE_WAIT"]), pid, comm)
		}
	}
	return seen
}

// collectUIDs: each uid's tasks and zombies against its RLIMIT_NPROC.
func collectUIDs(ch chan<- prometheus.Metric, uids []model.UIDUsage) {
	for _, u := range uids {
		uid := strconv.Itoa(u.UID)
		user := Label(u.User)
		gauge(ch, descUIDTasks, float64(u.Tasks), uid, user)
		gauge(ch, descUIDZombies, float64(u.Zombies), uid, user)
		if u.NprocSoftLimit != proc.Unlimited {
			gauge(ch, descUIDNproc, float64(u.NprocSoftLimit), uid, user)
		}
	}
}

// collectWatched: whether each --pid was found in this scrape (seen).
func (c *Collector) collectWatched(ch chan<- prometheus.Metric, seen map[int]bool) {
	for _, pid := range slices.Compact(slices.Sorted(slices.Values(c.cfg.PIDs))) {
		v := 0.0
		if seen[pid] {
			v = 1
		} else {
			c.errors.WithLabelValues("no_process").Inc()
		}
		gauge(ch, descWatchedUp, v, strconv.Itoa(pid))
	}
}

func (c *Collector) include(pid int, comm string) bool {
	if slices.Contains(c.cfg.PIDs, pid) {
		return true
	}
	for _, re := range c.cfg.Names {
		if re.MatchString(comm) {
			return true
		}
	}
	return false
}

// Registry holds the collector and its error counter and, with self, the
// exporter's own process and Go runtime metrics (its fds among them). A
// textfile for node_exporter leaves self out: node_exporter has its own.
func Registry(c *Collector, self bool) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cols := []prometheus.Collector{c}
	if self {
		cols = append(cols, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	}
	for _, col := range cols {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
	}
	return reg, nil
}

// collectEvents sends the exit-to-reap histograms, aggregated by the
// parent's comm over the busiest parents and those with children pending.
func (c *Collector) collectEvents(ch chan<- prometheus.Metric) {
	up := 0.0
	if c.cfg.Events != nil {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descEventsUp, prometheus.GaugeValue, up)
	src := c.cfg.Events
	if src == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descEventsLost, prometheus.CounterValue, float64(src.Lost()))
	type parent struct {
		pid int
		st  events.Stats
	}
	var all []parent
	for _, pid := range src.Parents() {
		all = append(all, parent{pid, src.Parent(pid)})
	}
	slices.SortFunc(all, func(a, b parent) int { return cmp.Compare(b.st.Exits, a.st.Exits) })
	type agg struct {
		exits   int64
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	byComm := map[string]*agg{}
	for i, p := range all {
		if i >= maxReapParents && p.st.Pending == 0 {
			continue
		}
		st, _, err := c.cfg.Reader.FS.ReadStat(p.pid, nil)
		if err != nil || p.st.Start == 0 || st.StartTime != p.st.Start {
			continue // the parent is gone, or its pid now names another process: its series are not that one's
		}
		comm := Label(st.Comm)
		a := byComm[comm]
		if a == nil {
			a = &agg{buckets: map[float64]uint64{}}
			byComm[comm] = a
		}
		a.exits += p.st.Exits
		a.count += uint64(p.st.Reaped)
		a.sum += p.st.Sum
		for i, b := range events.Buckets {
			a.buckets[b] += p.st.Buckets[i]
		}
	}
	for comm, a := range byComm {
		ch <- prometheus.MustNewConstMetric(descChildExits, prometheus.CounterValue, float64(a.exits), comm)
		ch <- prometheus.MustNewConstHistogram(descReapLatency, a.count, a.sum, a.buckets, comm)
	}
}
