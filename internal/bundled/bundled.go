// Package bundled is zombiewatch's side of the bundled server (cmd/server):
// the "server" source that reads a server's switches into the model, and
// the switching that ctl and the watch screen's keys do. The wire format
// is internal/control's; the model and the diagnosis never see it.
package bundled

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// probeTimeout bounds the status read of a listed process: any other
// process has no socket, and the connect fails at once.
const probeTimeout = 500 * time.Millisecond

// Source reads a bundled server's switches into Process.Server. Only on
// the live /proc: a pid of another tree (a fixture, a container's /proc
// seen from the host) is not a process this host's sockets can reach. The
// control sockets are listed once per reading, and only a process with
// one is asked.
func Source(fs *proc.FS) model.Source { return &source{fs: fs} }

type source struct {
	fs        *proc.FS
	mu        sync.Mutex
	listening map[int][]string // this reading's control sockets by pid; nil: not listed yet
}

func (s *source) Name() string { return "server" }

// BeginPass forgets the last reading's listing.
func (s *source) BeginPass() {
	s.mu.Lock()
	s.listening = nil
	s.mu.Unlock()
}

func (s *source) Process(ctx context.Context, p *model.Process) error {
	if !s.fs.Live() {
		return nil
	}
	s.mu.Lock()
	if s.listening == nil {
		l, err := control.Listening()
		if err != nil {
			l = map[int][]string{}
		}
		s.listening = l
	}
	names := s.listening[p.PID]
	s.mu.Unlock()
	if len(names) == 0 {
		return nil // not a bundled server: nothing to add
	}
	st, err := control.CallNames(p.PID, names, control.Request{}, probeTimeout)
	if err != nil {
		return nil
	}
	p.Server = FromStatus(st)
	return nil
}

// FromStatus is the model's view of a server's reply.
func FromStatus(st *control.Status) *model.Server {
	return &model.Server{
		Reaper: diagnose.ServerReaper(st.Reaper), CloseConn: st.CloseConn, Hold: st.Hold.String(),
		PID: st.PID, Addr: st.Addr, Spawned: int64(st.Spawned), Reaped: int64(st.Reaped),
		Unreaped: int64(st.Unreaped), HeldConns: st.HeldConns, ForkErrors: int64(st.ForkErrors),
		AcceptErrors: int64(st.AcceptErrors), ReapP50Ms: st.ReapP50Ms, ReapP99Ms: st.ReapP99Ms,
		MaxChildren: st.MaxChildren, Busy: int64(st.Busy), ChildFailures: int64(st.ChildFailures),
	}
}

// Switch applies req to the server with this pid and returns its settings
// after the change.
func Switch(pid int, req control.Request) (*model.Server, error) {
	st, err := control.Call(pid, req, 2*time.Second)
	if err != nil {
		return nil, err
	}
	return FromStatus(st), nil
}

// NextReaper is the mode after cur in the order the watch's r key cycles.
func NextReaper(cur diagnose.ServerReaper) control.Reaper {
	i := slices.Index(control.Reapers, control.Reaper(cur))
	return control.Reapers[(i+1)%len(control.Reapers)]
}
