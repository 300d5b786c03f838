// Package model builds zombiewatch's one model of a process from the
// kernel's files (internal/proc): identity, children and zombies,
// descriptors, limits and SIGCHLD disposition, then what optional sources
// add (TCP states, the bundled server's switches, the cgroup). The same
// per-process reads serve --pid, the host scan, the watcher and the
// exporter, so each fact is read, counted and worded in one place. Whether
// a parent reaps is judged over time (its zombies' exit ages, and an
// observation when they are young); the diagnosis (internal/diagnose)
// takes its evidence from here.
//
// A Process's JSON form is zombiewatch's --json output; docs/usage.md
// documents the keys (checked by cmd/zombiewatch TestDocsJSONKeys).
package model

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// ErrNoProcess reports that the target pid does not exist (or exited while
// it was being read). Test for it with errors.Is.
var ErrNoProcess = errors.New("no such process")

// ErrPIDReused reports that the pid was taken by another process while it
// was being read or watched: its start time changed.
var ErrPIDReused = errors.New("pid reused by another process")

// Process is one reading of one process.
type Process struct {
	PID     int      `json:"pid"`
	PPID    int      `json:"ppid"`
	Comm    string   `json:"comm"`
	Cmdline []string `json:"cmdline"`
	State   string   `json:"state"`
	// Exit is how the process ended, when it is itself a zombie waiting
	// for its parent ("exit 0", "killed by SIGKILL").
	Exit    string `json:"exit,omitempty"`
	Threads int    `json:"threads"`
	// ThreadID: the pid asked for was this thread of the process (a tid
	// from top -H, htop or ps -L); the reading is of its process.
	ThreadID int `json:"thread_id,omitempty"`
	// KernelThread: a kernel thread, with no fd table, no command line
	// and no user limits.
	KernelThread bool      `json:"kernel_thread,omitempty"`
	UID          int       `json:"uid"`
	User         string    `json:"user"`
	StartTime    time.Time `json:"start_time"`
	// NamespaceInit: pid 1 of its pid namespace (a container's PID 1, or
	// the host's). Every orphan in the namespace is reparented to it, and
	// only it can reap them.
	NamespaceInit bool `json:"namespace_init"`
	// HostInit: the PID 1 of the host's own (initial) pid namespace, not a
	// container's; null when its namespace could not be read.
	HostInit *bool `json:"host_init,omitempty"`
	// WaitingInWait: it sleeps in the kernel's do_wait (wait4/waitid) right
	// now (from wchan); null when not read (it holds no zombies) or refused.
	WaitingInWait *bool `json:"waiting_in_wait,omitempty"`

	Children int `json:"children"` // direct children, zombies included
	Zombies  int `json:"zombies"`  // direct children in state Z
	// AdoptedZombies: direct zombie children that started before this
	// process did, so it cannot have forked them: orphans it adopted.
	AdoptedZombies int `json:"adopted_zombies"`
	// YoungZombies: direct zombie children younger than --min-age, left
	// out of Zombies and the list.
	YoungZombies      int      `json:"young_zombies,omitempty"`
	DescendantZombies int      `json:"descendant_zombies"` // zombies anywhere below, direct ones included
	ZombieList        []Zombie `json:"zombie_list"`        // every zombie below, oldest first

	// FDs: open descriptors. Where the fd directory is listed (fd kinds,
	// the default) it is the listing, as ls and lsof count; otherwise the
	// O(1) count of allocated slots. Null when it may not be read.
	FDs *int `json:"fds"`
	// FDSlotsReserved: descriptor slots reserved by threads blocked in
	// accept, not listed but counted toward EMFILE (known when listed).
	FDSlotsReserved int            `json:"fd_slots_reserved,omitempty"`
	FDTypes         map[string]int `json:"fd_types"` // null unless asked for
	// FDList: every descriptor as lsof lists it, and FDGroups: them grouped
	// by what they point at, largest first (with Options.FDList).
	FDList   []FDEntry `json:"fd_list,omitempty"`
	FDGroups []FDGroup `json:"fd_groups,omitempty"`
	// TCPStates counts the TCP sockets among the fds by state
	// ("CLOSE_WAIT": 398); null unless fd types were asked for.
	TCPStates map[string]int `json:"tcp_states"`

	FDSoftLimit    proc.Limit `json:"fd_soft_limit"`
	FDHardLimit    proc.Limit `json:"fd_hard_limit"`
	NprocSoftLimit proc.Limit `json:"nproc_soft_limit"`
	NprocHardLimit proc.Limit `json:"nproc_hard_limit"`
	// UIDProcesses: processes and threads whose real uid is UID, zombies
	// included: what RLIMIT_NPROC counts. Null for uid 0, for which the
	// kernel does not enforce the limit: counting means reading every
	// process's status, a cost that grows with the host.
	UIDProcesses *int `json:"uid_processes"`

	Sigchld        proc.Disposition `json:"sigchld"`
	SigchldBlocked bool             `json:"sigchld_blocked"`
	SigchldPending bool             `json:"sigchld_pending"`

	// Denied lists the reads the kernel refused (another user's fd
	// directory), each with its fix; what they would have filled is null.
	Denied []string `json:"denied,omitempty"`
	// Unread lists other reads that failed (a source whose file did not
	// parse), each named; what they would have filled is null.
	Unread []string `json:"unread,omitempty"`

	// Cgroup is what the process's cgroup says (unit, container, pod) and
	// the pids limit its forks meet first, from the "cgroup" source.
	Cgroup *Cgroup `json:"cgroup,omitempty"`
	// Kernel: the host's task count against kernel.pid_max and
	// threads-max (zombies count against both).
	Kernel *KernelTasks `json:"kernel,omitempty"`
	// Limits: every limit that can stop this process, nearest first (the
	// first binds first); only those known.
	Limits []LimitUse `json:"limits"`

	// Reaping is the time evidence of whether it reaps its zombies: their
	// exit ages, and what an observation saw; nil when it holds none.
	Reaping *Reaping `json:"reaping,omitempty"`

	// Server holds the settings of a bundled server (cmd/server), from the
	// "server" source; nil for any other process.
	Server *Server `json:"server,omitempty"`
	// FDRatio is fds over the soft RLIMIT_NOFILE (0 if unknown or unlimited).
	FDRatio float64 `json:"fd_ratio"`
	// NprocRatio is uid_processes over the soft RLIMIT_NPROC.
	NprocRatio float64        `json:"nproc_ratio"`
	Cause      diagnose.Cause `json:"cause"`
	Diagnosis  string         `json:"diagnosis"`

	startTicks uint64            // stat's start time, to tell pid reuse
	nestedInit bool              // PID 1 of a pid namespace nested in the reader's (NSpid has more than one field)
	sockets    map[uint64]string // socket inodes among the fds (and the fd holding each), for the TCP source
}

// Zombie is one child in state Z, as wait will see it.
type Zombie struct {
	PID  int    `json:"pid"`
	PPID int    `json:"ppid"`
	Comm string `json:"comm"`
	// ExitCode is what a shell's $? would say: the exit status, or 128+N
	// when signal N killed it. Exit says it in words.
	ExitCode   int    `json:"exit_code"`
	Exit       string `json:"exit"`
	WaitStatus int    `json:"wait_status"` // stat field 52, raw
	// AgeSeconds is the time since the child *started*; ExitAgeSeconds
	// the time since it exited, from the scheduler's clock (ExitAgeFrom
	// "sched"), null where the kernel does not tell it.
	AgeSeconds     float64  `json:"age_seconds"`
	ExitAgeSeconds *float64 `json:"exit_age_seconds"`
	ExitAgeFrom    string   `json:"exit_age_from,omitempty"`
	Adopted        bool     `json:"adopted"`
	UID            *int     `json:"uid,omitempty"` // only with Options.ZombieOwners
	User           string   `json:"user,omitempty"`

	start time.Time
	raw   proc.Stat // as read, for a ZombieCache
	// exec: its se.exec_start (when it exited, on the runqueue clock);
	// hasExec false where unknown.
	exec    time.Duration
	hasExec bool
}

// Server is the bundled server's switches and counters, as its control
// channel reports them (validated there: a reply is hostile input).
type Server = control.Status

// Cgroup is a process's cgroup: what its path names, and the nearest
// cgroup (its own or an ancestor) with a pids.max, null where none has.
type Cgroup struct {
	Path        string `json:"path"`
	Unit        string `json:"unit,omitempty"`
	Runtime     string `json:"runtime,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	PodUID      string `json:"pod_uid,omitempty"`
	QoS         string `json:"qos,omitempty"`
	PidsCgroup  string `json:"pids_cgroup,omitempty"` // the cgroup whose pids.max binds
	PidsCurrent *int   `json:"pids_current"`
	PidsMax     *int   `json:"pids_max"`
	PidsRefused *int   `json:"pids_refused"` // forks pids.max refused (pids.events max)
}

// KernelTasks are the host's tasks against the kernel's limits.
type KernelTasks struct {
	Tasks      int `json:"tasks"` // every process and thread on the host, zombies included
	PIDMax     int `json:"pid_max"`
	ThreadsMax int `json:"threads_max"`
}

// LimitUse is one limit and how much of it is used.
type LimitUse struct {
	Name  string  `json:"name"` // RLIMIT_NOFILE, RLIMIT_NPROC, pids.max, kernel.pid_max, kernel.threads-max
	Used  int     `json:"used"`
	Limit uint64  `json:"limit"`
	Ratio float64 `json:"ratio"`
}

// maxUnreadNote bounds one note in Unread: a hostile tree's file (a
// /dev/zero in place of net/tcp) must not fill the output through its
// error message.
const maxUnreadNote = 256

// addUnread names a read that failed, bounded.
func (p *Process) addUnread(note string) {
	if len(note) > maxUnreadNote {
		note = strings.ToValidUTF8(note[:maxUnreadNote], "?") + "..."
	}
	p.Unread = append(p.Unread, note)
}

// rankLimits lists the limits known for p, nearest first.
func (p *Process) rankLimits() {
	var l []LimitUse
	add := func(name string, used int, limit uint64) {
		if limit == 0 || limit == uint64(proc.Unlimited) {
			return
		}
		l = append(l, LimitUse{Name: name, Used: used, Limit: limit, Ratio: Ratio(used, proc.Limit(limit))})
	}
	if p.FDs != nil {
		add("RLIMIT_NOFILE", *p.FDs+p.FDSlotsReserved, uint64(p.FDSoftLimit))
	}
	if p.UIDProcesses != nil && !p.KernelThread {
		add("RLIMIT_NPROC", *p.UIDProcesses, uint64(p.NprocSoftLimit))
	}
	if c := p.Cgroup; c != nil && c.PidsMax != nil && c.PidsCurrent != nil {
		add("pids.max", *c.PidsCurrent, uint64(*c.PidsMax))
	}
	if k := p.Kernel; k != nil {
		add("kernel.pid_max", k.Tasks, uint64(k.PIDMax))
		add("kernel.threads-max", k.Tasks, uint64(k.ThreadsMax))
	}
	slices.SortStableFunc(l, func(a, b LimitUse) int { return cmp.Compare(b.Ratio, a.Ratio) })
	if l == nil {
		l = []LimitUse{}
	}
	p.Limits = l
}

// OldestAge is the age of the oldest zombie the process holds itself (or,
// holding none, of the oldest below it).
func (p *Process) OldestAge() time.Duration {
	if len(p.ZombieList) == 0 {
		return 0
	}
	oldest := p.ZombieList[0]
	for _, z := range p.ZombieList {
		if z.PPID == p.PID {
			oldest = z
			break
		}
	}
	return seconds(oldest.AgeSeconds)
}

// Evidence is what the diagnosis may use of p.
func (p *Process) Evidence() diagnose.Evidence {
	e := diagnose.Evidence{
		PID: p.PID, State: p.State, PPID: p.PPID, Exit: p.Exit, KernelThread: p.KernelThread, Zombies: p.Zombies, AdoptedZombies: p.AdoptedZombies,
		DescendantZombies: p.DescendantZombies, OldestAge: p.OldestAge(), YoungZombies: p.YoungZombies,
		Sigchld: diagnose.Disposition(p.Sigchld), SigchldBlocked: p.SigchldBlocked,
		NamespaceInit: p.NamespaceInit, Comm: p.Comm,
		WaitingInWait: p.WaitingInWait != nil && *p.WaitingInWait,
		FDRatio:       p.FDRatio, FDSoftLimit: p.FDSoftLimit.String(),
		UID: p.UID, NprocRatio: p.NprocRatio, NprocSoftLimit: p.NprocSoftLimit.String(),
	}
	if p.Zombies == 0 && len(p.ZombieList) > 0 {
		e.DescendantHolder = p.ZombieList[0].PPID
	}
	if rp := p.Reaping; rp != nil {
		e.Stale, e.StaleAge, e.Reaped = rp.Stale, seconds(rp.StaleAgeSeconds), rp.Reaped
		e.Observed, e.ObservedBy = seconds(rp.ObservedSeconds), rp.ObservedBy
		if rp.OldestExitSeconds != nil {
			e.OldestExit, e.OldestExitKnown = seconds(*rp.OldestExitSeconds), true
		}
		if rp.ReapDelayMaxSeconds != nil {
			e.ReapDelay, e.ReapDelayKnown = seconds(*rp.ReapDelayMaxSeconds), true
		}
	}
	switch {
	case !p.NamespaceInit:
	case p.HostInit != nil && *p.HostInit:
		e.Init = diagnose.HostInit
	case p.HostInit != nil || p.nestedInit:
		e.Init = diagnose.ContainerInit
	default:
		e.Init = diagnose.UnknownInit
	}
	if p.Server != nil {
		e.Server = string(p.Server.Reaper)
		e.ServerMaxChildren, e.ServerBusy, e.ServerChildFailures = p.Server.MaxChildren, p.Server.Busy, p.Server.ChildFailures
		if !p.Server.CloseConn {
			e.HeldConns = p.Server.HeldConns
		}
	}
	if p.FDs != nil {
		e.FDs = *p.FDs
		e.CloseWait, e.Reset = p.TCPStates["CLOSE_WAIT"], p.TCPStates["CLOSE"]
		e.Sockets = p.FDTypes[proc.FDSocket]
	}
	if p.UIDProcesses != nil {
		e.UIDTasks = *p.UIDProcesses
	}
	if c := p.Cgroup; c != nil {
		e.Container, e.Pod = c.ContainerID, c.PodUID
		if c.PidsMax != nil && c.PidsCurrent != nil {
			e.PidsCgroup, e.PidsCurrent, e.PidsMax = c.PidsCgroup, *c.PidsCurrent, *c.PidsMax
		}
		if c.PidsRefused != nil {
			e.PidsRefused = *c.PidsRefused
		}
	}
	if len(p.Limits) > 0 {
		e.Nearest, e.NearestRatio = p.Limits[0].Name, p.Limits[0].Ratio
	}
	for _, l := range p.Limits {
		if strings.HasPrefix(l.Name, "kernel.") && l.Ratio >= diagnose.NearLimit {
			e.KernelLimit, e.KernelUsed, e.KernelMax = l.Name, l.Used, int(l.Limit)
			break
		}
	}
	return e
}

// Diagnose fills the cause and the sentence from p's evidence. Sources
// run first: the bundled server's own switch is the most precise cause.
func (p *Process) Diagnose() {
	p.rankLimits()
	r := diagnose.Diagnose(p.Evidence())
	p.Cause, p.Diagnosis = r.Cause, r.Sentence
}

// Ratio is used over a soft limit, 0 to 1 to four places (0 when the
// limit is unlimited or 0): the one place ratios are computed.
func Ratio(used int, limit proc.Limit) float64 {
	if limit == proc.Unlimited || limit == 0 {
		return 0
	}
	return math.Round(float64(used)/float64(limit)*1e4) / 1e4
}

// exitWords are "exit 0" to "exit 255", made once rather than per zombie.
var exitWords = func() (w [256]string) {
	for i := range w {
		w[i] = "exit " + strconv.Itoa(i)
	}
	return w
}()

// DescribeExit turns a wait status into $?-style code and words.
func DescribeExit(ws syscall.WaitStatus) (int, string) {
	switch {
	case ws.Exited():
		return ws.ExitStatus(), exitWords[ws.ExitStatus()&0xff]
	case ws.Signaled():
		words := "killed by " + signalName(ws.Signal())
		if ws.CoreDump() {
			words += " (core dumped)"
		}
		return 128 + int(ws.Signal()), words
	default:
		return int(ws), fmt.Sprintf("status %#x", int(ws))
	}
}

// adopted is the one rule for an adopted orphan: a zombie that started
// before its parent cannot have been forked by it.
func adopted(child, parent uint64) bool { return child < parent }

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Users names uids, each looked up once; an unknown uid is its number, as
// ps prints it.
type Users struct {
	Lookup func(uid int) string // nil: the host's user database
	names  sync.Map
}

// Name is uid's user name.
func (u *Users) Name(uid int) string {
	if name, ok := u.names.Load(uid); ok {
		return name.(string)
	}
	lookup := u.Lookup
	if lookup == nil {
		lookup = lookupUser
	}
	name := lookup(uid)
	if name == "" {
		name = strconv.Itoa(uid)
	}
	u.names.Store(uid, name)
	return name
}

func lookupUser(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return ""
}
