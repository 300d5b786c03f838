package watch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/guptarohit/asciigraph"

	"github.com/zombiewatch/zombiewatch/internal/report"
)

// JSONLines writes each sample as one JSON object on one line.
type JSONLines struct{ W io.Writer }

// Emit writes s.
func (j JSONLines) Emit(s *Sample) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = j.W.Write(append(b, '\n'))
	return err
}

// Lines writes one line per sample, like vmstat, with a header first.
type Lines struct {
	W      io.Writer
	header bool
}

const lineFormat = "%-8s %7s %8s %6s %8s %7s %6s %8s %10s %9s %9s\n"

// Emit writes s.
func (l *Lines) Emit(s *Sample) error {
	if !l.header {
		l.header = true
		if _, err := fmt.Fprintf(l.W, lineFormat, "time", "pid", "zombies", "Δ", "/min", "fds", "Δ", "/min", "close_wait", "fd_limit", "nproc_lim"); err != nil {
			return err
		}
	}
	fds := "?"
	if s.FDs != nil {
		fds = fmt.Sprint(*s.FDs)
	}
	_, err := fmt.Fprintf(l.W, lineFormat, s.Time.Local().Format("15:04:05"), fmt.Sprint(s.PID),
		fmt.Sprint(s.Zombies), signed(s.ZombiesDelta), fmt.Sprintf("%+.0f", s.ZombiesPerMin),
		fds, signed(s.FDsDelta), fmt.Sprintf("%+.0f", s.FDsPerMin),
		fmt.Sprint(s.TCPStates["CLOSE_WAIT"]), in(s.FDLimitIn), in(s.NprocLimitIn))
	return err
}

func signed(n int) string { return fmt.Sprintf("%+d", n) }

// in prints a projection: "~6m12s", or "-" when nothing grows.
func in(secs *float64) string {
	if secs == nil {
		return "-"
	}
	return "~" + report.Age(time.Duration(*secs*float64(time.Second)))
}

// Screen redraws the terminal in place, like top.
type Screen struct {
	W io.Writer
	// Raw: the terminal is in raw mode, so lines need \r\n.
	Raw bool
	// Status is one more line under the title (keys, the last action).
	Status func() string
	// History gives the chart's data.
	History func() (zombies, fds []float64)
}

// Emit redraws the screen with s.
func (sc *Screen) Emit(s *Sample) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "zombiewatch: pid %d (%s), sample %d at %s\n", s.PID, s.Comm, s.Seq, s.Time.Local().Format("15:04:05"))
	if sc.Status != nil {
		fmt.Fprintln(&b, sc.Status())
	}
	fmt.Fprintln(&b)
	if err := report.Table(&b, s.Report); err != nil {
		return err
	}
	fmt.Fprintf(&b, "\nchange   zombies %s (%+.0f/min), fds %s (%+.0f/min)\n", signed(s.ZombiesDelta), s.ZombiesPerMin, signed(s.FDsDelta), s.FDsPerMin)
	fmt.Fprintf(&b, "%s\n", Projection(s))
	if sc.History != nil {
		if zombies, fds := sc.History(); len(zombies) > 1 {
			fmt.Fprintf(&b, "\n%s\n", Chart(zombies, fds, 60, 8, true))
		}
	}
	text := b.String()
	// Home, each line cleared to its end, then the rest of the screen.
	text = strings.ReplaceAll(text, "\n", "\x1b[K\n")
	if sc.Raw {
		text = strings.ReplaceAll(text, "\n", "\r\n")
	}
	_, err := io.WriteString(sc.W, "\x1b[H"+text+"\x1b[J")
	return err
}

// Projection says when a limit runs out at the current rate.
func Projection(s *Sample) string {
	var parts []string
	if s.FDLimitIn != nil {
		parts = append(parts, fmt.Sprintf("fds %+.0f/min: soft limit %s reached in %s", s.FDsPerMin, s.FDSoftLimit, in(s.FDLimitIn)))
	}
	if s.NprocLimitIn != nil {
		parts = append(parts, fmt.Sprintf("uid %d's processes grow: RLIMIT_NPROC %s reached in %s", s.UID, s.NprocSoftLimit, in(s.NprocLimitIn)))
	}
	if len(parts) == 0 {
		return "limits   no count grows toward a limit"
	}
	return "limits   " + strings.Join(parts, "; ")
}

// Chart draws zombies and fds over time; color only for a terminal.
func Chart(zombies, fds []float64, width, height int, color bool) string {
	opts := []asciigraph.Option{asciigraph.Width(width), asciigraph.Height(height), asciigraph.Precision(0)}
	if color {
		opts = append(opts, asciigraph.SeriesColors(asciigraph.Red, asciigraph.Blue), asciigraph.SeriesLegends("zombies", "fds"))
		return asciigraph.PlotMany([][]float64{zombies, fds}, opts...)
	}
	// Without colour the two lines need their own characters (and the
	// library's legend would still carry colour codes).
	opts = append(opts, asciigraph.SeriesChars(asciigraph.CreateCharSet("*"), asciigraph.CreateCharSet("o")))
	return asciigraph.PlotMany([][]float64{zombies, fds}, opts...) + "\n\n      * zombies   o fds"
}
