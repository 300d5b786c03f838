package model

import (
	"context"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/sockdiag"
)

// Source is an optional enrichment of a Process: facts that cost a read
// of their own or a conversation (TCP states, the bundled server's
// switches, and later cgroups and socket peers). Sources are listed where a
// command is wired, each with a name, never registered by init().
type Source interface {
	Name() string
	// Process adds the source's facts to p; an error leaves them out.
	Process(ctx context.Context, p *Process) error
}

// SourceFunc makes a Source of a name and a function.
func SourceFunc(name string, fn func(ctx context.Context, p *Process) error) Source {
	return funcSource{name, fn}
}

type funcSource struct {
	name string
	fn   func(ctx context.Context, p *Process) error
}

func (s funcSource) Name() string                                  { return s.name }
func (s funcSource) Process(ctx context.Context, p *Process) error { return s.fn(ctx, p) }

// SourceResult is how one source did in one reading: for the exporter's
// per-source success and duration, as node_exporter reports its collectors.
type SourceResult struct {
	Name     string
	Duration time.Duration
	Err      error
}

// addResult adds one run of the source name (how long it took, and its
// error) to the reading's results.
func addResult(results map[string]*SourceResult, name string, took time.Duration, err error) {
	res := results[name]
	if res == nil {
		res = &SourceResult{Name: name}
		results[name] = res
	}
	res.Duration += took
	if err != nil {
		res.Err = err
	}
}

// passSource is a source that keeps something for the length of one
// reading (a network namespace's socket table), told when one begins.
type passSource interface {
	BeginPass()
}

// passFailer is a source that works for a whole reading at once (the
// bundled server's probes, made together) and can fail as a whole: its
// error marks the source failed in the reading's SourceResults.
type passFailer interface {
	PassErr() error
}

// beginPass tells the sources a reading begins, and drops the socket
// tables the last one kept.
func (r *Reader) beginPass() {
	if r.sockets != nil {
		r.sockets.Forget()
	}
	for _, s := range r.Sources {
		if ps, ok := s.(passSource); ok {
			ps.BeginPass()
		}
	}
}

// TCPStates is the source that counts the TCP sockets among a process's
// fds by state (see sockdiag.Tables: netlink on the live /proc, one dump
// per namespace per reading; the net/tcp files of a fixture tree or
// another --proc-root). It needs the fd kinds (Options.FDTypes); without
// them it adds nothing.
func TCPStates(fs *proc.FS) Source { return tcpSource{sockdiag.NewTables(fs)} }

type tcpSource struct{ tables *sockdiag.Tables }

func (tcpSource) Name() string { return "tcp" }

func (s tcpSource) BeginPass() { s.tables.Forget() }

func (s tcpSource) Process(_ context.Context, p *Process) error {
	if p.sockets == nil {
		return nil
	}
	states, err := s.tables.TCPStates(p.PID, p.sockets)
	if err != nil {
		return classify(p.PID, "tcp states", s.tables.FS().PIDPath(p.PID, "net", "tcp"), err)
	}
	p.TCPStates = states
	return nil
}
