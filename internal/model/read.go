package model

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/sockdiag"
)

// Reader builds Processes from one /proc tree.
type Reader struct {
	FS *proc.FS
	// Now is the clock used for ages; tests set it for stable output.
	Now func() time.Time
	// Users names uids; tests set Users.Lookup so output does not depend
	// on the host's /etc/passwd.
	Users *Users
	// Sources enrich each process after it is read (TCP states, the
	// bundled server's status, its cgroup): listed where the command is
	// wired. HostSources add what they see across the host to a host
	// reading.
	Sources     []Source
	HostSources []HostSource

	// uidCounts: each uid's task count, kept for the length of a
	// selection (Processes); nil otherwise.
	uidCounts map[int]int
	// sockets: the socket tables of a reading, shared with the TCPStates
	// source where there is one (one dump per namespace per reading).
	sockets *sockdiag.Tables
}

// NewReader reads fs with the real clock and user database.
func NewReader(fs *proc.FS, sources ...Source) *Reader {
	r := &Reader{FS: fs, Now: time.Now, Users: &Users{}, Sources: sources}
	for _, s := range sources {
		if t, ok := s.(tcpSource); ok && t.tables != nil {
			r.sockets = t.tables
		}
	}
	return r
}

// socketTables is the reader's socket tables, made on first use (a
// Reader built as a literal has none yet).
func (r *Reader) socketTables() *sockdiag.Tables {
	if r.sockets == nil {
		r.sockets = sockdiag.NewTables(r.FS)
	}
	return r.sockets
}

// Options choose the reads that cost more than a few syscalls.
type Options struct {
	// FDTypes reads every descriptor's link to count kinds: O(fds).
	FDTypes bool
	// ZombieOwners stats each zombie's directory for its owner, as ps's
	// USER column does: one syscall per zombie.
	ZombieOwners bool
	// Cache, for a watcher, remembers zombies between readings (see
	// ZombieCache); nil reads every child each time.
	Cache *ZombieCache
	// NoUIDCount leaves UIDProcesses nil: counting reads every process's
	// status, which a watcher does only every few samples.
	NoUIDCount bool
	// FDList lists every descriptor (target, socket addresses) and groups
	// them: lsof -p's work, O(fds) plus the network tables.
	FDList bool
	// MinAge counts only zombies at least this old: a parent whose
	// children live 50 ms as zombies before it reaps them is not
	// accused. Younger ones are counted apart (YoungZombies).
	MinAge time.Duration
}

// ZombieCache lets repeated readings skip the children they have seen as
// zombies: a zombie does not change until it is reaped, so only new
// children need their stat read. When Full is true (the caller's policy)
// all are read again, which bounds the one thing the cache could miss: a
// zombie reaped and its pid reused by a new child of the same parent in
// between, which needs the whole pid space to wrap.
type ZombieCache struct {
	Full    bool
	zombies map[int]Zombie
}

// Process reads pid once, runs the sources on it and diagnoses it. A
// missing pid gives ErrNoProcess, a pid reused during the read
// ErrPIDReused. If only some reads were refused (another user's fd
// directory), it returns the process, with what was refused null and named
// in Denied, and a *PermissionError.
func (r *Reader) Process(ctx context.Context, pid int, opt Options) (*Process, error) {
	r.beginPass()
	p, err := r.read(ctx, pid, opt)
	var thread *threadError
	if errors.As(err, &thread) {
		// A thread id (from top -H, htop, ps -L): read its process.
		if p, err = r.read(ctx, thread.tgid, opt); p != nil {
			p.ThreadID = pid
		}
	}
	if p == nil {
		return nil, err
	}
	denied := err
	if err := r.enrich(ctx, p, nil); denied == nil {
		denied = err
	}
	p.Diagnose()
	return p, denied
}

// read reads pid once: nil and the error when it cannot be read; the
// process and a *PermissionError when only its fd table was refused.
func (r *Reader) read(ctx context.Context, pid int, opt Options) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	p, start, buf, err := r.identity(pid, nil)
	if err != nil {
		return nil, err
	}
	if buf, err = r.readLimitsAndCmdline(p, buf); err != nil {
		return nil, err
	}
	if err := r.readTasks(ctx, p, opt); err != nil {
		return nil, err
	}
	denied := r.readFDTable(p, opt)
	var perm *PermissionError
	if denied != nil && !errors.As(denied, &perm) {
		return nil, denied
	}
	// The reads above took time: if the pid now names another process
	// (start time changed), everything read may mix two processes.
	again, _, err := r.FS.ReadStat(pid, buf)
	switch {
	case err != nil:
		return nil, classify(pid, "identity", r.FS.PIDPath(pid, "stat"), err)
	case again.StartTime != start:
		return nil, fmt.Errorf("pid %d: %w", pid, ErrPIDReused)
	}
	return p, denied
}

// identity reads who pid is (stat and status): the process with its name,
// state, owner and SIGCHLD handling, and its start time in ticks, which
// names it among the processes that held its pid. buf is reused.
func (r *Reader) identity(pid int, buf []byte) (*Process, uint64, []byte, error) {
	st, buf, err := r.FS.ReadStat(pid, buf)
	if err != nil {
		return nil, 0, buf, classify(pid, "identity", r.FS.PIDPath(pid, "stat"), err)
	}
	p := &Process{PID: pid, PPID: st.PPID, Comm: st.Comm, State: string(st.State),
		Threads: st.Threads, ZombieList: []Zombie{}, startTicks: st.StartTime}
	if p.StartTime, err = r.startTime(st.StartTime); err != nil {
		return nil, 0, buf, err
	}
	if st.State == 'Z' {
		_, p.Exit = DescribeExit(syscall.WaitStatus(st.ExitCode))
	}
	status, buf, err := r.FS.ReadStatus(pid, buf)
	if err != nil {
		return nil, 0, buf, r.missing(pid, "identity", r.FS.PIDPath(pid, "status"), err)
	}
	if status.Tgid > 0 && status.Tgid != pid {
		return nil, 0, buf, &threadError{tid: pid, tgid: status.Tgid}
	}
	p.KernelThread = st.KernelThread()
	p.UID, p.User, p.NamespaceInit = status.UID, r.Users.Name(status.UID), status.NSInit() || (pid == 1 && len(status.NSpid) <= 1)
	p.nestedInit = status.NSInit()
	sc := status.Sigchld()
	p.Sigchld, p.SigchldBlocked, p.SigchldPending = sc.Disposition, sc.Blocked, sc.Pending
	return p, st.StartTime, buf, nil
}

// readLimitsAndCmdline reads the files a process may lack: a file missing
// from a pid directory that exists (a copied or hostile tree) is named in
// Unread and what it would fill left null; the rest is read.
func (r *Reader) readLimitsAndCmdline(p *Process, buf []byte) ([]byte, error) {
	lim, buf, err := r.FS.ReadLimits(p.PID, buf)
	if err != nil {
		if err = r.optional(p, "limits", r.FS.PIDPath(p.PID, "limits"), err); err != nil {
			return buf, err
		}
		lim = proc.Limits{NofileSoft: proc.Unlimited, NofileHard: proc.Unlimited, NprocSoft: proc.Unlimited, NprocHard: proc.Unlimited}
	}
	p.FDSoftLimit, p.FDHardLimit = lim.NofileSoft, lim.NofileHard
	p.NprocSoftLimit, p.NprocHardLimit = lim.NprocSoft, lim.NprocHard
	if p.Cmdline, err = r.FS.Cmdline(p.PID); err != nil {
		if err = r.optional(p, "command line", r.FS.PIDPath(p.PID, "cmdline"), err); err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// readTasks reads the children (the zombies and how they are waited for),
// the kernel's task count and, for a uid other than root, its tasks
// against RLIMIT_NPROC.
func (r *Reader) readTasks(ctx context.Context, p *Process, opt Options) error {
	if err := r.readZombies(ctx, p, opt); err != nil {
		return err
	}
	r.readWaitEvidence(p)
	p.Kernel = r.kernelTasks()
	if p.UID != 0 && !opt.NoUIDCount {
		n, err := r.uidTasks(ctx, p.UID)
		if err != nil {
			return err
		}
		p.UIDProcesses = &n
		p.NprocRatio = Ratio(n, p.NprocSoftLimit)
	}
	return nil
}

// readFDTable reads the fd count and what was asked of the fds. A refusal
// is named in Denied and returned (a *PermissionError); a missing fd
// directory in Unread. A kernel thread has no fd table of its own and a
// zombie has closed everything: FDs stays null, not 0.
func (r *Reader) readFDTable(p *Process, opt Options) error {
	if p.KernelThread || p.State == "Z" {
		return nil
	}
	err := r.readFDs(p, opt)
	if err == nil {
		return nil
	}
	if err = r.optional(p, "fd count", r.FS.PIDPath(p.PID, "fd"), err); err == nil {
		return nil
	}
	var perm *PermissionError
	if errors.As(err, &perm) {
		p.Denied = append(p.Denied, err.Error())
	}
	return err
}

// enrich runs the reader's sources on p. A source that fails leaves its
// facts out (null) and does not fail the reading: a refusal is named in
// Denied and returned, any other failure named in Unread. Each source's
// duration and error are added to results, when not nil.
func (r *Reader) enrich(ctx context.Context, p *Process, results map[string]*SourceResult) error {
	var denied error
	for _, s := range r.Sources {
		start := time.Now()
		err := s.Process(ctx, p)
		if results != nil {
			addResult(results, s.Name(), time.Since(start), err)
		}
		var perm *PermissionError
		switch {
		case err == nil:
		case errors.As(err, &perm):
			p.Denied = append(p.Denied, err.Error())
			if denied == nil {
				denied = err
			}
		case !errors.Is(err, ErrNoProcess):
			p.addUnread(s.Name() + ": " + err.Error())
		}
	}
	return denied
}

func (r *Reader) startTime(ticks uint64) (time.Time, error) {
	t, err := r.FS.StartTime(ticks)
	if err != nil {
		return t, err
	}
	return t.In(r.Now().Location()), nil
}

// readZombies walks the tree below p: direct children and their counts,
// then every descendant, collecting zombies (a zombie has no children: the
// kernel reparents them when it exits). Every hop checks that the child
// still names its parent and started after it, so a pid reused by a
// stranger on the way is not counted.
func (r *Reader) readZombies(ctx context.Context, p *Process, opt Options) error {
	found, err := r.walkZombies(ctx, p, opt)
	if err != nil {
		return err
	}
	r.exitAges(found, opt.Cache)
	for _, z := range found {
		direct := z.PPID == p.PID
		if young(z, opt.MinAge) {
			if direct {
				p.YoungZombies++
			}
			continue
		}
		if direct {
			p.Zombies++
			if z.Adopted {
				p.AdoptedZombies++
			}
		}
		p.ZombieList = append(p.ZombieList, z)
	}
	p.DescendantZombies = len(p.ZombieList)
	sortZombies(p.ZombieList)
	if c := opt.Cache; c != nil {
		c.zombies = make(map[int]Zombie, len(found))
		for _, z := range found {
			c.zombies[z.PID] = z
		}
	}
	p.judgeFromExitAges()
	return nil
}

// walkZombies walks p's descendants breadth first and returns every
// zombie below it, young ones included; it counts p's children. A
// descendant that exits during the walk, or whose pid comes to name a
// stranger, is passed over.
func (r *Reader) walkZombies(ctx context.Context, p *Process, opt Options) ([]Zombie, error) {
	childrenOf := r.childrenOf(p)
	now := r.Now()
	var found []Zombie
	type hop struct {
		pid   int
		start uint64
	}
	queue := []hop{{p.PID, p.startTicks}}
	visited := map[int]bool{p.PID: true}
	for len(queue) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		parent := queue[0]
		queue = queue[1:]
		kids, err := childrenOf(parent.pid)
		if err != nil {
			if parent.pid != p.PID && proc.IsGone(err) {
				continue // a descendant exited while we walked
			}
			return nil, classify(parent.pid, "children", r.FS.PIDPath(parent.pid, "task"), err)
		}
		direct := parent.pid == p.PID
		if !direct && !r.sameProcess(parent.pid, parent.start) {
			continue // it exited and its pid now names a stranger, whose children are not ours
		}
		stats, errs := r.readStatsCached(kids, opt.Cache)
		for i, kid := range kids {
			ks, err := stats[i], errs[i]
			if err != nil {
				if proc.IsGone(err) {
					continue // exited and reaped since the list was read
				}
				return nil, err
			}
			if ks.PPID != parent.pid || visited[kid] {
				continue // reaped, and the pid reused by a stranger; or a cycle in a bad tree
			}
			visited[kid] = true
			if direct {
				p.Children++
			}
			if ks.State != 'Z' {
				queue = append(queue, hop{kid, ks.StartTime})
				continue
			}
			z, err := r.zombie(ks, now, opt)
			if err != nil {
				if proc.IsGone(err) {
					continue
				}
				return nil, err
			}
			z.Adopted = adopted(ks.StartTime, parent.start)
			found = append(found, z)
		}
	}
	return found, nil
}

// childrenOf lists a pid's children from its threads' children files; in
// a tree without them (no CONFIG_PROC_CHILDREN, a copied tree without
// task/), from every process's ppid, read once, saying so in p's Unread.
func (r *Reader) childrenOf(p *Process) func(pid int) ([]int, error) {
	var ppids map[int][]int
	return func(pid int) ([]int, error) {
		if ppids == nil {
			kids, _, err := r.FS.Children(pid, nil)
			if pid == p.PID && proc.IsGone(err) && r.dirExists(pid) {
				p.addUnread(fmt.Sprintf("children: %s is missing: read from every process's ppid instead", r.FS.PIDPath(pid, "task")))
				err = proc.ErrNoChildrenFile
			}
			if !errors.Is(err, proc.ErrNoChildrenFile) {
				return kids, err
			}
			if ppids, _, err = r.FS.ChildrenByPPID(); err != nil {
				return nil, err
			}
		}
		return ppids[pid], nil
	}
}

// young tells whether a zombie is younger than minAge: by its exit age
// where known; otherwise only when its start is younger (it cannot have
// exited before it started), so an unknown exit time is not filtered out.
func young(z Zombie, minAge time.Duration) bool {
	if minAge <= 0 {
		return false
	}
	if z.ExitAgeSeconds != nil {
		return *z.ExitAgeSeconds < minAge.Seconds()
	}
	return z.AgeSeconds < minAge.Seconds()
}

// sameProcess tells whether pid still names the process that started at
// start ticks: checked after listing a descendant's children, so a pid
// reused in between does not lend us a stranger's children.
func (r *Reader) sameProcess(pid int, start uint64) bool {
	st, _, err := r.FS.ReadStat(pid, nil)
	return err == nil && st.StartTime == start
}

// readStatsCached is ReadStats for the pids the cache has not seen as
// zombies (all of them on a full reading).
func (r *Reader) readStatsCached(pids []int, c *ZombieCache) ([]proc.Stat, []error) {
	if c == nil || c.Full || c.zombies == nil {
		return r.FS.ReadStats(pids)
	}
	var todo []int
	for _, pid := range pids {
		if _, ok := c.zombies[pid]; !ok {
			todo = append(todo, pid)
		}
	}
	read, readErrs := r.FS.ReadStats(todo)
	stats := make([]proc.Stat, len(pids))
	errs := make([]error, len(pids))
	j := 0
	for i, pid := range pids {
		if z, ok := c.zombies[pid]; ok {
			stats[i] = z.raw
			continue
		}
		stats[i], errs[i] = read[j], readErrs[j]
		j++
	}
	return stats, errs
}

// zombie is one zombie as reported, from its stat.
func (r *Reader) zombie(ks proc.Stat, now time.Time, opt Options) (Zombie, error) {
	start, err := r.startTime(ks.StartTime)
	if err != nil {
		return Zombie{}, err
	}
	z := Zombie{
		PID: ks.PID, PPID: ks.PPID, Comm: ks.Comm, WaitStatus: ks.ExitCode,
		AgeSeconds: math.Round(now.Sub(start).Seconds()*100) / 100,
		start:      start, raw: ks,
	}
	z.ExitCode, z.Exit = DescribeExit(syscall.WaitStatus(ks.ExitCode))
	if opt.ZombieOwners {
		uid, err := r.FS.Owner(ks.PID)
		if err != nil {
			return z, err
		}
		z.UID, z.User = &uid, r.Users.Name(uid)
	}
	return z, nil
}

// sortZombies orders zombies oldest first. The key (start, pid) is unique,
// so an unstable sort gives the one order, without a stable sort's moves.
func sortZombies(zs []Zombie) {
	slices.SortFunc(zs, func(a, b Zombie) int {
		return cmp.Or(cmp.Compare(a.raw.StartTime, b.raw.StartTime), a.PID-b.PID)
	})
}

// readFDs counts descriptors and, if asked, their kinds.
func (r *Reader) readFDs(p *Process, opt Options) error {
	n, _, err := r.FS.FDCount(p.PID)
	if err != nil {
		return err // the caller's optional() sorts it: missing, refused, gone
	}
	p.FDs = &n
	p.FDRatio = Ratio(n, p.FDSoftLimit)
	if opt.FDList {
		if err := r.readFDList(p); err != nil {
			return err
		}
	}
	if !opt.FDTypes {
		return nil
	}
	return r.readFDKinds(p)
}

// readFDKinds fills FDTypes (and keeps the socket inodes for the TCP
// source). A refused readlink leaves them null and says so.
func (r *Reader) readFDKinds(p *Process) error {
	sum, err := r.FS.FDKinds(p.PID)
	if err == nil && sum.Refused > 0 {
		err = fmt.Errorf("readlink: %w", fs.ErrPermission)
	}
	if err != nil {
		p.FDTypes, p.TCPStates, p.sockets = nil, nil, nil
		return classify(p.PID, "fd kinds", r.FS.PIDPath(p.PID, "fd"), err)
	}
	p.FDTypes, p.sockets = sum.Kinds, sum.Sockets
	if sum.Unresolved > 0 {
		p.addUnread(fmt.Sprintf("fd kinds: %d fds could not be resolved (%v): counted as %s", sum.Unresolved, sum.Why, proc.FDUnresolved))
	}
	// The directory was listed: the count is the listing, as ls and lsof
	// give it. The O(1) count read before holds slots that threads blocked
	// in accept have reserved; they count toward EMFILE, so they stay in
	// the ratio and are shown apart.
	if p.FDs != nil && sum.Listed <= *p.FDs {
		p.FDSlotsReserved = *p.FDs - sum.Listed
	}
	n := sum.Listed
	p.FDs = &n
	p.FDRatio = Ratio(n+p.FDSlotsReserved, p.FDSoftLimit)
	return nil
}

// uidTasks counts the processes and threads whose real uid is uid, as
// RLIMIT_NPROC does. It reads every process's status: there is no cheaper
// per-user count in /proc.
func (r *Reader) uidTasks(ctx context.Context, uid int) (int, error) {
	if n, ok := r.uidCounts[uid]; ok {
		return n, nil
	}
	n, err := r.countUIDTasks(ctx, uid)
	if err == nil && r.uidCounts != nil {
		r.uidCounts[uid] = n
	}
	return n, err
}

func (r *Reader) countUIDTasks(ctx context.Context, uid int) (int, error) {
	pids, err := r.FS.PIDs()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 0, 2048)
	n := 0
	for i, pid := range pids {
		if i%1024 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		var st proc.Status
		st, buf, err = r.FS.ReadStatus(pid, buf)
		if err != nil {
			var perr *proc.ParseError
			if proc.IsGone(err) || errors.As(err, &perr) {
				continue
			}
			return 0, err
		}
		if st.UID == uid {
			n += max(st.Threads, 1)
		}
	}
	return n, nil
}

// threadError: the pid read is a thread of process tgid.
type threadError struct{ tid, tgid int }

func (e *threadError) Error() string {
	return fmt.Sprintf("pid %d is a thread of process %d", e.tid, e.tgid)
}

// readWaitEvidence reads, for a process holding zombies, the evidence the
// diagnosis weighs beyond the signal masks: whether it is blocked in wait
// right now (wchan), and for a namespace init, whether it is the host's.
// A refused read leaves the fact null: the diagnosis then claims less.
func (r *Reader) readWaitEvidence(p *Process) {
	if p.Zombies == 0 {
		return
	}
	if w, err := r.FS.Wchan(p.PID); err == nil && w != "" {
		waiting := w == "do_wait"
		p.WaitingInWait = &waiting
	}
	if p.NamespaceInit {
		if ns, err := r.FS.PIDNamespace(p.PID); err == nil {
			host := ns == proc.InitPIDNamespace
			p.HostInit = &host
		}
	}
}

// dirExists tells whether root/PID is still there.
func (r *Reader) dirExists(pid int) bool {
	_, err := os.Stat(r.FS.PIDPath(pid))
	return err == nil
}

// missing classifies a failed read of a file the reading cannot do
// without: a file absent from a pid directory that exists is named as
// missing, not taken for a process that exited.
func (r *Reader) missing(pid int, what, path string, err error) error {
	if proc.IsGone(err) && r.dirExists(pid) {
		return fmt.Errorf("pid %d: %s is missing (%s): not a pid directory the kernel would write", pid, path, what)
	}
	return classify(pid, what, path, err)
}

// optional records a failed read of a file the reading can do without:
// missing (the pid directory exists) or unparsable, it is named in
// Unread and nil returned; a refusal or a vanished process is returned.
func (r *Reader) optional(p *Process, what, path string, err error) error {
	var perr *proc.ParseError
	switch {
	case proc.IsGone(err) && r.dirExists(p.PID):
		p.addUnread(fmt.Sprintf("%s: %s is missing", what, path))
		return nil
	case errors.As(err, &perr):
		p.addUnread(fmt.Sprintf("%s: %v", what, err))
		return nil
	}
	var perm *PermissionError
	if errors.As(err, &perm) {
		return err
	}
	return classify(p.PID, what, path, err)
}

// kernelTasks reads the host's tasks against pid_max and threads-max (three
// small files); nil where the tree has not got them (a fixture, a
// container's /proc without sys/).
func (r *Reader) kernelTasks() *KernelTasks {
	k, err := r.FS.ReadKernelLimits()
	if err != nil {
		return nil
	}
	n, err := r.FS.HostTasks()
	if err != nil {
		return nil
	}
	return &KernelTasks{Tasks: n, PIDMax: k.PIDMax, ThreadsMax: k.ThreadsMax}
}

// Processes reads several processes in turn. One that exits meanwhile is
// left out (gone names the first, when it was asked for by pid, so
// that the caller can say so after showing the others); a refused read
// is returned as denied, its process kept.
func (r *Reader) Processes(ctx context.Context, pids []int, opt Options, asked func(pid int) bool) (ps []*Process, denied, gone error) {
	// One count of each uid's tasks for the whole selection: counting
	// reads every process's status, and a selection of 2,000 processes
	// of one user counted it 2,000 times.
	r.uidCounts = map[int]int{}
	defer func() { r.uidCounts = nil }()
	for _, pid := range pids {
		p, err := r.Process(ctx, pid, opt)
		var perm *PermissionError
		switch {
		case errors.Is(err, ErrNoProcess), errors.Is(err, ErrPIDReused):
			if asked(pid) && gone == nil {
				gone = err
			}
			continue
		case errors.As(err, &perm):
			denied = err
			if p == nil {
				continue // refused what the reading needs: nothing to show
			}
		case err != nil:
			return ps, nil, err
		}
		ps = append(ps, p)
	}
	return ps, denied, gone
}
