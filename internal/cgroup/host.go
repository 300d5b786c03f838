package cgroup

import (
	"cmp"
	"context"
	"slices"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// maxWalk bounds the cgroup directories a host reading visits.
const maxWalk = 20000

// topCgroups is how many cgroups the host view keeps besides those that
// hold zombies or are at half their pids.max or more.
const topCgroups = 10

// HostSource is the "cgroup" host source: every cgroup with a pids.max
// (from the cgroupfs itself, where processes listed or not), and the
// zombies the listed parents hold inside each, most urgent first.
func HostSource(pfs *proc.FS, cfs *FS) model.HostSource { return hostSource{cfs, pfs} }

type hostSource struct {
	fs  *FS
	pfs *proc.FS
}

// cgroupOf is a parent's cgroup as the process source reads it (its
// identity and the pids cgroup that binds), nil if it cannot be read.
func (s hostSource) cgroupOf(pid int) *model.Cgroup {
	lines, err := s.pfs.ReadCgroup(pid)
	if err != nil {
		return nil
	}
	id := IdentityOf(lines)
	cg := &model.Cgroup{Path: id.Path, Unit: id.Unit, Runtime: id.Runtime, ContainerID: id.ContainerID, PodUID: id.PodUID, QoS: id.QoS}
	if pids, limited, err := s.fs.PidsOf(lines); err == nil && limited {
		cur, max, ref := pids.Current, pids.Max, pids.Refused
		cg.PidsCgroup, cg.PidsCurrent, cg.PidsMax = pids.Path, &cur, &max
		if ref >= 0 {
			cg.PidsRefused = &ref
		}
	}
	return cg
}

func (hostSource) Name() string { return "cgroup" }

func (s hostSource) Host(ctx context.Context, h *model.Host) error {
	limited, err := s.fs.Limited(maxWalk)
	uses := map[string]*model.CgroupUse{}
	for _, p := range limited {
		id := Identify(p.Path)
		cur, max := p.Current, p.Max
		u := &model.CgroupUse{Cgroup: model.Cgroup{Path: p.Path, Unit: id.Unit, Runtime: id.Runtime,
			ContainerID: id.ContainerID, PodUID: id.PodUID, QoS: id.QoS, PidsCgroup: p.Path, PidsCurrent: &cur, PidsMax: &max}}
		if p.Refused >= 0 {
			ref := p.Refused
			u.PidsRefused = &ref
		}
		u.Ratio = model.Ratio(cur, proc.Limit(max))
		uses[p.Path] = u
	}
	// Every parent holding zombies counts, whatever --top lists: the
	// listed ones carry their cgroup already, the others are read here.
	listed := map[int]*model.Cgroup{}
	for _, p := range h.Parents {
		if p.Cgroup != nil {
			listed[p.PID] = p.Cgroup
		}
	}
	for _, holder := range h.Holders {
		cg := listed[holder.PID]
		if cg == nil && s.pfs != nil {
			cg = s.cgroupOf(holder.PID)
		}
		if cg == nil {
			continue
		}
		key := cg.PidsCgroup
		if key == "" {
			key = cg.Path
		}
		u := uses[key]
		if u == nil {
			u = &model.CgroupUse{Cgroup: *cg}
			uses[key] = u
		}
		u.Zombies += holder.Zombies
		if holder.Zombies > 0 && (u.WorstParent == 0 || holder.Zombies > worst(h, u.WorstParent)) {
			u.WorstParent, u.WorstParentComm = holder.PID, holder.Comm
		}
	}
	list := make([]*model.CgroupUse, 0, len(uses))
	for _, u := range uses {
		list = append(list, u)
	}
	slices.SortFunc(list, func(a, b *model.CgroupUse) int {
		return cmp.Or(cmp.Compare(refused(b), refused(a)), cmp.Compare(b.Ratio, a.Ratio), b.Zombies-a.Zombies, cmp.Compare(a.Path, b.Path))
	})
	h.Cgroups, h.AllCgroups = h.Cgroups[:0], h.AllCgroups[:0]
	for i, u := range list {
		h.AllCgroups = append(h.AllCgroups, *u)
		if i < topCgroups || u.Zombies > 0 || u.Ratio >= 0.5 || refused(u) > 0 {
			h.Cgroups = append(h.Cgroups, *u)
		}
	}
	return err
}

func refused(u *model.CgroupUse) int {
	if u.PidsRefused == nil {
		return 0
	}
	return *u.PidsRefused
}

func worst(h *model.Host, pid int) int {
	for _, p := range h.Holders {
		if p.PID == pid {
			return p.Zombies
		}
	}
	return 0
}
