// Package bundled is zombiewatch's side of the bundled server (cmd/server):
// the "server" source that reads a server's switches into the model, and
// the switching that ctl and the watch screen's keys do. The wire format
// is internal/control's; the model and the diagnosis never see it.
package bundled

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// probeBudget bounds the probes of one reading, all made at once: a
// bundled server answers in a millisecond; a process that binds a name
// under the prefix and never answers (anyone may) costs the reading this
// much once, not half a second each. maxProbes bounds how many are made.
const (
	probeBudget = 250 * time.Millisecond
	maxProbes   = 64
)

// Source reads a bundled server's switches into Process.Server. Only on
// the live /proc: a pid of another tree (a fixture, a container's /proc
// seen from the host) is not a process this host's sockets can reach. The
// control sockets are listed once per reading, and every process with
// one is asked at once, within probeBudget.
func Source(fs *proc.FS) model.Source { return &source{fs: fs} }

type source struct {
	fs     *proc.FS
	mu     sync.Mutex
	probed map[int]probe // this reading's answers by pid; nil: not probed yet
}

type probe struct {
	st  *control.Status
	err error
}

func (s *source) Name() string { return "server" }

// BeginPass forgets the last reading's answers.
func (s *source) BeginPass() {
	s.mu.Lock()
	s.probed = nil
	s.mu.Unlock()
}

func (s *source) Process(ctx context.Context, p *model.Process) error {
	if !s.fs.Live() {
		return nil
	}
	s.mu.Lock()
	if s.probed == nil {
		s.probed = probeAll(ctx)
	}
	r, ok := s.probed[p.PID]
	s.mu.Unlock()
	switch {
	case !ok, errors.Is(r.err, control.ErrNoServer), errors.Is(r.err, control.ErrImpostor):
		return nil // not a bundled server: nothing to add
	case r.err != nil:
		// A socket named like a server's that did not answer well in
		// time: the source failed for it (counted, named in unread).
		return r.err
	}
	p.Server = r.st
	return nil
}

// PassErr is the reading's probe failures as one error (a control socket
// that did not answer in time, or answered what no server would), nil
// when every probe that was made went well or none was made.
func (s *source) PassErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	failed, first := 0, error(nil)
	for _, r := range s.probed {
		if r.err != nil && !errors.Is(r.err, control.ErrNoServer) && !errors.Is(r.err, control.ErrImpostor) {
			if failed++; first == nil {
				first = r.err
			}
		}
	}
	if failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d control sockets failed (%v)", failed, len(s.probed), first)
}

// probeAll asks every process with a control socket for its status, all
// at once, each within probeBudget.
func probeAll(ctx context.Context) map[int]probe {
	listing, err := control.Listening()
	out := map[int]probe{}
	if err != nil {
		return out
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for pid, names := range listing {
		if n++; n > maxProbes {
			mu.Lock()
			out[pid] = probe{err: fmt.Errorf("pid %d: not asked: more than %d processes hold control sockets", pid, maxProbes)}
			mu.Unlock()
			continue
		}
		wg.Go(func() {
			st, err := control.CallNames(pid, names, control.Request{}, probeBudget)
			mu.Lock()
			out[pid] = probe{st, err}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// Switch applies req to the server with this pid and returns its settings
// after the change.
func Switch(pid int, req control.Request) (*model.Server, error) {
	st, err := control.Call(pid, req, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// NextReaper is the mode after cur in the order the watch's r key cycles.
func NextReaper(cur control.Reaper) control.Reaper {
	i := slices.Index(control.Reapers, cur)
	return control.Reapers[(i+1)%len(control.Reapers)]
}
