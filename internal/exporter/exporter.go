// Package exporter serves zombiewatch's host scan as Prometheus metrics,
// with github.com/prometheus/client_golang: the parents holding zombies, the
// processes nearest their fd limit and the ones asked for, each uid's tasks
// against RLIMIT_NPROC, and the scrape's own cost and errors.
//
// Each scrape is one proc.Scan, so the numbers are the CLI's. Label
// cardinality is bounded: only parents that hold zombies (at most
// MaxParents), the Top fd users, and the processes named by PIDs and Names.
package exporter

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Config chooses what is exported.
type Config struct {
	FS         *proc.FS
	PIDs       []int            // processes to export whatever their rank
	Names      []*regexp.Regexp // comm patterns of processes to export likewise
	Top        int              // fd users exported by rank
	MaxParents int              // parents holding zombies exported, most first
}

var (
	labelsProc = []string{"pid", "comm"}
	labelsUID  = []string{"uid", "user"}

	descZombieChildren = prometheus.NewDesc("zombiewatch_zombie_children",
		"Zombie children a parent holds, by parent (only parents holding zombies).", labelsProc, nil)
	descOldestZombie = prometheus.NewDesc("zombiewatch_oldest_zombie_age_seconds",
		"Age of the oldest zombie child a parent holds.", labelsProc, nil)
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
)

// Collector is the prometheus.Collector for one host.
type Collector struct {
	cfg    Config
	errors *prometheus.CounterVec
	mu     sync.Mutex // one scan at a time
}

// New makes the collector. Register it, and Errors, with a registry.
func New(cfg Config) *Collector {
	return &Collector{
		cfg: cfg,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zombiewatch_scrape_errors_total",
			Help: "Reads that failed during scrapes, by kind: permission (a refused read; fix: run as root or with CAP_SYS_PTRACE), no_process (a --pid that is gone), scan (the scan failed).",
		}, []string{"kind"}),
	}
}

// Errors is the error counter, to be registered beside the collector.
func (c *Collector) Errors() *prometheus.CounterVec { return c.errors }

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descZombieChildren, descOldestZombie, descAdopted, descZombies, descProcesses,
		descThreads, descOpenFDs, descFDSoft, descFDKind, descCloseWait, descUIDTasks, descUIDZombies, descUIDNproc,
		descWatchedUp, descDuration} {
		ch <- d
	}
}

// Collect scans /proc once and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	watched := map[int]bool{}
	for _, pid := range c.cfg.PIDs {
		watched[pid] = false
	}
	h, err := c.cfg.FS.Scan(proc.ScanOptions{Parents: c.cfg.MaxParents, FDUsers: c.cfg.Top, FDTypes: true, Include: c.include})
	if err != nil {
		c.errors.WithLabelValues("scan").Inc()
		ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, time.Since(start).Seconds())
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descZombies, float64(h.Zombies))
	gauge(descProcesses, float64(h.Processes))
	gauge(descThreads, float64(h.Threads))

	for _, p := range h.Parents {
		pid := strconv.Itoa(p.PID)
		gauge(descZombieChildren, float64(p.Zombies), pid, p.Comm)
		gauge(descOldestZombie, p.OldestAgeSeconds, pid, p.Comm)
		gauge(descAdopted, float64(p.AdoptedZombies), pid, p.Comm)
	}
	for _, u := range h.FDUsers {
		pid := strconv.Itoa(u.PID)
		if _, ok := watched[u.PID]; ok {
			watched[u.PID] = true
		}
		gauge(descOpenFDs, float64(u.FDs), pid, u.Comm)
		if u.FDSoftLimit != proc.Unlimited {
			gauge(descFDSoft, float64(u.FDSoftLimit), pid, u.Comm)
		}
		kinds := slices.Sorted(func(yield func(string) bool) {
			for k := range u.FDTypes {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range kinds {
			gauge(descFDKind, float64(u.FDTypes[k]), pid, u.Comm, k)
		}
		if u.FDTypes != nil {
			gauge(descCloseWait, float64(u.TCPStates["CLOSE_WAIT"]), pid, u.Comm)
		}
	}
	for _, u := range h.UIDs {
		uid := strconv.Itoa(u.UID)
		gauge(descUIDTasks, float64(u.Tasks), uid, u.User)
		gauge(descUIDZombies, float64(u.Zombies), uid, u.User)
		if u.NprocSoftLimit != proc.Unlimited {
			gauge(descUIDNproc, float64(u.NprocSoftLimit), uid, u.User)
		}
	}
	for pid, up := range watched {
		v := 0.0
		if up {
			v = 1
		} else {
			c.errors.WithLabelValues("no_process").Inc()
		}
		gauge(descWatchedUp, v, strconv.Itoa(pid))
	}
	if n := len(h.Denied); n > 0 {
		c.errors.WithLabelValues("permission").Add(float64(n))
	}
	gauge(descDuration, time.Since(start).Seconds())
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
	cols := []prometheus.Collector{c, c.Errors()}
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
