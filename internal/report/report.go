// Package report turns a proc.Snapshot into what zombiewatch prints: the
// diagnosis sentence, the table a person reads at a glance, the ps-style
// zombie list and the JSON object. Every renderer reads the same Report.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Report is one process's reading and what it means.
type Report struct {
	*proc.Snapshot
	// Server holds the settings of a bundled server (cmd/server), read
	// through its control socket; nil for any other process.
	Server *control.Status `json:"server,omitempty"`
	// FDRatio is fds over the soft RLIMIT_NOFILE (0 if unknown or unlimited).
	FDRatio float64 `json:"fd_ratio"`
	// NprocRatio is uid_processes over the soft RLIMIT_NPROC.
	NprocRatio float64 `json:"nproc_ratio"`
	Diagnosis  string  `json:"diagnosis"`
}

// New derives the report of s; srv is the process's bundled-server
// status, or nil.
func New(s *proc.Snapshot, srv *control.Status) *Report {
	r := &Report{Snapshot: s, Server: srv}
	if s.FDs != nil {
		r.FDRatio = ratio(uint64(*s.FDs), s.FDSoftLimit)
	}
	if s.UIDProcesses != nil {
		r.NprocRatio = ratio(uint64(*s.UIDProcesses), s.NprocSoftLimit)
	}
	r.Diagnosis = Diagnose(s, srv) + r.connAdvice() + r.limitWarnings()
	return r
}

// connAdvice names the bundled server's switch for the descriptors it
// keeps on purpose.
func (r *Report) connAdvice() string {
	if r.Server == nil || r.Server.CloseConn || r.Server.HeldConns == 0 {
		return ""
	}
	return fmt.Sprintf("; it keeps its copy of every connection (%d held, close-conn off), so clients' sockets stay in CLOSE_WAIT: zombiewatch ctl --pid %d close-conn=on",
		r.Server.HeldConns, r.PID)
}

// nearLimit is the share of a limit from which the diagnosis warns.
const nearLimit = 0.8

// limitWarnings adds a sentence for each limit the process is close to.
func (r *Report) limitWarnings() string {
	var w string
	if cw := r.TCPStates["CLOSE_WAIT"]; cw > 0 && r.FDs != nil {
		w += fmt.Sprintf("; %d of its %d sockets are in CLOSE_WAIT: the peer closed and this process never did", cw, r.FDTypes[proc.FDSocket])
	}
	if r.FDRatio >= nearLimit {
		w += fmt.Sprintf("; its fds are at %.1f%% of the soft limit (%d of %s): find the leak (zombiewatch --pid %d) or raise the limit (ulimit -n, LimitNOFILE=)",
			r.FDRatio*100, *r.FDs, r.FDSoftLimit, r.PID)
	}
	if r.NprocRatio >= nearLimit {
		w += fmt.Sprintf("; uid %d runs %d processes and threads, %.1f%% of RLIMIT_NPROC %s: fork will fail with EAGAIN (zombies count too)",
			r.UID, *r.UIDProcesses, r.NprocRatio*100, r.NprocSoftLimit)
	}
	return w
}

func ratio(used uint64, limit proc.Limit) float64 {
	if limit == proc.Unlimited || limit == 0 {
		return 0
	}
	return math.Round(float64(used)/float64(limit)*1e4) / 1e4
}

// JSON writes r as one JSON object, indented for a person (indent) or on
// one line for a program: with thousands of zombies, indenting costs more
// than the rest of the encoding.
func JSON(w io.Writer, r *Report, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(r)
}

// Age prints a duration the way a person says it: 45s, 3m02s, 2h05m, 3d04h.
func Age(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	default:
		return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
	}
}

func ageOf(seconds float64) string {
	return Age(time.Duration(seconds * float64(time.Second)))
}
