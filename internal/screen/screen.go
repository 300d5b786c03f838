// Package screen is the watches' terminal UI, redrawn in place like top:
// one process's screen, with keys that switch a bundled server live (r
// cycles the reaper, c toggles close-conn, q quits), and the host's, which
// ranks what grows (sort keys, j/k to select, o to open a process's own
// screen). It merges the ticker and the keys into the one trigger channel
// the samplers run on.
package screen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/zombiewatch/zombiewatch/internal/bundled"
	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/render"
	"github.com/zombiewatch/zombiewatch/internal/watch"
)

// Screen redraws the terminal in place, like top.
type Screen struct {
	W io.Writer
	// Raw: the terminal is in raw mode, so lines need \r\n.
	Raw bool
	// Status is one more line under the title (keys, the last action).
	Status func() string
	// History gives the chart's data.
	History func() (zombies, fds []float64)
	// Size is the terminal's width and height, asked at each redraw so
	// that a resize is followed; nil: 80x24.
	Size func() (width, height int)
}

// Emit redraws the screen with s, fitted to the terminal: every line cut
// to its width (at a word, with "…"), and the chart, then the lines at
// the bottom, dropped when the height runs out; the title and the key help
// always stay.
func (sc *Screen) Emit(s *watch.Sample) error {
	width, height := 80, 24
	if sc.Size != nil {
		if w, h := sc.Size(); w > 0 && h > 0 {
			width, height = w, h
		}
	}
	var lines []string
	lines = append(lines, fmt.Sprintf("zombiewatch: pid %d (%s), sample %d at %s", s.PID, render.Printable(s.Comm), s.Seq, s.Time.Format("15:04:05")))
	if sc.Status != nil {
		lines = append(lines, sc.Status())
	}
	lines = append(lines, "")
	var b bytes.Buffer
	if err := render.Table(&b, s.Process); err != nil {
		return err
	}
	lines = append(lines, strings.Split(strings.TrimRight(b.String(), "\n"), "\n")...)
	lines = append(lines, "", fmt.Sprintf("change   zombies %s (%+.0f/min), fds %s (%+.0f/min)", render.Signed(s.ZombiesDelta), s.ZombiesPerMin, render.Signed(s.FDsDelta), s.FDsPerMin))
	if s.Events {
		lat := "no child reaped in the window"
		if s.ReapLatencyP50 != nil {
			lat = fmt.Sprintf("exit-to-reap p50 %s p99 %s over %.0fs", seconds(*s.ReapLatencyP50), seconds(*s.ReapLatencyP99), s.ReapLatencyWindow)
		}
		lines = append(lines, fmt.Sprintf("reaping  %d exited, %d reaped since the last sample; %s", *s.Exits, *s.Reaped, lat))
	}
	if len(s.FDGroupsGrowing) > 0 {
		lines = append(lines, "fds grew "+groupsLine(s.FDGroupsGrowing))
	}
	lines = append(lines, render.Projection(s))
	for i := range lines {
		lines[i] = cut(lines[i], width)
	}
	if len(lines) > height {
		lines = lines[:height]
	}
	// The chart takes what height is left (it is 60 columns wide).
	if room := height - len(lines) - 4; sc.History != nil && room >= 4 && width >= 72 {
		if zombies, fds := sc.History(); len(zombies) > 1 {
			chart := render.Chart(zombies, fds, min(60, width-12), min(8, room), true)
			lines = append(lines, "")
			lines = append(lines, strings.Split(chart, "\n")...)
		}
	}
	text := strings.Join(lines, "\n") + "\n"
	// Home, each line cleared to its end, then the rest of the screen.
	text = strings.ReplaceAll(text, "\n", "\x1b[K\n")
	if sc.Raw {
		text = strings.ReplaceAll(text, "\n", "\r\n")
	}
	_, err := io.WriteString(sc.W, "\x1b[H"+text+"\x1b[J")
	return err
}

// seconds prints a latency: 1.2ms, 310ms, 2.5s.
func seconds(v float64) string {
	switch {
	case v < 0.01:
		return fmt.Sprintf("%.1fms", v*1000)
	case v < 1:
		return fmt.Sprintf("%.0fms", v*1000)
	}
	return fmt.Sprintf("%.1fs", v)
}

// cut shortens a line to width columns, at the last space that fits, with
// "…" to say so: long detail is cut, never wrapped mid-word.
func cut(line string, width int) string {
	if utf8.RuneCountInString(line) <= width {
		return line
	}
	runes := []rune(line)[:width-1]
	if i := strings.LastIndexByte(string(runes), ' '); i > width/2 {
		return strings.TrimRight(string(runes)[:i], " ") + "…"
	}
	return string(runes) + "…"
}

// Watch runs the watch on a terminal: stdin in raw mode when it is a
// terminal too (for the keys), the screen cleared, then redrawn at every
// tick and after every switch.
func Watch(ctx context.Context, s *watch.Sampler, in *os.File, out io.Writer, interval time.Duration, count int) error {
	keys, raw, restore := rawKeys(in)
	defer restore()
	return watchKeys(ctx, s, keys, raw, out, interval, count)
}

// rawKeys puts in, when it is a terminal, in raw mode and delivers the
// keys typed on it; restore puts the terminal back. Elsewhere there are
// no keys (raw is false).
func rawKeys(in *os.File) (keys <-chan byte, raw bool, restore func()) {
	restore = func() {}
	if term.IsTerminal(int(in.Fd())) {
		if old, err := term.MakeRaw(int(in.Fd())); err == nil {
			return readKeys(in), true, func() { term.Restore(int(in.Fd()), old) }
		}
	}
	return nil, false, restore
}

// terminalSize is out's size, or 80x24 when it cannot be asked.
func terminalSize(out io.Writer) func() (int, int) {
	return func() (int, int) {
		if f, ok := out.(*os.File); ok {
			if w, h, err := term.GetSize(int(f.Fd())); err == nil {
				return w, h
			}
		}
		return 80, 24
	}
}

// watchKeys is Watch with its keys from a channel (nil: none), so that the
// host screen can hand its own over while a process view is open.
func watchKeys(ctx context.Context, s *watch.Sampler, keys <-chan byte, raw bool, out io.Writer, interval time.Duration, count int) error {
	sc := &Screen{W: out, History: s.History, Size: terminalSize(out), Raw: raw}
	// last and note are written by the sampling loop and the key loop.
	var mu sync.Mutex
	var last *watch.Sample
	note := ""
	sc.Status = func() string { return keyHelp(last, note, sc.Raw) } // under mu, from Emit
	io.WriteString(out, "\x1b[2J")
	defer io.WriteString(out, "\r\n")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	triggers := make(chan struct{})
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	// With process events, an exit or a reap redraws at once (at most
	// every 200 ms), not only on the tick.
	var changed <-chan struct{}
	if s.Events != nil {
		changed = s.Events.Changed()
	}
	var lastEventDraw time.Time
	go func() {
		defer close(triggers)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			case <-changed:
				if time.Since(lastEventDraw) < 200*time.Millisecond {
					continue
				}
				lastEventDraw = time.Now()
			case k := <-keys:
				switch k {
				case 'q', 3, 4: // q, Ctrl-C, Ctrl-D
					return
				case 'r', 'c':
					mu.Lock()
					cur := last
					mu.Unlock()
					n := switchServer(s.PID, cur, k)
					mu.Lock()
					note = n
					mu.Unlock()
				default:
					continue
				}
			}
			select {
			case triggers <- struct{}{}:
			case <-ctx.Done():
				return
			default: // a sample is being taken: this tick is not needed
			}
		}
	}()
	return watch.Run(ctx, s, triggers, count, func(sample *watch.Sample) error {
		mu.Lock()
		defer mu.Unlock()
		last = sample
		return sc.Emit(sample)
	})
}

// readKeys delivers the bytes typed on f.
func readKeys(f *os.File) chan byte {
	keys := make(chan byte)
	go func() {
		buf := make([]byte, 1)
		for {
			if n, err := f.Read(buf); err != nil || n == 0 {
				return
			}
			keys <- buf[0]
		}
	}()
	return keys
}

func keyHelp(last *watch.Sample, note string, keys bool) string {
	if !keys {
		return "Ctrl-C quits"
	}
	if last == nil || last.Server == nil {
		return "keys: q quit (r and c switch a bundled server; this is not one)"
	}
	st := last.Server
	help := fmt.Sprintf("keys: r reaper (now %s)  c close-conn (now %s)  q quit", st.Reaper, render.OnOff(st.CloseConn))
	if note != "" {
		help += "   | " + note
	}
	return help
}

// switchServer applies key k to the bundled server: r cycles the reaper,
// c toggles close-conn. It returns what happened, for the status line.
func switchServer(pid int, last *watch.Sample, k byte) string {
	if last == nil || last.Server == nil {
		return "not a bundled server: nothing to switch"
	}
	var req control.Request
	switch k {
	case 'r':
		next := bundled.NextReaper(last.Server.Reaper)
		req.Reaper = &next
	case 'c':
		on := !last.Server.CloseConn
		req.CloseConn = &on
	}
	st, err := bundled.Switch(pid, req)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("switched: reaper=%s close-conn=%s", st.Reaper, render.OnOff(st.CloseConn))
}

// groupsLine names growing fd groups on one line, most first.
func groupsLine(groups []watch.GroupGrowth) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = render.GroupLine(g)
	}
	return strings.Join(parts, "; ")
}
