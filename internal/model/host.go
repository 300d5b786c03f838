package model

import (
	"cmp"
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Host is one pass over every process: who holds zombies, who is nearest
// its fd limit, and how many tasks each uid runs against RLIMIT_NPROC.
// Its lists hold the same Process model as --pid, filled with the cheaper
// reads the question allows.
type Host struct {
	Processes int
	Threads   int
	Zombies   int
	Parents   []*Process // processes holding zombie children, most first
	FDUsers   []*Process // nearest their soft RLIMIT_NOFILE, nearest first
	UIDs      []UIDUsage // tasks per uid against RLIMIT_NPROC, nearest first
	// Denied lists reads the kernel refused, each with its fix.
	Denied []string
	// Skipped counts pid directories whose files did not parse.
	Skipped int
	// Uncounted lists the processes whose open fds the kernel refused to
	// count (their fd directory, as hidepid or an older kernel's listing
	// refuses another user): left out of the fd users, never counted as
	// 0. Denied, by contrast, is detail (fd kinds, TCP states) of
	// processes whose counts were read.
	Uncounted []string
	// Counts: every process's counts, with HostOptions.Counts (for the
	// host-wide watch, which ranks growth, not nearness).
	Counts []Counts
	// Read counts the processes whose counts this pass read; an
	// incremental Scan keeps the others at their last reading.
	Read int
	// Sources says how each source did over the pass.
	Sources []SourceResult
	// Kernel: the host's limits on tasks and files; nil where unreadable.
	Kernel *Kernel
	// Cgroups: cgroups that hold zombies or have a pids.max, most urgent
	// first, from the host sources (cgroup).
	Cgroups []CgroupUse
	// AllCgroups: every cgroup the host sources saw, unbounded (for the
	// host-wide watch, which ranks their growth).
	AllCgroups []CgroupUse
	// Holders: every parent holding zombies, listed or not (Parents is
	// bounded by --top), so that sums over cgroups count them all.
	Holders []Holder
}

// Holder is a parent holding zombies, as counted by the pass.
type Holder struct {
	PID, Zombies int
	Comm         string
}

// Kernel is the host's tasks and open files against the kernel's limits.
type Kernel struct {
	PIDMax     int    `json:"pid_max"`
	Pids       int    `json:"pids"` // tasks: every process and thread, each holds a pid
	ThreadsMax int    `json:"threads_max"`
	Threads    int    `json:"threads"`
	FileNr     int    `json:"file_nr"`
	FileMax    uint64 `json:"file_max"`
}

// CgroupUse is one cgroup (a container, a pod, a unit) in the host view.
type CgroupUse struct {
	Cgroup
	Zombies int `json:"zombies"` // held by every parent inside it, listed or not
	// WorstParent: the parent inside holding the most zombies.
	WorstParent     int     `json:"worst_parent,omitempty"`
	WorstParentComm string  `json:"worst_parent_comm,omitempty"`
	Ratio           float64 `json:"pids_ratio"` // pids_current over pids_max (0 without a limit)
}

// HostSource adds to a host reading what a source sees across the host
// (the cgroups near their pids.max), once per pass.
type HostSource interface {
	Name() string
	Host(ctx context.Context, h *Host) error
}

// UIDUsage is what RLIMIT_NPROC counts for one uid.
type UIDUsage struct {
	UID       int    `json:"uid"`
	User      string `json:"user"`
	Processes int    `json:"processes"`
	Tasks     int    `json:"tasks"` // processes and threads, zombies included
	Zombies   int    `json:"zombies"`
	// NprocSoftLimit is the lowest soft RLIMIT_NPROC among the uid's
	// processes: fork fails in that one first.
	NprocSoftLimit proc.Limit `json:"nproc_soft_limit"`
	Ratio          float64    `json:"nproc_ratio"`
}

// Counts is what a host pass knows of one process without further reads.
type Counts struct {
	PID, PPID, UID int
	Comm           string
	Zombie         bool
	FDs            int // -1 where unreadable
	Threads        int
	FDSoftLimit    proc.Limit
	NprocSoftLimit proc.Limit
	// Cgroup: the cgroup its tasks are counted in (the pids
	// controller's), from a Scan with Cgroups; "" where not read.
	Cgroup string
}

// HostOptions bound a scan's output and its costlier reads.
type HostOptions struct {
	// Entries in each list (0: no bound).
	Parents, FDUsers, UIDs int
	FDTypes                bool // fd kinds (and the sources' facts) of the listed fd users
	// Counts lists every process's counts in Host.Counts instead of
	// ranking the fd users.
	Counts bool
	// Include, if set, names processes to list among the fd users
	// whatever their rank (the exporter's --pid and --name).
	Include func(pid int, comm string) bool
}

// rec is what the pass keeps of one process.
type rec struct {
	proc.Stat
	uid        int
	sigchld    proc.Sigchld
	nsInit     bool // PID 1 of the reader's own pid namespace
	nestedInit bool // PID 1 of a nested pid namespace
	fds        int
	hasFDs     bool
	fdErr      error // why the fds could not be counted
	limits     proc.Limits
	skipped    bool
}

// Host reads every process once. Processes that exit during the pass are
// skipped; reads the kernel refuses are named in Denied.
func (r *Reader) Host(ctx context.Context, opt HostOptions) (*Host, error) {
	pids, err := r.FS.PIDs()
	if err != nil {
		return nil, err
	}
	recs := make([]rec, len(pids))
	ok := make([]bool, len(pids))
	errs := eachPID(ctx, pids, func(i int, buf []byte) (_ []byte, err error) {
		recs[i], buf, ok[i], err = r.readRec(pids[i], buf)
		return buf, err
	})
	h := &Host{Read: len(pids)}
	kept := recs[:0]
	for i := range recs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if recs[i].skipped {
			h.Skipped++
		}
		if ok[i] {
			kept = append(kept, recs[i])
		}
	}
	return r.hostFrom(ctx, h, kept, opt)
}

// eachPID calls read for every pid's index, one reader per CPU, each with
// a buffer of its own, and gives each call's error; when ctx ends, the
// readers stop and the indices left hold ctx's error. Readers take 32 pids
// at a time: processes do not cost the same (kernel threads' fd
// directories are listed), and halves of the list would not end together.
func eachPID(ctx context.Context, pids []int, read func(i int, buf []byte) ([]byte, error)) []error {
	errs := make([]error, len(pids))
	const chunk = 32
	var next atomic.Int64
	work := func() {
		buf := make([]byte, 0, 2048)
		for {
			lo := int(next.Add(chunk)) - chunk
			if lo >= len(pids) {
				return
			}
			if err := ctx.Err(); err != nil {
				for i := lo; i < min(lo+chunk, len(pids)); i++ {
					errs[i] = err
				}
				continue
			}
			for i := lo; i < min(lo+chunk, len(pids)); i++ {
				buf, errs[i] = read(i, buf)
			}
		}
	}
	workers := min(runtime.GOMAXPROCS(0), max(len(pids)/64, 1))
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	return errs
}

// hostFrom ranks and enriches a pass's records.
func (r *Reader) hostFrom(ctx context.Context, h *Host, kept []rec, opt HostOptions) (*Host, error) {
	r.beginPass()
	for _, rc := range kept {
		h.Processes++
		h.Threads += max(rc.Threads, 1)
		if rc.State == 'Z' {
			h.Zombies++
		}
		if rc.fdErr != nil && !rc.KernelThread() { // a kernel thread has no fd table to count
			h.Uncounted = append(h.Uncounted, rc.fdErr.Error())
		}
	}
	results := map[string]*SourceResult{}
	h.Parents = r.parents(ctx, kept, opt.Parents, h, results)
	if opt.Counts {
		h.Counts = countsOf(kept)
	} else {
		h.FDUsers = r.fdUsers(ctx, kept, opt, h, results)
	}
	h.UIDs = r.uidUsage(kept, opt.UIDs)
	h.Kernel = r.kernel(h.Threads)
	r.runHostSources(ctx, h, results)
	return h, ctx.Err()
}

// countsOf is every process's counts, for a watch's own ranking.
func countsOf(kept []rec) []Counts {
	counts := make([]Counts, len(kept))
	for i, rc := range kept {
		fds := rc.fds
		if !rc.hasFDs {
			fds = -1
		}
		counts[i] = Counts{PID: rc.PID, PPID: rc.PPID, UID: rc.uid, Comm: rc.Comm, Zombie: rc.State == 'Z',
			FDs: fds, Threads: rc.Threads, FDSoftLimit: rc.limits.NofileSoft, NprocSoftLimit: rc.limits.NprocSoft}
	}
	return counts
}

// kernel is the host's tasks and files against the kernel's limits; nil
// where the tree has not got them. The limits bind every task of the
// kernel: counted as --pid counts them (loadavg's total, the kernel's own
// count, the same whatever pid namespace the tree shows), not the tasks
// this tree lists (threads: a container's /proc lists its own only).
func (r *Reader) kernel(threads int) *Kernel {
	k, err := r.FS.ReadKernelLimits()
	if err != nil {
		return nil
	}
	tasks := threads
	if n, err := r.FS.HostTasks(); err == nil {
		tasks = n
	}
	return &Kernel{PIDMax: k.PIDMax, Pids: tasks, ThreadsMax: k.ThreadsMax, Threads: tasks,
		FileNr: k.FileNr, FileMax: k.FileMax}
}

// runHostSources runs the host sources on h and records, for every
// source, how it did in this reading (results: what the per-process runs
// added up to).
func (r *Reader) runHostSources(ctx context.Context, h *Host, results map[string]*SourceResult) {
	for _, hs := range r.HostSources {
		start := time.Now()
		err := hs.Host(ctx, h)
		addResult(results, hs.Name(), time.Since(start), err)
	}
	for _, s := range r.Sources {
		res := SourceResult{Name: s.Name()}
		if got := results[s.Name()]; got != nil {
			res = *got
		}
		if pf, ok := s.(passFailer); ok && res.Err == nil {
			res.Err = pf.PassErr()
		}
		h.Sources = append(h.Sources, res)
	}
}

// readRec reads what the scan keeps of one process; ok is false when it
// exited meanwhile or its files did not parse (then skipped is set).
// status has all it needs of a live process (name, state, ppid, real uid,
// threads, signal masks); stat, which costs as much again, is read only
// for a zombie's start time and exit status.
func (r *Reader) readRec(pid int, buf []byte) (rc rec, _ []byte, ok bool, err error) {
	status, buf, err := r.FS.ReadStatus(pid, buf)
	switch {
	case err == nil:
		rc.uid, rc.sigchld = status.UID, status.Sigchld()
		rc.nsInit, rc.nestedInit = pid == 1 && len(status.NSpid) <= 1, status.NSInit()
		rc.Stat = proc.Stat{PID: pid, Comm: status.Name, State: status.State, PPID: status.PPID, Threads: status.Threads}
		if status.Kthread {
			rc.Flags = proc.PFKthread
		}
	case proc.IsGone(err) && r.dirExists(pid):
		// A tree with stat but no status: stat has the identity, the
		// directory's owner the uid; the signal masks stay unknown.
		if rc.Stat, buf, err = r.FS.ReadStat(pid, buf); err != nil {
			return r.skip(rc, buf, err)
		}
		if rc.uid, err = r.FS.Owner(pid); err != nil {
			return r.skip(rc, buf, err)
		}
		rc.sigchld.Disposition = proc.SigchldDefault
	default:
		return r.skip(rc, buf, err)
	}
	if rc.State == 'Z' {
		if rc.Stat, buf, err = r.FS.ReadStat(pid, buf); err != nil {
			return r.skip(rc, buf, err)
		}
		return rc, buf, true, nil
	}
	var fdErr error
	rc.fds, _, fdErr = r.FS.FDCount(pid)
	rc.hasFDs = fdErr == nil
	if isPermission(fdErr) {
		rc.fdErr = classify(pid, "fds", r.FS.PIDFile(pid, "fd"), fdErr)
	}
	if rc.limits, buf, err = r.FS.ReadLimits(pid, buf); err != nil {
		rc.limits = proc.Limits{NofileSoft: proc.Unlimited, NofileHard: proc.Unlimited, NprocSoft: proc.Unlimited, NprocHard: proc.Unlimited}
	}
	return rc, buf, true, nil
}

// skip sorts a failed read: gone and unparsable processes are left out
// (the latter counted), anything else fails the pass.
func (r *Reader) skip(rc rec, buf []byte, err error) (rec, []byte, bool, error) {
	var perr *proc.ParseError
	switch {
	case proc.IsGone(err):
		return rc, buf, false, nil
	case errors.As(err, &perr):
		rc.skipped = true
		return rc, buf, false, nil
	}
	return rc, buf, false, err
}

func (r *Reader) parents(ctx context.Context, recs []rec, top int, h *Host, results map[string]*SourceResult) []*Process {
	held, zombiesOf := r.holders(recs)
	list := make([]*Process, 0, len(held))
	for _, p := range held {
		p.DescendantZombies = p.Zombies
		list = append(list, p)
	}
	slices.SortFunc(list, func(a, b *Process) int {
		return cmp.Or(b.Zombies-a.Zombies, a.PID-b.PID)
	})
	h.Holders = make([]Holder, len(list))
	for i, p := range list {
		h.Holders[i] = Holder{PID: p.PID, Zombies: p.Zombies, Comm: p.Comm}
	}
	list = bound(list, top)
	for _, p := range list {
		// The exit ages of the listed parents' zombies judge whether they
		// are reaped; the host view then keeps the oldest zombie only,
		// for the parent's "oldest" column.
		zs := zombiesOf[p.PID]
		r.exitAges(zs, nil)
		p.ZombieList = zs
		p.judgeFromExitAges()
		sortZombies(zs)
		p.ZombieList = zs[:1]
		r.readWaitEvidence(p)
		h.addDenied(r.enrich(ctx, p, results))
		p.Diagnose()
	}
	return list
}

// holders is every parent holding zombies in the pass's records, with
// its zombies: made from the records, with one stat of the parent for
// its start time (the adopted rule). A parent gone or reused since is
// left out.
func (r *Reader) holders(recs []rec) (map[int]*Process, map[int][]Zombie) {
	byPID := make(map[int]*rec, len(recs))
	for i := range recs {
		byPID[recs[i].PID] = &recs[i]
	}
	now := r.Now()
	held := map[int]*Process{}
	zombiesOf := map[int][]Zombie{}
	buf := make([]byte, 0, 2048)
	for _, z := range recs {
		if z.State != 'Z' {
			continue
		}
		parent, ok := byPID[z.PPID]
		if !ok {
			continue // the parent exited during the pass
		}
		p := held[parent.PID]
		if p == nil {
			var ps proc.Stat
			var err error
			if ps, buf, err = r.FS.ReadStat(parent.PID, buf); err != nil || ps.PPID != parent.PPID {
				continue // exited since, or reused
			}
			p = &Process{PID: parent.PID, PPID: parent.PPID, Comm: parent.Comm, UID: parent.uid,
				User: r.Users.Name(parent.uid), State: string(parent.State), Threads: parent.Threads,
				NamespaceInit: parent.nsInit || parent.nestedInit, nestedInit: parent.nestedInit, Sigchld: parent.sigchld.Disposition,
				SigchldBlocked: parent.sigchld.Blocked, SigchldPending: parent.sigchld.Pending,
				startTicks: ps.StartTime, ZombieList: []Zombie{}}
			held[parent.PID] = p
		}
		zz, err := r.zombie(z.Stat, now, Options{})
		if err != nil {
			continue
		}
		zz.Adopted = adopted(z.StartTime, p.startTicks)
		p.Zombies++
		p.Children++
		if zz.Adopted {
			p.AdoptedZombies++
		}
		zombiesOf[p.PID] = append(zombiesOf[p.PID], zz)
	}
	return held, zombiesOf
}

func (r *Reader) fdUsers(ctx context.Context, recs []rec, opt HostOptions, h *Host, results map[string]*SourceResult) []*Process {
	// Ranked as records first (a host has thousands), then the ones
	// listed made Processes.
	type user struct {
		rc    *rec
		ratio float64
	}
	users := make([]user, 0, len(recs))
	for i := range recs {
		// Kernel threads have no fd table of their own (their count is
		// 0 against a limit they never meet): not fd users.
		if rc := &recs[i]; rc.hasFDs && !rc.KernelThread() {
			users = append(users, user{rc, Ratio(rc.fds, rc.limits.NofileSoft)})
		}
	}
	slices.SortFunc(users, func(a, b user) int {
		return cmp.Or(cmp.Compare(b.ratio, a.ratio), b.rc.fds-a.rc.fds, a.rc.PID-b.rc.PID)
	})
	if top := opt.FDUsers; top > 0 && len(users) > top {
		kept := users[:top:top] // the top, then whoever Include names
		for _, u := range users[top:] {
			if opt.Include != nil && opt.Include(u.rc.PID, u.rc.Comm) {
				kept = append(kept, u)
			}
		}
		users = kept
	}
	list := make([]*Process, len(users))
	for i, u := range users {
		rc, n := u.rc, u.rc.fds
		list[i] = &Process{PID: rc.PID, PPID: rc.PPID, Comm: rc.Comm, UID: rc.uid, State: string(rc.State),
			Threads: rc.Threads, FDs: &n, FDSoftLimit: rc.limits.NofileSoft, FDHardLimit: rc.limits.NofileHard,
			NprocSoftLimit: rc.limits.NprocSoft, NprocHardLimit: rc.limits.NprocHard,
			FDRatio: u.ratio, ZombieList: []Zombie{}}
	}
	nearestFirst := func(a, b *Process) int {
		return cmp.Or(cmp.Compare(b.FDRatio, a.FDRatio), *b.FDs-*a.FDs, a.PID-b.PID)
	}
	for _, p := range list {
		p.User = r.Users.Name(p.UID)
		if !opt.FDTypes {
			continue
		}
		err := r.readFDKinds(p)
		if errors.Is(err, ErrNoProcess) {
			continue // exited
		}
		h.addDenied(err)
		if err == nil {
			h.addDenied(r.enrich(ctx, p, results))
		}
	}
	// The listing may count differently from the pass (fds opened or
	// closed since): the order follows what is shown.
	slices.SortStableFunc(list, nearestFirst)
	return list
}

// addDenied names a refused read; other errors of a listed process (it
// exited) leave its facts null.
func (h *Host) addDenied(err error) {
	var perm *PermissionError
	if errors.As(err, &perm) {
		h.Denied = append(h.Denied, err.Error())
	}
}

func (r *Reader) uidUsage(recs []rec, top int) []UIDUsage {
	by := map[int]*UIDUsage{}
	for _, rc := range recs {
		u := by[rc.uid]
		if u == nil {
			u = &UIDUsage{UID: rc.uid, NprocSoftLimit: proc.Unlimited}
			by[rc.uid] = u
		}
		u.Processes++
		u.Tasks += max(rc.Threads, 1)
		if rc.State == 'Z' {
			u.Zombies++
		} else if rc.limits.NprocSoft < u.NprocSoftLimit {
			u.NprocSoftLimit = rc.limits.NprocSoft
		}
	}
	list := make([]UIDUsage, 0, len(by))
	for _, u := range by {
		u.Ratio = Ratio(u.Tasks, u.NprocSoftLimit)
		u.User = r.Users.Name(u.UID)
		list = append(list, *u)
	}
	slices.SortFunc(list, func(a, b UIDUsage) int {
		return cmp.Or(cmp.Compare(b.Ratio, a.Ratio), b.Tasks-a.Tasks, a.UID-b.UID)
	})
	return bound(list, top)
}

func bound[T any](list []T, top int) []T {
	if top > 0 && len(list) > top {
		return list[:top]
	}
	return list
}
