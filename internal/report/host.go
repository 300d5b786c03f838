package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// HostReport is a host-wide scan and what it means.
type HostReport struct {
	*proc.Host
	Parents []ParentReport `json:"parents"`
}

// ParentReport is one process holding zombies, with its diagnosis.
type ParentReport struct {
	proc.Parent
	// Role: "container init" (PID 1 of its pid namespace), "subreaper or
	// init" (it holds orphans it adopted), or "" for a plain parent.
	Role      string `json:"role"`
	Diagnosis string `json:"diagnosis"`
}

// NewHost derives the report of h. server, if not nil, gives a listed
// parent's bundled-server settings (nil for any other process), as for
// --pid, so that the diagnosis can name the server's own switch.
func NewHost(h *proc.Host, server func(pid int) *control.Status) *HostReport {
	r := &HostReport{Host: h, Parents: []ParentReport{}}
	for _, p := range h.Parents {
		var srv *control.Status
		if server != nil {
			srv = server(p.PID)
		}
		pr := ParentReport{Parent: p, Diagnosis: Diagnose(p.Snapshot(), srv)}
		switch {
		case p.NamespaceInit || p.PID == 1:
			pr.Role = "container init"
		case p.AdoptedZombies > 0:
			pr.Role = "subreaper or init"
		}
		r.Parents = append(r.Parents, pr)
	}
	return r
}

// HostJSON writes r as one JSON object, indented for a person (see JSON).
func HostJSON(w io.Writer, r *HostReport, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(r)
}

// HostTable writes the three lists a person reads first.
func HostTable(out io.Writer, r *HostReport) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d processes, %d threads, %d zombies\n\n", r.Processes, r.Threads, r.Zombies)

	fmt.Fprintln(&b, "PARENTS HOLDING ZOMBIES")
	if len(r.Parents) == 0 {
		fmt.Fprintln(&b, "none")
	} else {
		t := newTable(&b, "PID", "PPID", "USER", "COMMAND", "ZOMBIES", "OLDEST", "SIGCHLD", "ROLE")
		for _, p := range r.Parents {
			role := p.Role
			if role == "" {
				role = "-"
			}
			if err := t.Append(strconv.Itoa(p.PID), strconv.Itoa(p.PPID), p.User, p.Comm, strconv.Itoa(p.Zombies),
				ageOf(p.OldestAgeSeconds), string(p.Sigchld), role); err != nil {
				return err
			}
		}
		if err := t.Render(); err != nil {
			return err
		}
		for _, p := range r.Parents {
			fmt.Fprintf(&b, "  %s\n", p.Diagnosis)
		}
	}

	fmt.Fprintln(&b, "\nNEAREST THEIR FD LIMIT")
	t := newTable(&b, "PID", "USER", "COMMAND", "FDS", "SOFT LIMIT", "USE", "KINDS")
	for _, u := range r.FDUsers {
		kinds := FDKinds(u.FDTypes)
		if len(u.TCPStates) > 0 {
			kinds += "; TCP " + TCPStates(u.TCPStates)
		}
		if err := t.Append(strconv.Itoa(u.PID), u.User, u.Comm, strconv.Itoa(u.FDs), u.FDSoftLimit.String(),
			percent(u.FDRatio, u.FDSoftLimit), kinds); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}

	fmt.Fprintln(&b, "\nTASKS PER UID (what RLIMIT_NPROC counts: processes, threads and zombies)")
	t = newTable(&b, "UID", "USER", "PROCESSES", "TASKS", "ZOMBIES", "LOWEST SOFT LIMIT", "USE")
	for _, u := range r.UIDs {
		use := percent(u.Ratio, u.NprocSoftLimit)
		if u.UID == 0 {
			use += " (not enforced for root)"
		}
		if err := t.Append(strconv.Itoa(u.UID), u.User, strconv.Itoa(u.Processes), strconv.Itoa(u.Tasks),
			strconv.Itoa(u.Zombies), u.NprocSoftLimit.String(), use); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	for _, d := range r.Denied {
		fmt.Fprintf(&b, "\nnot read: %s\n", d)
	}
	return flushTrimmed(out, &b)
}
