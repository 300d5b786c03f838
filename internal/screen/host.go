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
	keys, raw, restore := rawKeys(in)
	defer restore()
	io.WriteString(out, "\x1b[2J")
	defer io.WriteString(out, "\r\n")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sc := &hostScreen{out: out, raw: raw, size: terminalSize(out), sortBy: "urgency",
		triggers: make(chan struct{}), open: make(chan int, 1)}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	go sc.keyLoop(ctx, cancel, keys, ticker.C)
	return watch.RunHost(ctx, hs, sc.triggers, count, func(s *watch.HostSample) error {
		sc.mu.Lock()
		sc.last = s
		watch.SortGrowing(s.Growing, sc.sortBy)
		sc.mu.Unlock()
		select {
		case pid := <-sc.open:
			if err := sc.processView(ctx, pidSampler(pid), interval); err != nil {
				return err
			}
		default:
		}
		return sc.draw()
	})
}

// hostScreen is the host watch's state, shared by the key loop and the
// sampler: the sort, the selection, the last sample and the open view.
type hostScreen struct {
	out  io.Writer
	raw  bool
	size func() (w, h int)
	// triggers asks for a sample; open, for the selected process's view.
	triggers chan struct{}
	open     chan int

	mu       sync.Mutex
	sortBy   string
	selected int
	last     *watch.HostSample
	view     chan byte // while a process view is open, the keys go to it
}

func (sc *hostScreen) draw() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.last == nil {
		return nil
	}
	w, h := sc.size()
	return drawHost(sc.out, sc.last, sc.sortBy, sc.selected, w, h, sc.raw)
}

// What a key asks of the key loop.
type keyAction int

const (
	redraw   keyAction = iota
	quit               // q, Ctrl-C, Ctrl-D
	sampleIt           // o: take a sample now, to open the selected process
	toView             // a process view is open: the key is its
)

// key applies k to the screen's state.
func (sc *hostScreen) key(k byte) (keyAction, chan byte) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	switch {
	case sc.view != nil:
		return toView, sc.view
	case k == 'q' || k == 3 || k == 4:
		return quit, nil
	case sortKeys[k] != "":
		sc.sortBy, sc.selected = sortKeys[k], 0
	case k == 'j' && sc.last != nil && sc.selected < len(sc.last.Growing)-1:
		sc.selected++
	case k == 'k' && sc.selected > 0:
		sc.selected--
	case k == 'o' && sc.last != nil && sc.selected < len(sc.last.Growing):
		select {
		case sc.open <- sc.last.Growing[sc.selected].PID:
		default:
		}
		return sampleIt, nil
	}
	return redraw, nil
}

// keyLoop turns ticks and keys into samples and redraws until ctx ends or
// q; it closes triggers when it returns.
func (sc *hostScreen) keyLoop(ctx context.Context, cancel func(), keys <-chan byte, ticks <-chan time.Time) {
	defer close(sc.triggers)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
			select {
			case sc.triggers <- struct{}{}:
			case <-ctx.Done():
				return
			default: // a sample is being taken, or a process view is open
			}
		case k := <-keys:
			switch action, view := sc.key(k); action {
			case quit:
				cancel()
				return
			case toView:
				select {
				case view <- k:
				case <-ctx.Done():
					return
				}
			case sampleIt:
				select {
				case sc.triggers <- struct{}{}:
				default:
				}
			case redraw:
				sc.draw()
			}
		}
	}
}

// processView shows the process's own watch in this terminal, with the
// keys handed over, until its q; then the host screen comes back.
func (sc *hostScreen) processView(ctx context.Context, s *watch.Sampler, interval time.Duration) error {
	v := make(chan byte)
	sc.mu.Lock()
	sc.view = v
	sc.mu.Unlock()
	io.WriteString(sc.out, "\x1b[2J")
	err := watchKeys(ctx, s, v, sc.raw, sc.out, interval, 0)
	sc.mu.Lock()
	sc.view = nil
	sc.mu.Unlock()
	io.WriteString(sc.out, "\x1b[2J")
	var ended *watch.Ended
	if err != nil && !errors.As(err, &ended) && ctx.Err() == nil {
		return err
	}
	return nil
}

// drawHost draws the host screen, fitted to width x height.
func drawHost(out io.Writer, s *watch.HostSample, sortBy string, selected, width, height int, raw bool) error {
	lines := []string{
		fmt.Sprintf("zombiewatch: host, sample %d at %s: %d processes, %d threads, %d zombies", s.Seq, s.Time.Format("15:04:05"), s.Processes, s.Threads, s.Zombies),
		fmt.Sprintf("keys: u z f g l sort (now %s)  j k select  o open  q quit   rates over %.0fs", sortBy, s.WindowSeconds),
		"",
	}
	lines = append(lines, growingRows(s.Growing, selected, width)...)
	// The containers' rows keep their place below the processes: the
	// processes' rows give way to them on a short screen.
	cg := containerRows(s.Containers)
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

// growingRows is the processes' table, the selected row marked. At 80
// columns the limit and its time keep their place; the start of the
// growth shows from 90.
func growingRows(growing []watch.Growing, selected, width int) []string {
	since := width >= 90
	header := fmt.Sprintf("  %7s %-12s %5s %6s %6s %6s %5s %6s", "PID", "COMMAND", "ZOMB", "Z/MIN", "FDS", "FD/MIN", "TASKS", "T/MIN")
	if since {
		header += fmt.Sprintf(" %8s", "SINCE")
	}
	lines := []string{header + "  LIMIT IN"}
	if len(growing) == 0 {
		lines = append(lines, "  nothing grows over the window")
	}
	for i, g := range growing {
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
	return lines
}

// containerRows is the cgroups' table, a blank line first; none without
// cgroups.
func containerRows(containers []watch.ContainerGrowth) []string {
	if len(containers) == 0 {
		return nil
	}
	cg := []string{"", fmt.Sprintf("  %-23s %5s %5s %6s %6s %6s %4s  %s", "CGROUP", "PIDS", "MAX", "P/MIN", "FD/MIN", "Z/MIN", "REF", "MAX IN")}
	for _, c := range containers {
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
	return cg
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
