package render

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// hostJSON is the host scan's --json object: the model's Host with each
// list projected to the keys that answer its question.
type hostJSON struct {
	Processes int               `json:"processes"`
	Threads   int               `json:"threads"`
	Zombies   int               `json:"zombies"`
	FDUsers   []fdUserJSON      `json:"fd_users"`
	UIDs      []model.UIDUsage  `json:"uids"`
	Denied    []string          `json:"denied,omitempty"`
	Uncounted []string          `json:"fds_uncounted,omitempty"`
	Skipped   int               `json:"skipped,omitempty"`
	Parents   []parentJSON      `json:"parents"`
	Cgroups   []model.CgroupUse `json:"cgroups,omitempty"`
	Kernel    *model.Kernel     `json:"kernel,omitempty"`
}

type parentJSON struct {
	PID              int     `json:"pid"`
	PPID             int     `json:"ppid"`
	Comm             string  `json:"comm"`
	UID              int     `json:"uid"`
	User             string  `json:"user"`
	State            string  `json:"state"`
	Zombies          int     `json:"zombies"`
	AdoptedZombies   int     `json:"adopted_zombies"`
	OldestAgeSeconds float64 `json:"oldest_zombie_age_seconds"`
	// OldestExitSeconds: since the oldest zombie exited, null when unknown;
	// Reaping: the time evidence its cause rests on.
	OldestExitSeconds *float64         `json:"oldest_exit_age_seconds"`
	Reaping           *model.Reaping   `json:"reaping"`
	NamespaceInit     bool             `json:"namespace_init"`
	Sigchld           proc.Disposition `json:"sigchld"`
	SigchldBlocked    bool             `json:"sigchld_blocked"`
	// Role: "container init" (PID 1 of its pid namespace), "subreaper or
	// init" (it holds orphans it adopted), or "" for a plain parent.
	Role      string         `json:"role"`
	Cause     diagnose.Cause `json:"cause"`
	Diagnosis string         `json:"diagnosis"`
}

type fdUserJSON struct {
	PID         int            `json:"pid"`
	Comm        string         `json:"comm"`
	UID         int            `json:"uid"`
	User        string         `json:"user"`
	FDs         int            `json:"fds"`
	FDSoftLimit proc.Limit     `json:"fd_soft_limit"`
	FDRatio     float64        `json:"fd_ratio"`
	FDTypes     map[string]int `json:"fd_types,omitempty"`
	TCPStates   map[string]int `json:"tcp_states,omitempty"`
}

func toHostJSON(h *model.Host) hostJSON {
	j := hostJSON{Processes: h.Processes, Threads: h.Threads, Zombies: h.Zombies, UIDs: h.UIDs,
		Denied: h.Denied, Uncounted: h.Uncounted, Skipped: h.Skipped, FDUsers: []fdUserJSON{}, Parents: []parentJSON{},
		Cgroups: h.Cgroups, Kernel: h.Kernel}
	for _, p := range h.Parents {
		j.Parents = append(j.Parents, parentJSON{PID: p.PID, PPID: p.PPID, Comm: p.Comm, UID: p.UID, User: p.User,
			State: p.State, Zombies: p.Zombies, AdoptedZombies: p.AdoptedZombies,
			OldestAgeSeconds: p.OldestAge().Seconds(), OldestExitSeconds: oldestExit(p), Reaping: p.Reaping, NamespaceInit: p.NamespaceInit,
			Sigchld: p.Sigchld, SigchldBlocked: p.SigchldBlocked,
			Role: diagnose.Role(p.Evidence()), Cause: p.Cause, Diagnosis: p.Diagnosis})
	}
	for _, u := range h.FDUsers {
		j.FDUsers = append(j.FDUsers, fdUserJSON{PID: u.PID, Comm: u.Comm, UID: u.UID, User: u.User, FDs: *u.FDs,
			FDSoftLimit: u.FDSoftLimit, FDRatio: u.FDRatio, FDTypes: u.FDTypes, TCPStates: u.TCPStates})
	}
	return j
}

// oldestExit is how long ago p's oldest zombie exited, nil when unknown.
func oldestExit(p *model.Process) *float64 {
	if p.Reaping == nil {
		return nil
	}
	return p.Reaping.OldestExitSeconds
}

// exitedAgo prints an exit age for a column: "1.5s", "2m00s", "?" unknown.
func exitedAgo(s *float64) string {
	switch {
	case s == nil:
		return "?"
	case *s < 10:
		return strconv.FormatFloat(*s, 'f', 1, 64) + "s"
	}
	return Age(time.Duration(*s * float64(time.Second)))
}

// HostJSON writes h as one JSON object, indented for a person (see JSON).
func HostJSON(w io.Writer, h *model.Host, indent bool) error {
	return encode(w, toHostJSON(h), indent)
}

// HostTable writes the three lists a person reads first.
func HostTable(out io.Writer, r *model.Host) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d processes, %d threads, %d zombies\n\n", r.Processes, r.Threads, r.Zombies)
	for _, section := range []func(*bytes.Buffer, *model.Host) error{parentsTable, fdUsersTable, uidsTable, cgroupsTable} {
		if err := section(&b, r); err != nil {
			return err
		}
	}
	if k := r.Kernel; k != nil {
		fmt.Fprintf(&b, "\nKERNEL: %d tasks of pid_max %d (%s) and threads-max %d (%s); %d open files of file-max %d\n",
			k.Pids, k.PIDMax, percentOf(k.Pids, k.PIDMax), k.ThreadsMax, percentOf(k.Threads, k.ThreadsMax), k.FileNr, k.FileMax)
	}
	if len(r.Denied) > 0 {
		fmt.Fprintln(&b)
	}
	for _, d := range r.Denied {
		fmt.Fprintf(&b, "not read: %s\n", d)
	}
	if n := len(r.Uncounted); n > 0 {
		fmt.Fprintf(&b, "\nfds not counted for %d %s (left out of NEAREST THEIR FD LIMIT): %s\n", n, plural(n, "process", "processes"), r.Uncounted[0])
	}
	if r.Skipped > 0 {
		fmt.Fprintf(&b, "\nskipped %d pid %s whose files did not parse\n", r.Skipped, plural(r.Skipped, "directory", "directories"))
	}
	return flushTrimmed(out, &b)
}

// parentsTable: the parents holding zombies, then each one's diagnosis.
func parentsTable(b *bytes.Buffer, r *model.Host) error {
	fmt.Fprintln(b, "PARENTS HOLDING ZOMBIES")
	if len(r.Parents) == 0 {
		fmt.Fprintln(b, "none")
		return nil
	}
	t := newTable(b, "PID", "PPID", "USER", "COMMAND", "ZOMBIES", "EXITED", "SIGCHLD", "ROLE")
	for _, p := range r.Parents {
		role := diagnose.Role(p.Evidence())
		if role == "" {
			role = "-"
		}
		if err := t.Append(strconv.Itoa(p.PID), strconv.Itoa(p.PPID), Printable(p.User), Printable(p.Comm), strconv.Itoa(p.Zombies),
			exitedAgo(oldestExit(p)), string(p.Sigchld), role); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	for _, p := range r.Parents {
		fmt.Fprintf(b, "  %s\n", Printable(p.Diagnosis))
	}
	return nil
}

// fdUsersTable: the processes nearest their fd limit.
func fdUsersTable(b *bytes.Buffer, r *model.Host) error {
	fmt.Fprintln(b, "\nNEAREST THEIR FD LIMIT")
	t := newTable(b, "PID", "USER", "COMMAND", "FDS", "SOFT LIMIT", "USE", "KINDS")
	for _, u := range r.FDUsers {
		kinds := FDKinds(u.FDTypes)
		if len(u.TCPStates) > 0 {
			kinds += "; TCP " + TCPStates(u.TCPStates)
		}
		if err := t.Append(strconv.Itoa(u.PID), Printable(u.User), Printable(u.Comm), strconv.Itoa(*u.FDs), u.FDSoftLimit.String(),
			percent(u.FDRatio, u.FDSoftLimit), kinds); err != nil {
			return err
		}
	}
	return t.Render()
}

// uidsTable: each uid's tasks against RLIMIT_NPROC.
func uidsTable(b *bytes.Buffer, r *model.Host) error {
	fmt.Fprintln(b, "\nTASKS PER UID (what RLIMIT_NPROC counts: processes, threads and zombies)")
	t := newTable(b, "UID", "USER", "PROCESSES", "TASKS", "ZOMBIES", "LOWEST SOFT LIMIT", "USE")
	for _, u := range r.UIDs {
		use := percent(u.Ratio, u.NprocSoftLimit)
		if u.UID == 0 {
			use += " (not enforced for root)"
		}
		if err := t.Append(strconv.Itoa(u.UID), Printable(u.User), strconv.Itoa(u.Processes), strconv.Itoa(u.Tasks),
			strconv.Itoa(u.Zombies), u.NprocSoftLimit.String(), use); err != nil {
			return err
		}
	}
	return t.Render()
}

// cgroupsTable: the cgroups with a pids.max or holding zombies, if any.
func cgroupsTable(b *bytes.Buffer, r *model.Host) error {
	if len(r.Cgroups) == 0 {
		return nil
	}
	fmt.Fprintln(b, "\nCGROUPS (containers, pods, units) WITH A pids.max OR HOLDING ZOMBIES")
	t := newTable(b, "CGROUP", "PIDS", "MAX", "USE", "REFUSED", "ZOMBIES", "WORST PARENT")
	for _, c := range r.Cgroups {
		pids, max, use, refused := "-", "-", "-", "-"
		if c.PidsCurrent != nil && c.PidsMax != nil {
			pids, max, use = strconv.Itoa(*c.PidsCurrent), strconv.Itoa(*c.PidsMax), percentOf(*c.PidsCurrent, *c.PidsMax)
		}
		if c.PidsRefused != nil {
			refused = strconv.Itoa(*c.PidsRefused)
		}
		worst := "-"
		if c.WorstParent != 0 {
			worst = fmt.Sprintf("%d (%s)", c.WorstParent, Printable(c.WorstParentComm))
		}
		if err := t.Append(cgroupName(c.Cgroup), pids, max, use, refused, strconv.Itoa(c.Zombies), worst); err != nil {
			return err
		}
	}
	return t.Render()
}

// cgroupName is a cgroup as a person names it: pod and container, a
// container, a unit, or its path.
func cgroupName(c model.Cgroup) string {
	switch {
	case c.PodUID != "" && c.ContainerID != "":
		return "pod " + c.PodUID + " container " + shortID(c.ContainerID)
	case c.PodUID != "":
		return "pod " + c.PodUID
	case c.ContainerID != "":
		return "container " + shortID(c.ContainerID)
	case c.Unit != "":
		return Printable(c.Unit)
	}
	return Printable(c.Path)
}
