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
func HostSource(cfs *FS) model.HostSource { return hostSource{cfs} }

type hostSource struct{ fs *FS }

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
	for _, p := range h.Parents {
		if p.Cgroup == nil {
			continue
		}
		key := p.Cgroup.PidsCgroup
		if key == "" {
			key = p.Cgroup.Path
		}
		u := uses[key]
		if u == nil {
			u = &model.CgroupUse{Cgroup: *p.Cgroup}
			uses[key] = u
		}
		u.Zombies += p.Zombies
		if p.Zombies > 0 && (u.WorstParent == 0 || p.Zombies > worst(h, u.WorstParent)) {
			u.WorstParent, u.WorstParentComm = p.PID, p.Comm
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
	for _, p := range h.Parents {
		if p.PID == pid {
			return p.Zombies
		}
	}
	return 0
}
