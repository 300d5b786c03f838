package proc

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// Host is one pass over every process: who holds zombies, who is nearest
// its fd limit, and how many tasks each uid runs against RLIMIT_NPROC.
type Host struct {
	Processes int        `json:"processes"`
	Threads   int        `json:"threads"`
	Zombies   int        `json:"zombies"`
	Parents   []Parent   `json:"parents"`  // processes holding zombie children, most first
	FDUsers   []FDUser   `json:"fd_users"` // nearest their soft RLIMIT_NOFILE, nearest first
	UIDs      []UIDUsage `json:"uids"`     // tasks per uid against RLIMIT_NPROC, nearest first
	// Denied lists reads the kernel refused, each with its fix.
	Denied []string `json:"denied,omitempty"`
}

// Parent is a process that holds zombie children.
type Parent struct {
	PID              int         `json:"pid"`
	PPID             int         `json:"ppid"`
	Comm             string      `json:"comm"`
	UID              int         `json:"uid"`
	User             string      `json:"user"`
	State            string      `json:"state"`
	Zombies          int         `json:"zombies"`
	AdoptedZombies   int         `json:"adopted_zombies"`
	OldestAgeSeconds float64     `json:"oldest_zombie_age_seconds"`
	NamespaceInit    bool        `json:"namespace_init"`
	Sigchld          Disposition `json:"sigchld"`
	SigchldBlocked   bool        `json:"sigchld_blocked"`
	oldest           Zombie
}

// Snapshot gives the parts of a Snapshot that the diagnosis reads.
func (p Parent) Snapshot() *Snapshot {
	return &Snapshot{
		PID: p.PID, PPID: p.PPID, Comm: p.Comm, State: p.State, UID: p.UID, User: p.User,
		NamespaceInit: p.NamespaceInit, Children: p.Zombies, Zombies: p.Zombies,
		AdoptedZombies: p.AdoptedZombies, DescendantZombies: p.Zombies,
		ZombieList: []Zombie{p.oldest}, Sigchld: p.Sigchld, SigchldBlocked: p.SigchldBlocked,
	}
}

// FDUser is a process's descriptors against its soft limit.
type FDUser struct {
	PID         int            `json:"pid"`
	Comm        string         `json:"comm"`
	UID         int            `json:"uid"`
	User        string         `json:"user"`
	FDs         int            `json:"fds"`
	FDSoftLimit Limit          `json:"fd_soft_limit"`
	FDRatio     float64        `json:"fd_ratio"`
	FDTypes     map[string]int `json:"fd_types,omitempty"`
	TCPStates   map[string]int `json:"tcp_states,omitempty"`
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
	NprocSoftLimit Limit   `json:"nproc_soft_limit"`
	Ratio          float64 `json:"nproc_ratio"`
}

// ScanOptions bound a scan's output and its costlier reads.
type ScanOptions struct {
	// Entries in each list (0: no bound).
	Parents, FDUsers, UIDs int
	FDTypes                bool // fd kinds and TCP states of the listed fd users
	// Include, if set, names processes to list among the fd users
	// whatever their rank (the exporter's --pid and --name).
	Include func(pid int, comm string) bool
}

// rec is what the pass keeps of one process.
type rec struct {
	stat
	uid    int
	fds    int
	hasFDs bool
	nofile Limit
	nproc  Limit
}

// Scan reads every process once. Processes that exit during the pass are
// skipped; reads the kernel refuses are named in Denied.
func (f *FS) Scan(opt ScanOptions) (*Host, error) {
	pids, err := f.pids()
	if err != nil {
		return nil, err
	}
	recs := make([]rec, len(pids))
	ok := make([]bool, len(pids))
	errs := make([]error, len(pids))
	live := f.real && f.root == "/proc"
	// The reads are independent and almost all kernel time: measured on
	// 2 cores with 10,000 processes, one reader per CPU halves the pass.
	parallel(len(pids), func(lo, hi int) {
		buf := make([]byte, 0, 2048)
		var st unix.Stat_t
		for i := lo; i < hi; i++ {
			recs[i], buf, ok[i], errs[i] = f.readRec(pids[i], buf, &st, live)
		}
	})
	h := &Host{}
	kept := recs[:0]
	for i := range recs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if !ok[i] {
			continue
		}
		r := recs[i]
		kept = append(kept, r)
		h.Processes++
		h.Threads += max(r.Threads, 1)
		if r.State == 'Z' {
			h.Zombies++
		}
	}
	h.Parents = f.parents(kept, opt.Parents)
	h.FDUsers = f.fdUsers(kept, opt, h)
	h.UIDs = f.uidUsage(kept, opt.UIDs)
	return h, nil
}

// readRec reads what the scan keeps of one process; ok is false when it
// exited meanwhile. status has all it needs of a live process (name,
// state, ppid, real uid, threads); stat, which costs as much again, is
// read only for a zombie's start time and exit status.
func (f *FS) readRec(pid int, buf []byte, st *unix.Stat_t, live bool) (r rec, _ []byte, ok bool, err error) {
	data, err := readRecord(f.pidFile(pid, "status"), buf)
	if err != nil {
		if isGone(err) {
			return r, buf, false, nil
		}
		return r, buf, false, err
	}
	buf = data
	status, err := parseStatus(data)
	if err != nil {
		return r, buf, false, fmt.Errorf("%s: %w", f.pidFile(pid, "status"), err)
	}
	r.uid = status.UID
	r.stat = stat{PID: pid, Comm: status.Name, State: status.State, PPID: status.PPID, Threads: status.Threads}
	if r.State == 'Z' {
		if r.stat, buf, err = f.readStat(pid, buf); err != nil {
			if isGone(err) {
				return r, buf, false, nil
			}
			return r, buf, false, err
		}
		return r, buf, true, nil
	}
	r.fds, r.hasFDs = f.fdCount(pid, st)
	r.nofile, r.nproc = f.pidLimits(pid, live, buf)
	return r, buf, true, nil
}

// parallel calls work on contiguous parts of [0, n), one per CPU, and
// waits for them all.
func parallel(n int, work func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), max(n/64, 1))
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() { work(lo, hi) })
	}
	wg.Wait()
}

// fdCount is the fd count from stat of the fd directory on a real procfs
// (Linux >= 6.2: any user may stat it), or a listing elsewhere.
func (f *FS) fdCount(pid int, st *unix.Stat_t) (int, bool) {
	path := f.pidFile(pid, "fd")
	if f.real {
		if err := unix.Stat(path, st); err != nil {
			return 0, false
		}
		if st.Size > 0 {
			return int(st.Size), true
		}
	}
	dir, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	return len(names), err == nil
}

// pidLimits gives the soft RLIMIT_NOFILE and RLIMIT_NPROC: with two
// prlimit calls on the live /proc where permitted (no text to format and
// parse), from the limits file otherwise.
func (f *FS) pidLimits(pid int, live bool, buf []byte) (nofile, nproc Limit) {
	if live {
		var a, b unix.Rlimit
		if unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &a) == nil && unix.Prlimit(pid, unix.RLIMIT_NPROC, nil, &b) == nil {
			return Limit(a.Cur), Limit(b.Cur)
		}
	}
	data, err := readRecord(f.pidFile(pid, "limits"), buf)
	if err != nil {
		return Unlimited, Unlimited
	}
	l, err := parseLimits(data)
	if err != nil {
		return Unlimited, Unlimited
	}
	return l.NofileSoft, l.NprocSoft
}

func (f *FS) parents(recs []rec, top int) []Parent {
	byPID := make(map[int]*rec, len(recs))
	for i := range recs {
		byPID[recs[i].PID] = &recs[i]
	}
	now := f.Now()
	held := map[int]*Parent{}
	started := map[int]uint64{} // parents' start ticks, from their stat
	buf := make([]byte, 0, 2048)
	for _, r := range recs {
		if r.State != 'Z' {
			continue
		}
		parent, ok := byPID[r.PPID]
		if !ok {
			continue // the parent exited during the pass
		}
		if _, ok := started[parent.PID]; !ok {
			var ps stat
			var err error
			if ps, buf, err = f.readStat(parent.PID, buf); err != nil {
				continue // exited since
			}
			started[parent.PID] = ps.StartTime
		}
		p := held[r.PPID]
		if p == nil {
			p = &Parent{PID: parent.PID, PPID: parent.PPID, Comm: parent.Comm, UID: parent.uid,
				User: f.userName(parent.uid), State: string(parent.State)}
			held[r.PPID] = p
		}
		p.Zombies++
		if r.StartTime < started[parent.PID] {
			p.AdoptedZombies++
		}
		z, err := f.zombie(r.stat, now, Options{})
		if err == nil && (p.Zombies == 1 || z.start.Before(p.oldest.start)) {
			p.oldest = z
			p.OldestAgeSeconds = z.AgeSeconds
		}
	}
	list := make([]Parent, 0, len(held))
	for _, p := range held {
		list = append(list, *p)
	}
	slices.SortFunc(list, func(a, b Parent) int {
		return cmp.Or(b.Zombies-a.Zombies, a.PID-b.PID)
	})
	list = bound(list, top)
	// Only the listed parents need their signal masks and namespace.
	for i := range list {
		data, err := readRecord(f.pidFile(list[i].PID, "status"), buf)
		if err != nil {
			continue
		}
		buf = data
		if st, err := parseStatus(data); err == nil {
			sc := st.sigchld()
			list[i].Sigchld, list[i].SigchldBlocked, list[i].NamespaceInit = sc.Disposition, sc.Blocked, st.NSInit
		}
	}
	return list
}

func (f *FS) fdUsers(recs []rec, opt ScanOptions, h *Host) []FDUser {
	var list []FDUser
	for _, r := range recs {
		if !r.hasFDs {
			continue
		}
		u := FDUser{PID: r.PID, Comm: r.Comm, UID: r.uid, FDs: r.fds, FDSoftLimit: r.nofile}
		if r.nofile != Unlimited && r.nofile > 0 {
			u.FDRatio = math.Round(float64(r.fds)/float64(r.nofile)*1e4) / 1e4
		}
		list = append(list, u)
	}
	slices.SortFunc(list, func(a, b FDUser) int {
		return cmp.Or(cmp.Compare(b.FDRatio, a.FDRatio), b.FDs-a.FDs, a.PID-b.PID)
	})
	if top := opt.FDUsers; top > 0 && len(list) > top {
		kept := list[:top:top] // the top, then whoever Include names
		for _, u := range list[top:] {
			if opt.Include != nil && opt.Include(u.PID, u.Comm) {
				kept = append(kept, u)
			}
		}
		list = kept
	}
	for i := range list {
		list[i].User = f.userName(list[i].UID)
		if !opt.FDTypes {
			continue
		}
		kinds, sockets, err := f.fdKinds(list[i].PID)
		switch {
		case errors.Is(err, fs.ErrPermission):
			h.Denied = append(h.Denied, fmt.Sprintf("pid %d: fd kinds: permission denied (%s)", list[i].PID, ptraceHint))
			continue
		case err != nil:
			continue // exited
		}
		list[i].FDTypes = kinds
		if kinds[FDSocket] > 0 {
			list[i].TCPStates, _ = f.tcpSocketStates(list[i].PID, sockets)
		}
	}
	return list
}

func (f *FS) uidUsage(recs []rec, top int) []UIDUsage {
	by := map[int]*UIDUsage{}
	for _, r := range recs {
		u := by[r.uid]
		if u == nil {
			u = &UIDUsage{UID: r.uid, NprocSoftLimit: Unlimited}
			by[r.uid] = u
		}
		u.Processes++
		u.Tasks += max(r.Threads, 1)
		if r.State == 'Z' {
			u.Zombies++
		} else if r.nproc < u.NprocSoftLimit {
			u.NprocSoftLimit = r.nproc
		}
	}
	list := make([]UIDUsage, 0, len(by))
	for _, u := range by {
		if u.NprocSoftLimit != Unlimited && u.NprocSoftLimit > 0 {
			u.Ratio = math.Round(float64(u.Tasks)/float64(u.NprocSoftLimit)*1e4) / 1e4
		}
		u.User = f.userName(u.UID)
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
