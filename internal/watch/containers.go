package watch

import (
	"cmp"
	"path"
	"slices"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cgroup"
	"github.com/zombiewatch/zombiewatch/internal/model"
)

// ContainerGrowth is one cgroup (a container, a pod's container, a
// systemd unit) whose processes' tasks, fds or zombies grow over the
// window, or whose pids.max refused forks in it.
type ContainerGrowth struct {
	Cgroup      string `json:"cgroup"`
	Unit        string `json:"unit,omitempty"`
	Runtime     string `json:"runtime,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	PodUID      string `json:"pod_uid,omitempty"`
	// Pids: its tasks (threads and zombies of the processes in it, what
	// pids.current counts), and their growth.
	Pids       int     `json:"pids"`
	PidsPerMin float64 `json:"pids_per_min"`
	// FDs: the open fds of its processes.
	FDs       int     `json:"fds"`
	FDsPerMin float64 `json:"fds_per_min"`
	// Zombies: held by the parents in it.
	Zombies       int     `json:"zombies"`
	ZombiesPerMin float64 `json:"zombies_per_min"`
	// PidsCgroup: the cgroup (itself or an ancestor: a pod) whose pids.max
	// binds its forks, with pids.current there and its growth; absent
	// where none has one.
	PidsCgroup      string    `json:"pids_cgroup,omitempty"`
	PidsCurrent     *int      `json:"pids_current,omitempty"`
	PidsMax         *int      `json:"pids_max"`
	RefusedInWindow int       `json:"pids_refused_in_window"`
	WorstParent     int       `json:"worst_parent,omitempty"`
	WorstParentComm string    `json:"worst_parent_comm,omitempty"`
	Since           time.Time `json:"since"`
	// LimitInSeconds: when pids.current reaches pids.max at its rate.
	LimitInSeconds *float64 `json:"limit_in_seconds"`
}

// cgCounts is one cgroup's sums in one sample.
type cgCounts struct {
	pids, fds, zombies int32
	limitPids, refused int32 // of the pids.max cgroup
}

type cgHist struct {
	runs[cgCounts]
	limit     *model.CgroupUse // the pids.max cgroup, as last read
	worst     int
	worstComm string
	seq       int
}

// containers sums the processes of each cgroup (Counts.Cgroup), keeps the
// sums' history and ranks the cgroups by growth.
func (s *HostSampler) containers(h *model.Host, now time.Time, window int, at func(int) time.Time) []ContainerGrowth {
	if s.cgroups == nil {
		s.cgroups = map[string]*cgHist{}
	}
	limits := map[string]*model.CgroupUse{}
	for i, u := range h.AllCgroups {
		if u.PidsMax != nil {
			key := u.PidsCgroup
			if key == "" {
				key = u.Path
			}
			limits[key] = &h.AllCgroups[i]
		}
	}
	sums, worsts := cgroupSums(h.Counts)
	for cg, sum := range sums {
		hh := s.cgroups[cg]
		if hh == nil {
			hh = &cgHist{runs: runs[cgCounts]{first: s.seq}}
			s.cgroups[cg] = hh
		}
		hh.limit = nearestLimit(limits, cg)
		if l := hh.limit; l != nil {
			if l.PidsCurrent != nil {
				sum.limitPids = int32(*l.PidsCurrent)
			}
			if l.PidsRefused != nil {
				sum.refused = int32(*l.PidsRefused)
			}
		}
		w := worsts[cg]
		hh.worst, hh.worstComm, hh.seq = w.pid, w.comm, s.seq
		hh.add(s.seq, window, *sum)
	}
	out := []ContainerGrowth{}
	for key, hh := range s.cgroups {
		if hh.seq != s.seq {
			delete(s.cgroups, key) // a cgroup without processes is forgotten
			continue
		}
		if g, ok := cgGrowth(key, hh, s.seq, window, at); ok {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b ContainerGrowth) int {
		return cmp.Or(soonest(a.LimitInSeconds, b.LimitInSeconds), b.RefusedInWindow-a.RefusedInWindow,
			cmp.Compare(b.ZombiesPerMin, a.ZombiesPerMin), cmp.Compare(b.PidsPerMin, a.PidsPerMin),
			cmp.Compare(b.FDsPerMin, a.FDsPerMin), cmp.Compare(a.Cgroup, b.Cgroup))
	})
	return out
}

// worstParent is the process of a cgroup holding the most zombies.
type worstParent struct {
	pid     int
	comm    string
	zombies int32
}

// cgroupSums sums the processes of each cgroup: pids (threads and the
// zombies its processes hold), fds and zombies, with the parent holding
// the most zombies in each.
func cgroupSums(counts []model.Counts) (map[string]*cgCounts, map[string]worstParent) {
	of := map[int]string{} // pid -> cgroup
	sums := map[string]*cgCounts{}
	for _, c := range counts {
		// A zombie's own cgroup file says "/" (an exited task leaves its
		// cgroup) while pids.current still counts it where it lived: it
		// is counted with its parent, below.
		if c.Cgroup == "" || c.Zombie {
			continue
		}
		of[c.PID] = c.Cgroup
		sum := sums[c.Cgroup]
		if sum == nil {
			sum = &cgCounts{}
			sums[c.Cgroup] = sum
		}
		sum.pids += int32(max(c.Threads, 1))
		if c.FDs > 0 {
			sum.fds += int32(c.FDs)
		}
	}
	held := map[int]int32{}
	for _, c := range counts {
		if c.Zombie {
			held[c.PPID]++
		}
	}
	worsts := map[string]worstParent{}
	for pid, n := range held {
		cg, ok := of[pid]
		if !ok {
			continue
		}
		sums[cg].zombies += n
		sums[cg].pids += n
		if w := worsts[cg]; n > w.zombies {
			worsts[cg] = worstParent{pid: pid, zombies: n}
		}
	}
	cgOfWorst := map[int]string{}
	for cg, w := range worsts {
		cgOfWorst[w.pid] = cg
	}
	for _, c := range counts {
		if cg, ok := cgOfWorst[c.PID]; ok {
			w := worsts[cg]
			w.comm = c.Comm
			worsts[cg] = w
		}
	}
	return sums, worsts
}

// nearestLimit is the cgroup, cg itself or its nearest ancestor, with a
// pids.max.
func nearestLimit(limits map[string]*model.CgroupUse, cg string) *model.CgroupUse {
	for c := cg; ; c = path.Dir(c) {
		if l := limits[c]; l != nil {
			return l
		}
		if c == "/" || c == "." || c == "" {
			return nil
		}
	}
}

func cgGrowth(key string, hh *cgHist, seq, window int, at func(int) time.Time) (ContainerGrowth, bool) {
	start, ok := hh.window(seq, window)
	if !ok {
		return ContainerGrowth{}, false
	}
	first, last := hh.ends()
	secs := at(seq).Sub(at(start)).Seconds()
	if secs <= 0 {
		return ContainerGrowth{}, false
	}
	perMin := func(a, b int32) float64 { return round1(float64(b-a) / secs * 60) }
	id := cgroup.Identify(key)
	g := ContainerGrowth{Cgroup: key, Unit: id.Unit, Runtime: id.Runtime, ContainerID: id.ContainerID, PodUID: id.PodUID,
		Pids: int(last.pids), PidsPerMin: perMin(first.pids, last.pids),
		FDs: int(last.fds), FDsPerMin: perMin(first.fds, last.fds),
		Zombies: int(last.zombies), ZombiesPerMin: perMin(first.zombies, last.zombies),
		RefusedInWindow: int(last.refused - first.refused), WorstParent: hh.worst, WorstParentComm: hh.worstComm}
	if g.PidsPerMin <= 0 && g.FDsPerMin <= 0 && g.ZombiesPerMin <= 0 && g.RefusedInWindow <= 0 {
		return ContainerGrowth{}, false
	}
	// The change point of the fastest-growing sum.
	val := func(c cgCounts) int32 { return c.fds }
	if g.PidsPerMin >= g.FDsPerMin {
		val = func(c cgCounts) int32 { return c.pids }
	}
	g.Since = at(hh.lowest(val))
	if l := hh.limit; l != nil {
		g.PidsCgroup, g.PidsMax = l.PidsCgroup, l.PidsMax
		if g.PidsCgroup == "" {
			g.PidsCgroup = l.Path
		}
		cur := int(last.limitPids)
		g.PidsCurrent = &cur
		if rate := perMin(first.limitPids, last.limitPids); rate > 0 && l.PidsMax != nil {
			in := round1(max(float64(*l.PidsMax)-float64(last.limitPids), 0) / (rate / 60))
			g.LimitInSeconds = &in
		}
	}
	return g, true
}
