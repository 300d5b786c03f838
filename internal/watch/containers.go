package watch

import (
	"cmp"
	"slices"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
)

// ContainerGrowth is one cgroup (a container, a pod, a unit) whose tasks or
// zombies grow over the window, or whose pids.max refused forks in it.
type ContainerGrowth struct {
	Cgroup      string `json:"cgroup"`
	Unit        string `json:"unit,omitempty"`
	Runtime     string `json:"runtime,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	PodUID      string `json:"pod_uid,omitempty"`
	// Pids: pids.current (every task inside, zombies included); PidsMax
	// null where no pids.max binds.
	Pids       int     `json:"pids"`
	PidsMax    *int    `json:"pids_max"`
	PidsPerMin float64 `json:"pids_per_min"`
	// Zombies: held by the parents inside.
	Zombies       int     `json:"zombies"`
	ZombiesPerMin float64 `json:"zombies_per_min"`
	// RefusedInWindow: forks pids.max refused over the window.
	RefusedInWindow int       `json:"pids_refused_in_window"`
	WorstParent     int       `json:"worst_parent,omitempty"`
	WorstParentComm string    `json:"worst_parent_comm,omitempty"`
	Since           time.Time `json:"since"`
	// LimitInSeconds: when pids.current reaches pids.max at the rate.
	LimitInSeconds *float64 `json:"limit_in_seconds"`
}

type cgPoint struct {
	t                      int64
	pids, zombies, refused int32
}

type cgHist struct {
	pts  []cgPoint
	last model.CgroupUse
	seq  int
}

// containers ranks the cgroups of h by growth, keeping their history.
func (s *HostSampler) containers(h *model.Host, now time.Time, window int) []ContainerGrowth {
	if s.cgroups == nil {
		s.cgroups = map[string]*cgHist{}
	}
	for _, u := range h.AllCgroups {
		key := u.PidsCgroup
		if key == "" {
			key = u.Path
		}
		ch := s.cgroups[key]
		if ch == nil {
			ch = &cgHist{pts: make([]cgPoint, 0, window)}
			s.cgroups[key] = ch
		}
		pt := cgPoint{t: now.UnixNano(), zombies: int32(u.Zombies)}
		if u.PidsCurrent != nil {
			pt.pids = int32(*u.PidsCurrent)
		}
		if u.PidsRefused != nil {
			pt.refused = int32(*u.PidsRefused)
		}
		if len(ch.pts) == window {
			copy(ch.pts, ch.pts[1:])
			ch.pts = ch.pts[:window-1]
		}
		ch.pts = append(ch.pts, pt)
		ch.last, ch.seq = u, s.seq
	}
	out := []ContainerGrowth{}
	for key, ch := range s.cgroups {
		if ch.seq != s.seq {
			delete(s.cgroups, key)
			continue
		}
		if g, ok := cgGrowth(key, ch); ok {
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b ContainerGrowth) int {
		return cmp.Or(soonest(a.LimitInSeconds, b.LimitInSeconds), b.RefusedInWindow-a.RefusedInWindow, cmp.Compare(b.ZombiesPerMin, a.ZombiesPerMin),
			cmp.Compare(b.PidsPerMin, a.PidsPerMin), cmp.Compare(a.Cgroup, b.Cgroup))
	})
	return out
}

func cgGrowth(key string, ch *cgHist) (ContainerGrowth, bool) {
	hist := ch.pts
	if len(hist) < minHistory {
		return ContainerGrowth{}, false
	}
	first, last := hist[0], hist[len(hist)-1]
	secs := float64(last.t-first.t) / 1e9
	if secs <= 0 {
		return ContainerGrowth{}, false
	}
	perMin := func(a, b int32) float64 { return round1(float64(b-a) / secs * 60) }
	u := ch.last
	g := ContainerGrowth{Cgroup: key, Unit: u.Unit, Runtime: u.Runtime, ContainerID: u.ContainerID, PodUID: u.PodUID,
		Pids: int(last.pids), PidsMax: u.PidsMax, PidsPerMin: perMin(first.pids, last.pids),
		Zombies: int(last.zombies), ZombiesPerMin: perMin(first.zombies, last.zombies),
		RefusedInWindow: int(last.refused - first.refused), WorstParent: u.WorstParent, WorstParentComm: u.WorstParentComm}
	if g.PidsPerMin <= 0 && g.ZombiesPerMin <= 0 && g.RefusedInWindow <= 0 {
		return ContainerGrowth{}, false
	}
	low := 0
	for i, p := range hist {
		if p.pids <= hist[low].pids {
			low = i
		}
	}
	g.Since = time.Unix(0, hist[low].t)
	if u.PidsMax != nil && g.PidsPerMin > 0 {
		in := round1(max(float64(*u.PidsMax)-float64(last.pids), 0) / (g.PidsPerMin / 60))
		g.LimitInSeconds = &in
	}
	return g, true
}
