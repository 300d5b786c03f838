package render

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// newTable is a borderless, left-aligned table like ps prints, with the
// header text kept as written (tablewriter upper-cases it by default).
func newTable(w io.Writer, header ...string) *tablewriter.Table {
	t := tablewriter.NewTable(w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders: tw.BorderNone,
			Symbols: tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{
				Separators: tw.Separators{BetweenColumns: tw.Off, BetweenRows: tw.Off, ShowHeader: tw.Off},
				Lines:      tw.Lines{ShowHeaderLine: tw.Off},
			},
		})),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithTrimSpace(tw.Off),
		tablewriter.WithPadding(tw.Padding{Left: "", Right: "  ", Overwrite: true}),
	)
	t.Header(header)
	return t
}

// flushTrimmed writes b to w without the padding tablewriter leaves at
// the end of lines.
func flushTrimmed(w io.Writer, b *bytes.Buffer) error {
	var out bytes.Buffer
	for line := range bytes.Lines(b.Bytes()) {
		out.Write(bytes.TrimRight(line, " \n"))
		out.WriteByte('\n')
	}
	_, err := w.Write(out.Bytes())
	return err
}

// Table writes s as a person reads it: the process line, then one row per
// measure with its limit and use, then the diagnosis.
func Table(out io.Writer, s *model.Process) error {
	var b bytes.Buffer
	w := &b
	head := newTable(w, "PID", "PPID", "USER", "STAT", "THREADS", "STARTED", "COMMAND")
	if err := head.Append(strconv.Itoa(s.PID), strconv.Itoa(s.PPID), Printable(s.User), s.State,
		strconv.Itoa(s.Threads), s.StartTime.Format("2006-01-02 15:04:05"), command(s)); err != nil {
		return err
	}
	if err := head.Render(); err != nil {
		return err
	}
	fmt.Fprintln(w)

	t := newTable(w, "WHAT", "USED", "LIMIT", "USE", "DETAIL")
	rows := [][]string{
		{"zombies", strconv.Itoa(s.Zombies), "", "", zombieDetail(s)},
		{"children", strconv.Itoa(s.Children), "", "", ""},
		fdRow(s),
	}
	if !s.KernelThread { // a kernel thread meets no user limit
		rows = append(rows, nprocRow(s))
	}
	rows = append(rows, []string{"SIGCHLD", string(s.Sigchld), "", "", sigchldDetail(s)})
	if row := pidsRow(s); row != nil {
		rows = append(rows, row)
	}
	if k := s.Kernel; k != nil {
		rows = append(rows, []string{"host tasks", strconv.Itoa(k.Tasks), fmt.Sprintf("%d / %d", k.PIDMax, k.ThreadsMax),
			percentOf(k.Tasks, k.PIDMax), "every process and thread on the host against kernel.pid_max / threads-max"})
	}
	if len(s.Limits) > 1 {
		l := s.Limits[0]
		rows = append(rows, []string{"binds first", "", "", strconv.FormatFloat(l.Ratio*100, 'f', 1, 64) + "%",
			l.Name + ": of its limits, the one with the least headroom"})
	}
	if srv := s.Server; srv != nil {
		rows = append(rows, []string{"server", "reaper=" + string(srv.Reaper), "", "",
			fmt.Sprintf("close-conn=%s, %d connection copies held, %d spawned, %d reaped, max-children %d (%d answered 503)",
				OnOff(srv.CloseConn), srv.HeldConns, srv.Spawned, srv.Reaped, srv.MaxChildren, srv.Busy)})
	}
	if err := t.Bulk(rows); err != nil {
		return err
	}
	if err := t.Render(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s\n", Printable(s.Diagnosis))
	for _, u := range s.Unread {
		fmt.Fprintf(w, "not read: %s\n", Printable(u))
	}
	return flushTrimmed(out, &b)
}

// command is the command line as ps's COMMAND column shows it, made
// printable; a process without one (a kernel thread, a zombie) in brackets.
func command(s *model.Process) string {
	if len(s.Cmdline) == 0 {
		return "[" + Printable(s.Comm) + "]"
	}
	return Printable(strings.Join(s.Cmdline, " "))
}

func zombieDetail(s *model.Process) string {
	var parts []string
	if s.DescendantZombies > s.Zombies {
		parts = append(parts, fmt.Sprintf("%d in descendants", s.DescendantZombies-s.Zombies))
	}
	if s.AdoptedZombies > 0 {
		parts = append(parts, fmt.Sprintf("%d adopted %s", s.AdoptedZombies, plural(s.AdoptedZombies, "orphan", "orphans")))
	}
	if rp := s.Reaping; rp != nil && rp.OldestExitSeconds != nil {
		parts = append(parts, "oldest exited "+exitedAgo(rp.OldestExitSeconds)+" ago")
	} else if len(s.ZombieList) > 0 {
		parts = append(parts, "exit times unknown, oldest started "+ageOf(s.ZombieList[0].AgeSeconds)+" ago")
	}
	if rp := s.Reaping; rp != nil && rp.ObservedSeconds > 0 {
		parts = append(parts, fmt.Sprintf("observed %.1fs: %d reaped", rp.ObservedSeconds, rp.Reaped))
	}
	return strings.Join(parts, ", ")
}

func fdRow(s *model.Process) []string {
	detail := FDKinds(s.FDTypes)
	if len(s.Denied) > 0 {
		detail = "kinds: permission denied (run as the process's user, as root, or with CAP_SYS_PTRACE)"
	}
	if s.FDs == nil {
		switch {
		case s.KernelThread:
			detail = "a kernel thread has no fd table"
		case s.State == "Z":
			detail = "a zombie has closed every fd"
		}
		return []string{"open fds", "?", limits(s.FDSoftLimit, s.FDHardLimit), "", detail}
	}
	if len(s.TCPStates) > 0 {
		detail = strings.Replace(detail, fmt.Sprintf("socket %d", s.FDTypes[proc.FDSocket]),
			fmt.Sprintf("socket %d (TCP %s)", s.FDTypes[proc.FDSocket], TCPStates(s.TCPStates)), 1)
	}
	if s.FDSlotsReserved > 0 {
		detail += fmt.Sprintf("; +%d slots reserved by threads in accept (they count toward the limit)", s.FDSlotsReserved)
	}
	return []string{"open fds", strconv.Itoa(*s.FDs), limits(s.FDSoftLimit, s.FDHardLimit), percent(s.FDRatio, s.FDSoftLimit), detail}
}

// FDKinds lists descriptor kinds, most first: "socket 140, pipe 4, ...".
// Anonymous inodes are summed, their kinds in parentheses.
func FDKinds(types map[string]int) string {
	anon := map[string]int{}
	plain := map[string]int{}
	anonTotal := 0
	for k, n := range types {
		if name, ok := strings.CutPrefix(k, "anon_inode:"); ok {
			anon[name] += n
			anonTotal += n
			continue
		}
		plain[k] = n
	}
	if anonTotal > 0 {
		plain["anon_inode"] = anonTotal
	}
	parts := make([]string, 0, len(plain))
	for _, k := range byCount(plain) {
		part := fmt.Sprintf("%s %d", k, plain[k])
		if k == "anon_inode" {
			var sub []string
			for _, a := range byCount(anon) {
				sub = append(sub, fmt.Sprintf("%s %d", a, anon[a]))
			}
			part += " (" + strings.Join(sub, ", ") + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

// TCPStates lists TCP socket states, most first: "CLOSE_WAIT 40, LISTEN 1".
func TCPStates(states map[string]int) string {
	parts := make([]string, 0, len(states))
	for _, k := range byCount(states) {
		parts = append(parts, fmt.Sprintf("%s %d", k, states[k]))
	}
	return strings.Join(parts, ", ")
}

// byCount orders keys by count, most first, then by name.
func byCount(m map[string]int) []string {
	return slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
}

func limits(soft, hard proc.Limit) string {
	return soft.String() + " / " + hard.String()
}

func percent(ratio float64, soft proc.Limit) string {
	if soft == proc.Unlimited {
		return "-"
	}
	return strconv.FormatFloat(ratio*100, 'f', 1, 64) + "%"
}

func nprocRow(s *model.Process) []string {
	if s.UIDProcesses == nil {
		return []string{"processes", "-", limits(s.NprocSoftLimit, s.NprocHardLimit), "", "uid 0: RLIMIT_NPROC is not enforced for root, so its tasks are not counted"}
	}
	return []string{"processes", strconv.Itoa(*s.UIDProcesses), limits(s.NprocSoftLimit, s.NprocHardLimit), percent(s.NprocRatio, s.NprocSoftLimit),
		fmt.Sprintf("processes+threads of uid %d (%s), zombies included", s.UID, Printable(s.User))}
}

func sigchldDetail(s *model.Process) string {
	var d string
	switch s.Sigchld {
	case proc.SigchldCaught:
		d = "a handler runs when a child exits"
	case proc.SigchldIgnored:
		d = "the kernel reaps children itself"
	default:
		d = "no handler: only an explicit wait reaps"
	}
	if s.SigchldBlocked {
		d += "; blocked"
	}
	if s.SigchldPending {
		d += "; one pending"
	}
	return d
}

// Rows writes a plain table with header.
func Rows(w io.Writer, header []string, rows [][]string) error {
	var b bytes.Buffer
	t := newTable(&b, header...)
	if err := t.Bulk(rows); err != nil {
		return err
	}
	if err := t.Render(); err != nil {
		return err
	}
	return flushTrimmed(w, &b)
}

// Zombies lists every zombie the way ps auxw shows them, so the two can be
// held side by side.
func Zombies(w io.Writer, r *model.Process) error {
	var b bytes.Buffer
	// AGE is since the child started, as ps's ELAPSED; EXITED since it
	// exited ("?" where the kernel does not tell).
	t := newTable(&b, "USER", "PID", "PPID", "STAT", "AGE", "EXITED", "EXIT", "COMMAND")
	for _, z := range r.ZombieList {
		user := "?"
		if z.UID != nil {
			user = Printable(z.User)
		}
		if err := t.Append(user, strconv.Itoa(z.PID), strconv.Itoa(z.PPID), "Z", ageOf(z.AgeSeconds), exitedAgo(z.ExitAgeSeconds), z.Exit, "["+Printable(z.Comm)+"] <defunct>"); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	return flushTrimmed(w, &b)
}

// OnOff prints a switch as the ctl command takes it.
func OnOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// ServerLine is a bundled server's settings and counters on one line: the
// one printer of them (ctl, the table's detail and the watch's keys agree).
func ServerLine(st *model.Server) string {
	return fmt.Sprintf("server pid %d on %s: reaper=%s close-conn=%s hold=%s max-children=%d; spawned %d, reaped %d, held conns %d, fork errors %d, accept errors %d, busy %d, child failures %d; spawn-to-reaped p50 %.1fms p99 %.1fms",
		st.PID, Printable(st.Addr), st.Reaper, OnOff(st.CloseConn), st.Hold, st.MaxChildren, st.Spawned, st.Reaped, st.HeldConns,
		st.ForkErrors, st.AcceptErrors, st.Busy, st.ChildFailures, st.ReapP50Ms, st.ReapP99Ms)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// pidsRow is the cgroup's pids against pids.max, and what the cgroup is.
func pidsRow(s *model.Process) []string {
	c := s.Cgroup
	if c == nil {
		return nil
	}
	what := Printable(c.Path)
	switch {
	case c.PodUID != "" && c.ContainerID != "":
		what = "pod " + c.PodUID + ", container " + shortID(c.ContainerID)
		if c.Runtime != "" {
			what += " (" + c.Runtime + ")"
		}
	case c.ContainerID != "":
		what = "container " + shortID(c.ContainerID)
		if c.Runtime != "" {
			what += " (" + c.Runtime + ")"
		}
	case c.Unit != "":
		what = Printable(c.Unit)
	}
	if c.PidsMax == nil || c.PidsCurrent == nil {
		return []string{"cgroup", "-", "", "", what + "; no pids.max on its way to the root"}
	}
	detail := what + "; pids.max of " + Printable(c.PidsCgroup) + " (zombies count)"
	if c.PidsRefused != nil && *c.PidsRefused > 0 {
		detail += fmt.Sprintf("; %d forks refused", *c.PidsRefused)
	}
	return []string{"cgroup pids", strconv.Itoa(*c.PidsCurrent), strconv.Itoa(*c.PidsMax), percentOf(*c.PidsCurrent, *c.PidsMax), detail}
}

func percentOf(used, limit int) string {
	if limit <= 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(used)/float64(limit)*100, 'f', 1, 64) + "%"
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// FDs lists every descriptor as lsof -p does (number, kind, protocol and
// state, addresses, target), then the groups, largest first.
func FDs(w io.Writer, p *model.Process) error {
	var b bytes.Buffer
	t := newTable(&b, "FD", "KIND", "PROTO", "STATE", "LOCAL", "REMOTE", "TARGET")
	for _, e := range p.FDList {
		target := Printable(e.Target)
		if e.Deleted {
			target += " (deleted)"
		}
		if err := t.Append(strconv.Itoa(e.FD), e.Kind, dash(e.Protocol), dash(e.TCPState), dash(Printable(e.Local)), dash(e.Remote), target); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	fmt.Fprintln(&b, "\nGROUPS (descriptors pointing at the same thing, largest first)")
	g := newTable(&b, "COUNT", "KIND", "PROTO", "STATE", "REMOTE", "TARGET")
	for _, e := range p.FDGroups {
		if err := g.Append(strconv.Itoa(e.Count), e.Kind, dash(e.Protocol), dash(e.TCPState), dash(e.Remote), dash(Printable(e.Target))); err != nil {
			return err
		}
	}
	if err := g.Render(); err != nil {
		return err
	}
	return flushTrimmed(w, &b)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
