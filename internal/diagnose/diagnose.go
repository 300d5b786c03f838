// Package diagnose says why a process holds zombies and what would fix it,
// from a narrow Evidence value built by the model. It returns a
// machine-readable Cause (a small fixed set, used as a JSON key and a
// bounded Prometheus label) and the sentence a person reads.
//
// It imports no reader, no renderer and no control channel: a new cause is
// a new constant, a case in why, and a test.
package diagnose

import (
	"fmt"
	"strings"
	"time"
)

// Cause is why a process holds zombies, in a word a program can match.
type Cause string

// The causes, most specific first where several could apply.
const (
	// None: it holds no zombie children.
	None Cause = "none"
	// IsZombie: the process is itself a zombie its parent has not reaped.
	IsZombie Cause = "is_zombie"
	// KernelThread: a kernel thread; it forks no user children.
	KernelThread Cause = "kernel_thread"
	// DescendantsOnly: it holds none itself; processes below it do.
	DescendantsOnly Cause = "descendants_only"
	// BundledReaperOff: the bundled server with its reaper switched off.
	BundledReaperOff Cause = "bundled_server_reaper_off"
	// BundledCoalescedWait: the bundled server waiting once per SIGCHLD.
	BundledCoalescedWait Cause = "bundled_server_reaper_wait"
	// Stopped: the parent is stopped (state T or t) and cannot run.
	Stopped Cause = "stopped"
	// IgnoredTooLate: SIGCHLD is ignored now, but these exited before.
	IgnoredTooLate Cause = "sigchld_ignored_after_exit"
	// InitNotReaping: PID 1 of a pid namespace that does not reap.
	InitNotReaping Cause = "init_not_reaping"
	// SigchldBlocked: a handler exists but SIGCHLD is blocked.
	SigchldBlocked Cause = "sigchld_blocked"
	// SubreaperNotReaping: it holds orphans it adopted and does not wait.
	SubreaperNotReaping Cause = "subreaper_not_reaping"
	// WaitsForOne: it is blocked in wait, yet these stay: it waits for one
	// particular child (waitpid(pid)) while the others are left.
	WaitsForOne Cause = "waits_for_one_child"
	// HostInitNotReaping: the host's own PID 1 holds zombies.
	HostInitNotReaping Cause = "host_init_not_reaping"
	// CoalescedWait: SIGCHLD is caught but not every child is waited for.
	CoalescedWait Cause = "coalesced_wait"
	// ReapsSome: it reaped children while observed, yet stale ones stay,
	// with no more telling evidence of how.
	ReapsSome Cause = "reaps_some"
	// NoReaper: stale zombies, none reaped, SIGCHLD not caught and no wait.
	NoReaper Cause = "no_reaper"
	// ReapsLate: it reaped while observed and none of its zombies is
	// stale: a reaper in a loop or poll (not a fault).
	ReapsLate Cause = "reaps_late"
	// TooYoung: every zombie exited too recently to tell whether it will
	// be reaped, and none was reaped while observed.
	TooYoung Cause = "too_young"
	// NotJudged: no time evidence at all: exit times unknown (no
	// /proc/PID/sched) and not observed.
	NotJudged Cause = "not_judged"
)

// Causes lists every cause, for tests and for documentation.
var Causes = []Cause{None, IsZombie, KernelThread, DescendantsOnly, BundledReaperOff, BundledCoalescedWait, Stopped, IgnoredTooLate,
	InitNotReaping, HostInitNotReaping, SigchldBlocked, SubreaperNotReaping, WaitsForOne, CoalescedWait, ReapsSome, NoReaper,
	ReapsLate, TooYoung, NotJudged}

// InitKind tells whose PID 1 a namespace init is.
type InitKind string

// The kinds of namespace init.
const (
	NotInit       InitKind = ""
	ContainerInit InitKind = "container"
	HostInit      InitKind = "host"
	UnknownInit   InitKind = "unknown" // its pid namespace could not be read
)

// Disposition is the SIGCHLD disposition: "default", "caught", "ignored".
type Disposition string

// The dispositions.
const (
	Default Disposition = "default"
	Caught  Disposition = "caught"
	Ignored Disposition = "ignored"
)

// Evidence is what the diagnosis may use: facts, no wording.
type Evidence struct {
	PID   int
	PPID  int
	State string // stat's state letter
	// Exit: how it ended, when it is itself a zombie ("exit 0").
	Exit         string
	KernelThread bool
	// Zombies: direct children in state Z; AdoptedZombies of them orphans
	// it adopted; DescendantZombies anywhere below, direct ones included.
	Zombies, AdoptedZombies, DescendantZombies int
	// OldestAge: since the start of the oldest direct zombie (or, with
	// none, of any below).
	OldestAge time.Duration
	// Time evidence of reaping (see model.Reaping). OldestExit: the
	// longest a direct zombie has been dead, when known. Stale: zombies
	// dead for StaleAge or longer. Observed: how long the children were
	// watched (0: not), Reaped of them in that time, the longest
	// exit-to-reap delay seen.
	OldestExit      time.Duration
	OldestExitKnown bool
	Stale           int
	StaleAge        time.Duration
	Observed        time.Duration
	ObservedBy      string
	Reaped          int
	ReapDelay       time.Duration
	ReapDelayKnown  bool
	// YoungZombies: zombie children younger than --min-age, not counted.
	YoungZombies int
	// DescendantHolder: the parent of the oldest zombie below, when it
	// holds none itself.
	DescendantHolder int
	Sigchld          Disposition
	SigchldBlocked   bool
	NamespaceInit    bool // PID 1 of its pid namespace
	Init             InitKind
	Comm             string // its name, to name the init it runs
	// WaitingInWait: it sleeps in the kernel's do_wait right now (wchan).
	WaitingInWait bool

	// Server: the bundled server's reaper mode as its control channel
	// names it (off, wait, loop, ignore), or "" for any other process.
	Server string
	// HeldConns: connection copies the bundled server keeps with
	// close-conn off (0 otherwise).
	HeldConns int
	// The bundled server's --max-children, the connections it answered
	// 503 at it, and its children whose runtime failed.
	ServerMaxChildren               int
	ServerBusy, ServerChildFailures uint64

	// Descriptors and limits; a ratio is 0 when unknown or unlimited.
	// CloseWait: TCP sockets the peer closed; Reset: TCP sockets whose
	// connection the peer reset (CLOSE, in no table): both are connections
	// this process keeps and never closed.
	FDs, Sockets, CloseWait, Reset int
	FDRatio                        float64
	FDSoftLimit                    string
	UID, UIDTasks                  int
	NprocRatio                     float64
	NprocSoftLimit                 string

	// The pids cgroup whose pids.max binds (empty when none), its use,
	// and the forks it already refused; the container and pod it names.
	PidsCgroup                        string
	PidsCurrent, PidsMax, PidsRefused int
	Container, Pod                    string
	// KernelLimit: a kernel limit at NearLimit or above (kernel.pid_max,
	// kernel.threads-max), with the host's tasks and the limit.
	KernelLimit           string
	KernelUsed, KernelMax int
	// Nearest names the limit with the least headroom, and its use.
	Nearest      string
	NearestRatio float64
}

// Result is a diagnosis.
type Result struct {
	Cause    Cause
	Sentence string
}

// NearLimit is the share of a limit from which the diagnosis warns.
const NearLimit = 0.8

// Diagnose says in one sentence whether the process holds zombies, why
// nobody reaps them and what would fix it, then each limit it is close to.
func Diagnose(e Evidence) Result {
	var r Result
	switch {
	case e.State == "Z":
		r.Cause = IsZombie
		r.Sentence = fmt.Sprintf("pid %d is itself a zombie (%s): it has exited, and its parent, pid %d, has not waited for it; the parent holds the answer: zombiewatch --pid %d",
			e.PID, e.Exit, e.PPID, e.PPID)
		return r
	case e.KernelThread:
		r.Cause = KernelThread
		r.Sentence = fmt.Sprintf("pid %d is a kernel thread: it has no fd table and no user limits, and its children are the kernel's to reap", e.PID)
		return r
	case e.Zombies == 0 && e.DescendantZombies > 0:
		r.Cause = DescendantsOnly
		r.Sentence = fmt.Sprintf("pid %d holds no zombies itself; its descendants hold %d (the oldest under pid %d: zombiewatch --pid %d)",
			e.PID, e.DescendantZombies, e.DescendantHolder, e.DescendantHolder)
	case e.Zombies == 0 && e.YoungZombies > 0:
		r.Cause = None
		r.Sentence = fmt.Sprintf("pid %d holds no zombies older than --min-age (%d younger: children it has not reaped yet, which may be reaped as they come)", e.PID, e.YoungZombies)
	case e.Zombies == 0:
		r.Cause = None
		r.Sentence = fmt.Sprintf("pid %d holds no zombies", e.PID)
	default:
		var why string
		r.Cause, why = cause(e)
		r.Sentence = fmt.Sprintf("pid %d holds %d %s, %s; %s", e.PID, e.Zombies, plural(e.Zombies, "zombie"), ages(e), why)
	}
	r.Sentence += connAdvice(e) + limitWarnings(e)
	return r
}

// ages says how long the zombies have been dead, or that it is unknown.
func ages(e Evidence) string {
	if e.OldestExitKnown {
		return "the oldest exited " + secs(e.OldestExit) + " ago"
	}
	return "their exit times unknown (the oldest started " + Age(e.OldestAge) + " ago)"
}

// cause explains what keeps the zombies. Whether the parent reaps is read
// from time (exit ages, what an observation saw); how it is told
// (SIGCHLD caught, blocked in wait, stopped, an init) explains a parent
// that does not, and is never taken for evidence that it does not.
func cause(e Evidence) (Cause, string) {
	switch {
	case e.Server == "off" && e.Reaped == 0:
		return BundledReaperOff, fmt.Sprintf("it is the bundled server with its reaper off, so nobody waits for a finished child: zombiewatch ctl --pid %d reaper=loop", e.PID)
	case (e.State == "T" || e.State == "t") && e.Reaped == 0:
		return Stopped, fmt.Sprintf("it is stopped (state %s) and cannot reap while stopped: kill -CONT %d; whether it reaps once it runs cannot be told while it is stopped", e.State, e.PID)
	case e.Reaped > 0 && e.Stale == 0:
		return ReapsLate, fmt.Sprintf("it reaps, late: it reaped %d in the %s observed%s, without leaving any for %s: a reaper in a loop or poll, so these are waiting for its next pass",
			e.Reaped, secs(e.Observed), delayNote(e), secs(e.StaleAge))
	case e.Reaped > 0:
		return reapsSome(e)
	case e.Stale == 0 && (e.OldestExitKnown || e.Observed > 0):
		return TooYoung, fmt.Sprintf("all exited less than %s ago%s: too young to tell whether it reaps them%s",
			secs(e.StaleAge), observedNote(e), followAdvice(e))
	case e.Stale == 0:
		return NotJudged, "whether it reaps is not known: the kernel does not tell when they exited (no /proc/PID/sched: CONFIG_SCHED_DEBUG is off) and they were not observed" + followAdvice(e)
	}
	evidence := staleNote(e)
	switch {
	case e.Server == "wait":
		return BundledCoalescedWait, fmt.Sprintf("%s; it is the bundled server waiting once per SIGCHLD, and signals coalesce when children exit together: zombiewatch ctl --pid %d reaper=loop", evidence, e.PID)
	case e.Sigchld == Ignored:
		return IgnoredTooLate, evidence + "; it ignores SIGCHLD, so the kernel reaps children that exit from now on; these exited before: a wait() collects them"
	case e.NamespaceInit && e.Init == HostInit:
		return HostInitNotReaping, fmt.Sprintf("%s; it is the host's own init (%s), which inherits every orphan on the host and should reap them: it may be stuck (its state is %s), or not a reaping init",
			evidence, e.Comm, e.State)
	case e.NamespaceInit:
		return InitNotReaping, evidence + "; " + initAdvice(e)
	case e.WaitingInWait:
		return WaitsForOne, evidence + "; it is blocked in wait right now, yet these stay: it waits for one particular child (waitpid(pid), or a child of its own process group) while the others are left: wait for any child, waitpid(-1, WNOHANG), until none is left" + adoptedNote(e)
	case e.SigchldBlocked && e.Sigchld == Caught:
		return SigchldBlocked, evidence + "; it blocks SIGCHLD, so its handler does not run: unblock it, or read a signalfd and wait for every child"
	case e.AdoptedZombies == e.Zombies:
		return SubreaperNotReaping, evidence + "; they are orphans it adopted as a subreaper, and it does not wait for them: a subreaper must wait for every child"
	case e.Sigchld == Caught:
		return CoalescedWait, evidence + "; it catches SIGCHLD but has not waited for these (one wait per signal loses children, since signals coalesce; the Go runtime catches SIGCHLD without waiting): loop waitpid(-1, WNOHANG) until it returns 0" + adoptedNote(e)
	default:
		return NoReaper, evidence + "; it does not catch SIGCHLD and is not blocked in wait: nothing in it waits for these children: add a reaper (waitpid(-1, WNOHANG) in a loop) or ignore SIGCHLD" + adoptedNote(e)
	}
}

// reapsSome: it reaped while observed, yet stale zombies stay.
func reapsSome(e Evidence) (Cause, string) {
	head := fmt.Sprintf("it reaped %d in the %s observed%s, yet %d exited %s ago or more are still there", e.Reaped, secs(e.Observed), delayNote(e), e.Stale, secs(e.StaleAge))
	switch {
	case e.Server == "wait":
		return BundledCoalescedWait, fmt.Sprintf("%s: it is the bundled server waiting once per SIGCHLD, and signals coalesce when children exit together: zombiewatch ctl --pid %d reaper=loop", head, e.PID)
	case e.WaitingInWait:
		return WaitsForOne, head + ": it waits for particular children (waitpid(pid), or its own process group) and leaves these: wait for any child, waitpid(-1, WNOHANG), until none is left" + adoptedNote(e)
	case e.Sigchld == Caught:
		return CoalescedWait, head + ": it waits once per SIGCHLD and signals coalesce when children exit together: loop waitpid(-1, WNOHANG) until it returns 0" + adoptedNote(e)
	}
	return ReapsSome, head + ": it waits for some children and not these (waitpid of particular pids?): wait for any child, waitpid(-1, WNOHANG), until none is left" + adoptedNote(e)
}

// staleNote is the time evidence that the zombies are not being reaped.
func staleNote(e Evidence) string {
	n := fmt.Sprintf("%d exited %s ago or more", e.Stale, secs(e.StaleAge))
	if e.Stale == e.Zombies {
		n = fmt.Sprintf("all exited %s ago or more", secs(e.StaleAge))
		if e.Zombies == 1 {
			n = fmt.Sprintf("it exited %s ago or more", secs(e.StaleAge))
		}
	}
	if e.Observed > 0 {
		return n + fmt.Sprintf(" and none was reaped in the %s observed", secs(e.Observed))
	}
	if e.Zombies == 1 {
		return n + " and is still there"
	}
	return n + " and are still there"
}

// followAdvice names the command that follows the zombies, unless the
// caller is following them already (a watch).
func followAdvice(e Evidence) string {
	if e.ObservedBy != "" {
		return ""
	}
	return fmt.Sprintf(" (zombiewatch --pid %d --observe 5s, or --watch, follows them)", e.PID)
}

func delayNote(e Evidence) string {
	if !e.ReapDelayKnown {
		return ""
	}
	return fmt.Sprintf(", each within %s of its exit", secs(e.ReapDelay))
}

func observedNote(e Evidence) string {
	if e.Observed == 0 {
		return ""
	}
	return fmt.Sprintf(", and none was reaped in the %s observed", secs(e.Observed))
}

// secs prints a short duration to a tenth of a second (2.0 s, 0.5 s), and
// longer ones as Age does.
func secs(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return Age(d)
}

// adoptedNote says what is known of adopted orphans among the zombies: the
// kernel does not tell a process's own children from orphans it adopted as
// a subreaper, so both possibilities stay open unless the start times
// settle it.
func adoptedNote(e Evidence) string {
	if e.AdoptedZombies == 0 {
		return ""
	}
	return fmt.Sprintf(" (at least %d of these are orphans it adopted as a subreaper, which it must wait for too)", e.AdoptedZombies)
}

// initAdvice names the init a container runs as PID 1 and the fix for it.
func initAdvice(e Evidence) string {
	whose := "its pid namespace"
	switch e.Init {
	case ContainerInit:
		whose = "its container"
	case UnknownInit:
		whose = "its pid namespace (its namespace could not be read, so host or container is not known)"
	}
	adopted := ""
	if e.AdoptedZombies > 0 {
		adopted = fmt.Sprintf(" (at least %d of these it adopted)", e.AdoptedZombies)
	}
	head := fmt.Sprintf("it is PID 1 of %s and inherits every orphan%s, but does not reap them: ", whose, adopted)
	switch initName(e.Comm) {
	case "tini", "docker-init":
		return head + e.Comm + " reaps every orphan as PID 1; if these stay, it is not the init it seems (tini needs -s, or TINI_SUBREAPER, when it is not PID 1)"
	case "dumb-init", "catatonit":
		return head + e.Comm + " reaps every orphan as PID 1; if these stay, check that it runs as PID 1 and is not stopped"
	case "shell":
		return head + "a shell (" + e.Comm + ") as PID 1 waits only for the jobs it started: exec the app under an init (docker run --init, tini, dumb-init; Kubernetes: shareProcessNamespace makes the pause process PID 1)"
	default:
		return head + "the app (" + e.Comm + ") is PID 1 itself and never waits for orphans it did not fork: run it under an init that reaps (docker run --init, tini, dumb-init; Kubernetes: shareProcessNamespace makes the pause process PID 1) or make it wait for every child"
	}
}

// initName sorts a PID 1's comm into the inits that reap, shells, and the
// rest (the app itself).
func initName(comm string) string {
	switch comm {
	case "tini", "docker-init", "dumb-init", "catatonit":
		return comm
	case "sh", "bash", "dash", "ash", "zsh", "busybox":
		return "shell"
	}
	return "app"
}

// Role names what kind of parent holds orphans: "host init", "container
// init" or "namespace init" (PID 1 of a pid namespace, whose namespace
// could not be read), "subreaper or init" (it holds orphans it adopted),
// or "" for a plain parent.
func Role(e Evidence) string {
	switch {
	case e.NamespaceInit && e.Init == HostInit:
		return "host init"
	case e.NamespaceInit && e.Init == ContainerInit:
		return "container init"
	case e.NamespaceInit:
		return "namespace init"
	case e.AdoptedZombies > 0:
		return "subreaper or init"
	}
	return ""
}

// connAdvice names the bundled server's switch for the descriptors it
// keeps on purpose.
func connAdvice(e Evidence) string {
	var w string
	if e.ServerBusy > 0 {
		w += fmt.Sprintf("; it reached its --max-children %d and answered %d connections 503", e.ServerMaxChildren, e.ServerBusy)
	}
	if e.ServerChildFailures > 0 {
		w += fmt.Sprintf("; %d of its children failed to start their runtime (near RLIMIT_NPROC: zombies count)", e.ServerChildFailures)
	}
	if e.HeldConns == 0 {
		return w
	}
	return w + fmt.Sprintf("; it keeps its copy of every connection (%d held, close-conn off), so clients' sockets stay in CLOSE_WAIT: zombiewatch ctl --pid %d close-conn=on",
		e.HeldConns, e.PID)
}

// limitWarnings adds a sentence for each limit the process is close to.
func limitWarnings(e Evidence) string {
	var w strings.Builder
	switch {
	case e.CloseWait > 0 && e.Reset == 0:
		fmt.Fprintf(&w, "; %s in CLOSE_WAIT: the peer closed and this process never did", ofSockets(e.CloseWait, e.Sockets))
	case e.CloseWait+e.Reset > 0:
		fmt.Fprintf(&w, "; %s connections the peer ended and this process never closed (%d in CLOSE_WAIT, %d reset)",
			ofSockets(e.CloseWait+e.Reset, e.Sockets), e.CloseWait, e.Reset)
	}
	if e.FDRatio >= NearLimit {
		fmt.Fprintf(&w, "; its fds are at %.1f%% of the soft limit (%d of %s): find the leak (zombiewatch --pid %d) or raise the limit (ulimit -n, LimitNOFILE=)",
			e.FDRatio*100, e.FDs, e.FDSoftLimit, e.PID)
	}
	if e.NprocRatio >= NearLimit {
		fmt.Fprintf(&w, "; uid %d runs %d processes and threads, %.1f%% of RLIMIT_NPROC %s: fork will fail with EAGAIN (zombies count too)",
			e.UID, e.UIDTasks, e.NprocRatio*100, e.NprocSoftLimit)
	}
	if e.PidsCgroup != "" && (e.PidsRefused > 0 || float64(e.PidsCurrent) >= NearLimit*float64(e.PidsMax)) {
		where := "its cgroup " + e.PidsCgroup
		switch {
		case e.Pod != "" && e.Container != "":
			where = fmt.Sprintf("pod %s, container %s", short(e.Pod), short(e.Container))
		case e.Container != "":
			where = "container " + short(e.Container)
		}
		fmt.Fprintf(&w, "; %s: %d of %d pids (pids.max; zombies count)", where, e.PidsCurrent, e.PidsMax)
		if e.PidsRefused > 0 {
			fmt.Fprintf(&w, ", %d forks already refused (EAGAIN)", e.PidsRefused)
		}
	}
	if e.KernelLimit != "" {
		fmt.Fprintf(&w, "; the host runs %d tasks, near %s %d: any fork on the host may fail", e.KernelUsed, e.KernelLimit, e.KernelMax)
	}
	if e.Nearest != "" && e.NearestRatio >= NearLimit {
		fmt.Fprintf(&w, "; of its limits %s binds first (%.1f%% used)", e.Nearest, e.NearestRatio*100)
	}
	return w.String()
}

// ofSockets says "n of its m sockets are", in agreement with n and m.
func ofSockets(n, m int) string {
	switch {
	case m == 1 && n == 1:
		return "its one socket is"
	case n == m:
		return fmt.Sprintf("all %d of its sockets are", m)
	case n == 1:
		return fmt.Sprintf("1 of its %d sockets is", m)
	}
	return fmt.Sprintf("%d of its %d sockets are", n, m)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// Age prints a duration the way a person says it: 45s, 3m02s, 2h05m, 3d04h.
func Age(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
	}
}

// short is the first 12 characters of an id, as docker and crictl print them.
func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
