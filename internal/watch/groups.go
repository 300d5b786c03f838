package watch

import (
	"cmp"
	"slices"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// GroupGrowth is a group of descriptors (same file, same peer and state,
// pipes) that grew since the watch first listed the process's fds.
type GroupGrowth struct {
	model.FDGroup
	Delta  int     `json:"delta"`
	PerMin float64 `json:"per_min"`
	// Origin, with --origin: the code that opened most of the group's
	// descriptors opened while traced ("main.dial pool.go:88 ← ...", 38 of
	// 40), as the Sampler's Origins hook names it.
	Origin string `json:"origin,omitempty"`
}

// maxGroupsNamed bounds the growing groups a sample names.
const maxGroupsNamed = 3

// groupBase is a process's fd groups when first listed.
type groupBase struct {
	at     time.Time
	counts map[model.FDGroup]int
}

// growthKey is a group as growth is named: a pipe leak is many pipes,
// each its own group, but one line.
func growthKey(g model.FDGroup) model.FDGroup {
	if g.Kind == proc.FDPipe {
		g.Target = ""
	}
	g.Count = 0
	return g
}

func newGroupBase(groups []model.FDGroup, at time.Time) *groupBase {
	b := &groupBase{at: at, counts: map[model.FDGroup]int{}}
	for _, g := range groups {
		b.counts[growthKey(g)] += g.Count
	}
	return b
}

// total is the descriptors at the base.
func (b *groupBase) total() int {
	n := 0
	for _, c := range b.counts {
		n += c
	}
	return n
}

// growing names the groups that hold more descriptors than at the base,
// most added first.
func (b *groupBase) growing(groups []model.FDGroup, now time.Time) []GroupGrowth {
	counts := map[model.FDGroup]int{}
	for _, g := range groups {
		counts[growthKey(g)] += g.Count
	}
	mins := now.Sub(b.at).Minutes()
	var out []GroupGrowth
	for k, n := range counts {
		if d := n - b.counts[k]; d > 0 {
			g := GroupGrowth{FDGroup: k, Delta: d}
			g.Count = n
			if mins > 0 {
				g.PerMin = round1(float64(d) / mins)
			}
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b GroupGrowth) int {
		return cmp.Or(b.Delta-a.Delta, cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Target, b.Target), cmp.Compare(a.Remote, b.Remote))
	})
	if len(out) > maxGroupsNamed {
		out = out[:maxGroupsNamed]
	}
	return out
}
