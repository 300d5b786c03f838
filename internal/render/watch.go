package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/watch"
)

// JSONLines writes each sample as one JSON object on one line: the whole
// zombie_list in the first, then null, with zombies_appeared and
// zombies_reaped saying what changed (a sample stays small however many
// zombies there are).
type JSONLines struct {
	W    io.Writer
	sent bool
}

// Emit writes s.
func (j *JSONLines) Emit(s *watch.Sample) error {
	if j.sent {
		p := *s.Process
		p.ZombieList = nil
		c := *s
		c.Process = &p
		s = &c
	}
	j.sent = true
	return jsonLine(j.W, s)
}

// jsonLine writes v as one JSON object on one line.
func jsonLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Lines writes one line per sample, like vmstat, with a header first.
type Lines struct {
	W      io.Writer
	header bool
}

// The last two columns are projections: how soon, at the rate over the
// window, the fds reach RLIMIT_NOFILE and the uid's tasks RLIMIT_NPROC.
const lineFormat = "%-8s %7s %8s %6s %8s %7s %6s %8s %10s %11s %13s\n"

// Emit writes s.
func (l *Lines) Emit(s *watch.Sample) error {
	if !l.header {
		l.header = true
		if _, err := fmt.Fprintf(l.W, lineFormat, "time", "pid", "zombies", "Δ", "/min", "fds", "Δ", "/min", "close_wait", "fds_full_in", "tasks_full_in"); err != nil {
			return err
		}
	}
	fds := "?"
	if s.FDs != nil {
		fds = fmt.Sprint(*s.FDs)
	}
	_, err := fmt.Fprintf(l.W, lineFormat, s.Time.Format("15:04:05"), fmt.Sprint(s.PID),
		fmt.Sprint(s.Zombies), Signed(s.ZombiesDelta), fmt.Sprintf("%+.0f", s.ZombiesPerMin),
		fds, Signed(s.FDsDelta), fmt.Sprintf("%+.0f", s.FDsPerMin),
		fmt.Sprint(s.TCPStates["CLOSE_WAIT"]), in(s.FDLimitIn), in(s.NprocLimitIn))
	// With --origin, the code behind each growing group.
	for _, g := range s.FDGroupsGrowing {
		if err == nil && g.Origin != "" {
			_, err = fmt.Fprintf(l.W, "  grew: %s\n", GroupLine(g))
		}
	}
	return err
}

// Signed prints a change with its sign: +3, -1, +0.
func Signed(n int) string { return fmt.Sprintf("%+d", n) }

// in prints a projection: "~6m12s", or "-" when nothing grows.
func in(secs *float64) string {
	if secs == nil {
		return "-"
	}
	return "~" + Age(time.Duration(*secs*float64(time.Second)))
}

// Projection says when a limit runs out at the current rate.
func Projection(s *watch.Sample) string {
	var parts []string
	if s.FDLimitIn != nil {
		parts = append(parts, fmt.Sprintf("fds %+.0f/min: soft limit %s reached in %s", s.FDsPerMin, s.FDSoftLimit, in(s.FDLimitIn)))
	}
	if s.NprocLimitIn != nil {
		parts = append(parts, fmt.Sprintf("uid %d's processes grow: RLIMIT_NPROC %s reached in %s", s.UID, s.NprocSoftLimit, in(s.NprocLimitIn)))
	}
	if s.LimitIn != nil && s.Limit != "RLIMIT_NOFILE" && s.Limit != "RLIMIT_NPROC" {
		parts = append(parts, fmt.Sprintf("tasks %+.0f/min: %s reached in %s", s.TasksPerMinute(), s.Limit, in(s.LimitIn)))
	}
	if len(parts) == 0 {
		return "limits   no count grows toward a limit"
	}
	if s.Limit != "" && len(parts) > 1 {
		parts = append(parts, s.Limit+" first")
	}
	return "limits   " + strings.Join(parts, "; ")
}

// HostJSONLines writes each host sample as one JSON object on one line.
type HostJSONLines struct{ W io.Writer }

// Emit writes s.
func (j HostJSONLines) Emit(s *watch.HostSample) error { return jsonLine(j.W, s) }

// HostLines writes one line per host sample, like vmstat: the totals and
// the most urgent growth.
type HostLines struct {
	W      io.Writer
	header bool
}

// Emit writes s.
func (l *HostLines) Emit(s *watch.HostSample) error {
	if !l.header {
		l.header = true
		if _, err := fmt.Fprintf(l.W, "%-8s %9s %8s %8s  %s\n", "time", "processes", "threads", "zombies", "most urgent growth"); err != nil {
			return err
		}
	}
	top := "nothing grows"
	if len(s.Growing) > 0 {
		top = GrowingLine(s.Growing[0])
	}
	if len(s.Containers) > 0 {
		top += "; " + ContainerLine(s.Containers[0])
	}
	_, err := fmt.Fprintf(l.W, "%-8s %9d %8d %8d  %s\n", s.Time.Format("15:04:05"), s.Processes, s.Threads, s.Zombies, top)
	return err
}

// GrowingLine says what grows in a process, and how soon it meets a limit.
func GrowingLine(g watch.Growing) string {
	var parts []string
	if g.ZombiesPerMin > 0 {
		parts = append(parts, fmt.Sprintf("zombies %d %+.0f/min", g.Zombies, g.ZombiesPerMin))
	}
	if g.FDsPerMin > 0 {
		parts = append(parts, fmt.Sprintf("fds %d %+.0f/min", g.FDs, g.FDsPerMin))
	}
	if g.TasksPerMin > 0 && g.ZombiesPerMin <= 0 {
		parts = append(parts, fmt.Sprintf("tasks %d %+.0f/min", g.Tasks, g.TasksPerMin))
	}
	if g.ReapLatencyP99 != nil {
		parts = append(parts, fmt.Sprintf("reaps late (p99 %.2fs)", *g.ReapLatencyP99))
	}
	line := fmt.Sprintf("pid %d (%s) %s since %s", g.PID, Printable(g.Comm), strings.Join(parts, ", "), g.Since.Format("15:04:05"))
	if g.LimitInSeconds != nil {
		line += fmt.Sprintf(": %s in %s", g.Limit, in(g.LimitInSeconds))
	}
	if len(g.FDGroupsGrowing) > 0 {
		line += "; grew: " + GroupLine(g.FDGroupsGrowing[0])
	}
	return line
}

// ContainerLine says what grows in a cgroup, and how soon it meets its
// pids.max.
func ContainerLine(c watch.ContainerGrowth) string {
	var parts []string
	if c.PidsPerMin > 0 {
		parts = append(parts, fmt.Sprintf("pids %d %+.0f/min", c.Pids, c.PidsPerMin))
	}
	if c.FDsPerMin > 0 {
		parts = append(parts, fmt.Sprintf("fds %d %+.0f/min", c.FDs, c.FDsPerMin))
	}
	if c.ZombiesPerMin > 0 {
		parts = append(parts, fmt.Sprintf("zombies %d %+.0f/min", c.Zombies, c.ZombiesPerMin))
	}
	if c.RefusedInWindow > 0 {
		parts = append(parts, fmt.Sprintf("%d forks refused", c.RefusedInWindow))
	}
	line := fmt.Sprintf("cgroup %s %s", Printable(c.Cgroup), strings.Join(parts, ", "))
	if c.LimitInSeconds != nil {
		line += fmt.Sprintf(": pids.max in %s", in(c.LimitInSeconds))
	}
	return line
}

// GroupLine names a growing group for a person: "+312 TCP CLOSE_WAIT to
// 10.1.2.3:5432 (312 now)".
func GroupLine(g watch.GroupGrowth) string {
	line := fmt.Sprintf("+%d %s (%d now)", g.Delta, GroupWhat(g.FDGroup), g.Count)
	if g.Origin != "" {
		line += ", opened at " + Printable(g.Origin)
	}
	return line
}

// GroupWhat names an fd group as a sentence does: "TCP CLOSE_WAIT to
// 10.0.0.5:5432", "pipes", "REG /var/log/app.log"; escaped.
func GroupWhat(g model.FDGroup) string {
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
	return Printable(strings.Join(what, " "))
}
