package watch

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/render"
)

// GroupGrowth is a group of descriptors (same file, same peer and state,
// pipes) that grew since the watch first listed the process's fds.
type GroupGrowth struct {
	model.FDGroup
	Delta  int     `json:"delta"`
	PerMin float64 `json:"per_min"`
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

// GroupLine names a growing group for a person: "+312 TCP CLOSE_WAIT to
// 10.1.2.3:5432 (312 now)".
func GroupLine(g GroupGrowth) string {
	var what []string
	switch {
	case g.Protocol != "":
		what = append(what, g.Protocol)
		if g.TCPState != "" {
			what = append(what, g.TCPState)
		}
		if g.Remote != "" {
			what = append(what, "to "+g.Remote)
		}
		if g.Target != "" {
			what = append(what, g.Target)
		}
	case g.Kind == proc.FDPipe:
		what = append(what, "pipes")
	default:
		what = append(what, g.Kind)
		if g.Target != "" {
			what = append(what, g.Target)
		}
	}
	return fmt.Sprintf("+%d %s (%d now)", g.Delta, render.Printable(strings.Join(what, " ")), g.Count)
}
