package screen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/render"
	"github.com/zombiewatch/zombiewatch/internal/watch"
)

// sortKeys are the host screen's sort orders, by key.
var sortKeys = map[byte]string{'u': "urgency", 'z': "zombies", 'f': "fds", 'g': "growth", 'l': "latency"}

// HostWatch runs the host-wide watch on a terminal, like top: the
// processes whose zombies, fds or tasks grow, most urgent first. Keys: u z
// f g sort (urgency, zombies, fds, growth), j and k move the selection, o
// opens the selected process's own watch (where r and c switch a bundled
// server; q comes back), q quits.
func HostWatch(ctx context.Context, hs *watch.HostSampler, pidSampler func(pid int) *watch.Sampler,
	in *os.File, out io.Writer, interval time.Duration, count int) error {
	size := terminalSize(out)
	keys, raw, restore := rawKeys(in)
	defer restore()
	io.WriteString(out, "\x1b[2J")
	defer io.WriteString(out, "\r\n")

	var mu sync.Mutex // the sort, the selection, the last sample and the open view: keys and samples
	sortBy, selected := "urgency", 0
	var view chan byte // while a process view is open, the keys go to it
	var last *watch.HostSample
	draw := func() error {
		mu.Lock()
		defer mu.Unlock()
		if last == nil {
			return nil
		}
		w, h := size()
		return drawHost(out, last, sortBy, selected, w, h, raw)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	triggers := make(chan struct{})
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	open := make(chan int, 1)
	go func() {
		defer close(triggers)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			case k := <-keys:
				mu.Lock()
				if view != nil {
					v := view
					mu.Unlock()
					select {
					case v <- k:
					case <-ctx.Done():
						return
					}
					continue
				}
				switch {
				case k == 'q' || k == 3 || k == 4:
					mu.Unlock()
					cancel()
					return
				case sortKeys[k] != "":
					sortBy, selected = sortKeys[k], 0
				case k == 'j' && last != nil && selected < len(last.Growing)-1:
					selected++
				case k == 'k' && selected > 0:
					selected--
				case k == 'o' && last != nil && selected < len(last.Growing):
					select {
					case open <- last.Growing[selected].PID:
					default:
					}
					mu.Unlock()
					select { // take the next sample now, to open it
					case triggers <- struct{}{}:
					default:
					}
					continue
				}
				mu.Unlock()
				draw()
				continue
			}
			select {
			case triggers <- struct{}{}:
			case <-ctx.Done():
				return
			default: // a sample is being taken, or a process view is open
			}
		}
	}()
	return watch.RunHost(ctx, hs, triggers, count, func(s *watch.HostSample) error {
		mu.Lock()
		last = s
		watch.SortGrowing(last.Growing, sortBy)
		mu.Unlock()
		select {
		case pid := <-open:
			// The selected process's own watch, in this terminal, with the
			// keys handed over, until its q; then back here.
			v := make(chan byte)
			mu.Lock()
			view = v
			mu.Unlock()
			io.WriteString(out, "\x1b[2J")
			err := watchKeys(ctx, pidSampler(pid), v, raw, out, interval, 0)
			mu.Lock()
			view = nil
			mu.Unlock()
			io.WriteString(out, "\x1b[2J")
			var ended *watch.Ended
			if err != nil && !errors.As(err, &ended) && ctx.Err() == nil {
				return err
			}
		default:
		}
		return draw()
	})
}

// drawHost draws the host screen, fitted to width x height.
func drawHost(out io.Writer, s *watch.HostSample, sortBy string, selected, width, height int, raw bool) error {
	lines := []string{
		fmt.Sprintf("zombiewatch: host, sample %d at %s: %d processes, %d threads, %d zombies", s.Seq, s.Time.Format("15:04:05"), s.Processes, s.Threads, s.Zombies),
		fmt.Sprintf("keys: u z f g l sort (now %s)  j k select  o open  q quit   rates over %.0fs", sortBy, s.WindowSeconds),
		"",
	}
	// At 80 columns the limit and its time keep their place; the start of
	// the growth shows from 90.
	since := width >= 90
	header := fmt.Sprintf("  %7s %-12s %5s %6s %6s %6s %5s %6s", "PID", "COMMAND", "ZOMB", "Z/MIN", "FDS", "FD/MIN", "TASKS", "T/MIN")
	if since {
		header += fmt.Sprintf(" %8s", "SINCE")
	}
	lines = append(lines, header+"  LIMIT IN")
	if len(s.Growing) == 0 {
		lines = append(lines, "  nothing grows over the window")
	}
	for i, g := range s.Growing {
		mark := "  "
		if i == selected {
			mark = "> "
		}
		limit := "-"
		if g.LimitInSeconds != nil {
			limit = shortLimit[g.Limit] + " ~" + render.Age(time.Duration(*g.LimitInSeconds*float64(time.Second)))
		}
		if g.ReapLatencyP99 != nil {
			limit += fmt.Sprintf("; reaps late, p99 %.2fs", *g.ReapLatencyP99)
		}
		row := fmt.Sprintf("%s%7d %-12s %5d %+6.0f %6d %+6.0f %5d %+6.0f", mark, g.PID, cutRunes(render.Printable(g.Comm), 12),
			g.Zombies, g.ZombiesPerMin, g.FDs, g.FDsPerMin, g.Tasks, g.TasksPerMin)
		if since {
			row += " " + g.Since.Format("15:04:05")
		}
		lines = append(lines, row+"  "+limit)
	}
	// The containers' rows keep their place below the processes: the
	// processes' rows give way to them on a short screen.
	var cg []string
	if len(s.Containers) > 0 {
		cg = append(cg, "", fmt.Sprintf("  %-23s %5s %5s %6s %6s %6s %4s  %s", "CGROUP", "PIDS", "MAX", "P/MIN", "FD/MIN", "Z/MIN", "REF", "MAX IN"))
		for _, c := range s.Containers {
			limit, pidsMax := "-", "-"
			if c.LimitInSeconds != nil {
				limit = "~" + render.Age(time.Duration(*c.LimitInSeconds*float64(time.Second)))
			}
			if c.PidsMax != nil {
				pidsMax = fmt.Sprint(*c.PidsMax)
			}
			cg = append(cg, fmt.Sprintf("  %-23s %5d %5s %+6.0f %+6.0f %+6.0f %4d  %s", cutLeft(render.Printable(c.Cgroup), 23),
				c.Pids, pidsMax, c.PidsPerMin, c.FDsPerMin, c.ZombiesPerMin, c.RefusedInWindow, limit))
		}
	}
	if room := height - len(cg); len(cg) > 0 && len(lines) > room {
		lines = lines[:max(room, 5)]
	}
	lines = append(lines, cg...)
	if selected >= 0 && selected < len(s.Growing) && len(s.Growing[selected].FDGroupsGrowing) > 0 {
		g := s.Growing[selected]
		// In the blank line above the table: rows may be cut at the
		// bottom of the screen, this line is not.
		lines[2] = fmt.Sprintf("pid %d fds grew: %s", g.PID, groupsLine(g.FDGroupsGrowing))
	}
	for i := range lines {
		lines[i] = cut(lines[i], width)
	}
	if len(lines) > height {
		lines = lines[:height]
	}
	text := strings.Join(lines, "\n") + "\n"
	text = strings.ReplaceAll(text, "\n", "\x1b[K\n")
	if raw {
		text = strings.ReplaceAll(text, "\n", "\r\n")
	}
	_, err := io.WriteString(out, "\x1b[H"+text+"\x1b[J")
	return err
}

// cutLeft keeps the end of a long path (its container id), marking the cut.
func cutLeft(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}

// shortLimit names the limits in the screen's narrow column.
var shortLimit = map[string]string{"RLIMIT_NOFILE": "NOFILE", "RLIMIT_NPROC": "NPROC", "pids.max": "pids.max", "kernel.pid_max": "pid_max"}

// cutRunes keeps the first n runes of s.
func cutRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}
