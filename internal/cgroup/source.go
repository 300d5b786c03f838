package cgroup

import (
	"context"
	"sync"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Source is the "cgroup" source: for each process, what its cgroup path
// names (unit, container, pod) and the pids limit its forks meet first.
// A cgroup's files are read once per reading however many of its
// processes are listed (cached for a moment).
func Source(pfs *proc.FS, cfs *FS) model.Source {
	c := &cache{fs: cfs, entries: map[string]cached{}}
	return model.SourceFunc("cgroup", func(_ context.Context, p *model.Process) error {
		lines, err := pfs.ReadCgroup(p.PID)
		if err != nil {
			return err
		}
		id := IdentityOf(lines)
		cg := &model.Cgroup{Path: id.Path, Unit: id.Unit, Runtime: id.Runtime, ContainerID: id.ContainerID,
			PodUID: id.PodUID, QoS: id.QoS}
		p.Cgroup = cg
		pids, limited, err := c.pidsOf(lines)
		if err != nil {
			return err
		}
		if limited {
			cur, max, ref := pids.Current, pids.Max, pids.Refused
			cg.PidsCgroup, cg.PidsCurrent, cg.PidsMax = pids.Path, &cur, &max
			if ref >= 0 {
				cg.PidsRefused = &ref
			}
		}
		return nil
	})
}

// cacheFor is how long a cgroup's pids files stay read: one reading (a
// host scan lists many processes of one pod) but not a watch's next sample.
const cacheFor = 200 * time.Millisecond

type cached struct {
	at      time.Time
	pids    Pids
	limited bool
	err     error
}

type cache struct {
	fs      *FS
	mu      sync.Mutex
	entries map[string]cached
}

func (c *cache) pidsOf(lines []proc.CgroupLine) (Pids, bool, error) {
	_, key := c.fs.pidsPath(lines)
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && time.Since(e.at) < cacheFor {
		return e.pids, e.limited, e.err
	}
	pids, limited, err := c.fs.PidsOf(lines)
	c.mu.Lock()
	if len(c.entries) > 4096 {
		c.entries = map[string]cached{}
	}
	c.entries[key] = cached{time.Now(), pids, limited, err}
	c.mu.Unlock()
	return pids, limited, err
}

// Sources are the cgroup sources for a reading of pfs: the process and the
// host source over the cgroupfs at root. The host's cgroupfs belongs with
// the host's /proc only: with another proc tree (a fixture, a copy) and no
// root asked for, there is none. A root that is not a cgroupfs gives a
// source that names the problem in every reading ("unread"), never a
// silent absence.
func Sources(pfs *proc.FS, root string, asked bool) ([]model.Source, []model.HostSource) {
	if !asked && !pfs.Live() {
		return nil, nil
	}
	cfs, err := New(root)
	if err != nil {
		failing := model.SourceFunc("cgroup", func(context.Context, *model.Process) error { return err })
		return []model.Source{failing}, nil
	}
	return []model.Source{Source(pfs, cfs)}, []model.HostSource{HostSource(pfs, cfs)}
}
