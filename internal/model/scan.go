package model

import (
	"context"
	"sync"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Scan is a host reading kept from pass to pass, for the host-wide watch
// and the exporter: what does not change while a process lives (its name,
// uid, namespace role) and what rarely does (its limits) is read when the
// process is first seen and again every FullEvery; each pass reads only
// what can change, the fd count and the threads (two stats), and of a
// process whose counts stand still, less and less often, at most MaxAge
// apart. A process is known by the inode of its /proc fd directory, which
// the kernel gives anew to each process: a pid reused, or credentials
// changed, is read whole again.
//
// On a tree that is not a real procfs (a fixture) every pass reads whole.
type Scan struct {
	r *Reader
	// MaxAge bounds how long the counts of a process that stood still go
	// unread (default 8s); FullEvery, its name, uid and limits (default 60s).
	MaxAge, FullEvery time.Duration
	// Cgroups: read each process's cgroup (the pids controller's path)
	// with its name and uid, for Counts.Cgroup.
	Cgroups bool

	mu    sync.Mutex // one pass at a time
	procs map[int]*scanned
	// due: pids the next pass reads whatever their back-off (dueAll:
	// every process), from Due.
	due    map[int]bool
	dueAll bool
}

// Due makes the next pass read these pids' counts (all: every process's)
// whatever their back-off: the process events name the pids that exited
// or were reaped, so zombies appear and vanish at the next sample.
func (s *Scan) Due(pids []int, all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.due == nil {
		s.due = map[int]bool{}
	}
	for _, pid := range pids {
		s.due[pid] = true
	}
	s.dueAll = s.dueAll || all
}

// scanned is what a Scan keeps of one process.
type scanned struct {
	rec
	cgroup string // with Scan.Cgroups
	ino    uint64 // of /proc/PID/fd
	owner  int    // the fd directory's owner
	readAt time.Time
	every  time.Duration // until the counts are read again
	fullAt time.Time
	gone   bool
}

// NewScan starts an incremental host reading.
func (r *Reader) NewScan() *Scan {
	return &Scan{r: r, MaxAge: 8 * time.Second, FullEvery: time.Minute}
}

// Host reads the host as Reader.Host does, from what changed since the
// last pass. Host.Read says how many processes this pass read.
func (s *Scan) Host(ctx context.Context, opt HostOptions) (*Host, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.r
	if !r.FS.Real() {
		return r.Host(ctx, opt)
	}
	pids, err := r.FS.PIDs()
	if err != nil {
		return nil, err
	}
	now := r.Now()
	next := make([]*scanned, len(pids))
	read := make([]bool, len(pids))
	errs := eachPID(ctx, pids, func(i int, buf []byte) (_ []byte, err error) {
		next[i], read[i], buf, err = s.pass(pids[i], s.procs[pids[i]], now, buf)
		return buf, err
	})
	h := &Host{}
	procs := make(map[int]*scanned, len(pids))
	kept := make([]rec, 0, len(pids))
	for i, e := range next {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if read[i] {
			h.Read++
		}
		if e == nil || e.gone {
			continue
		}
		if e.skipped {
			h.Skipped++
			continue
		}
		procs[e.PID] = e
	}
	cgroups := map[int]string{}
	// A zombie whose parent has gone was handed to a reaper: its ppid is
	// read again.
	for _, e := range procs {
		if e.State == 'Z' && procs[e.PPID] == nil {
			if st, _, err := r.FS.ReadStat(e.PID, nil); err == nil {
				e.PPID = st.PPID
			}
		}
		kept = append(kept, e.rec)
		if e.cgroup != "" {
			cgroups[e.PID] = e.cgroup
		}
	}
	s.procs = procs
	s.due, s.dueAll = nil, false
	h, err = r.hostFrom(ctx, h, kept, opt)
	if h != nil && s.Cgroups {
		for i := range h.Counts {
			h.Counts[i].Cgroup = cgroups[h.Counts[i].PID]
		}
	}
	return h, err
}

// pass brings one process's entry up to date; read says whether it read
// anything. The returned entry is new whenever it differs from old, so
// that the last pass's map stays unchanged while the workers read it.
func (s *Scan) pass(pid int, old *scanned, now time.Time, buf []byte) (_ *scanned, read bool, _ []byte, _ error) {
	r := s.r
	if old == nil || now.Sub(old.fullAt) >= s.FullEvery {
		e, buf, err := s.full(pid, old, now, buf)
		return e, true, buf, err
	}
	if now.Sub(old.readAt) < old.every && !s.dueAll && !s.due[pid] {
		return old, false, buf, nil
	}
	n, ino, owner, err := r.FS.FDDir(pid)
	switch {
	case proc.IsGone(err):
		return &scanned{gone: true}, true, buf, nil
	case err != nil || ino != old.ino || owner != old.owner:
		e, buf, err := s.full(pid, nil, now, buf)
		return e, true, buf, err
	}
	e := *old
	e.readAt = now
	switch {
	case old.State == 'Z':
		// A zombie does not change until it is reaped.
	case n == 0 && old.fds == 0 && (old.PPID == 2 || pid == 2):
		// A kernel thread: no fds, ever.
	case n == 0:
		// Exited (a zombie has no fd table), or a process without fds.
		e, buf, err := s.full(pid, old, now, buf)
		return e, true, buf, err
	default:
		threads, err := r.FS.TaskCount(pid)
		if proc.IsGone(err) {
			return &scanned{gone: true}, true, buf, nil
		}
		if err == nil {
			e.Threads = threads
		}
		e.fds = n
	}
	if e.fds != old.fds || e.Threads != old.Threads {
		e.every = 0
	} else {
		e.every = min(max(2*old.every, time.Second/2), s.MaxAge)
	}
	return &e, true, buf, nil
}

// full reads a process whole, as the one-shot pass does, with its fd
// directory's identity. The first full read of a process is dated back by
// a share of FullEvery that follows its pid, so that the full reads of
// processes first seen together spread over later passes.
func (s *Scan) full(pid int, old *scanned, now time.Time, buf []byte) (*scanned, []byte, error) {
	// The identity first: were the pid reused before the reads below,
	// the next pass would see another inode and read it whole again.
	_, ino, owner, err := s.r.FS.FDDir(pid)
	if err != nil {
		ino, owner = 0, -1 // gone, or a tree to read whole every pass
	}
	rc, buf, ok, err := s.r.readRec(pid, buf)
	if err != nil {
		return nil, buf, err
	}
	if !ok {
		if rc.skipped {
			return &scanned{rec: rc}, buf, nil
		}
		return &scanned{gone: true}, buf, nil
	}
	e := &scanned{rec: rc, ino: ino, owner: owner, readAt: now, fullAt: now}
	if s.Cgroups {
		if lines, err := s.r.FS.ReadCgroup(pid); err == nil {
			e.cgroup = proc.PidsPath(lines)
		}
	}
	if old == nil || old.ino != ino {
		e.fullAt = now.Add(-s.FullEvery * time.Duration(pid%64) / 64)
	}
	return e, buf, nil
}
