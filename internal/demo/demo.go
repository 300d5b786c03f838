// Package demo walks through the lessons of Part 3's forking server on
// the bundled server, live: zombies pile up with the reaper off, coalesced
// signals defeat one wait per SIGCHLD, a waitpid loop clears them, and a
// parent that keeps its copy of each connection leaks a socket per request.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/load"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Config is one demo run.
type Config struct {
	// Server builds the command that runs the bundled server with args
	// (zombiewatch server ARGS...).
	Server func(args ...string) *exec.Cmd
	// Requests per phase, and the size of the bursts of phases 2 and 3.
	Requests, Burst int
	// Phases to run, 1-7; empty runs them all.
	Phases []int
	// Out receives the narration.
	Out io.Writer
	// PS runs ps for the cross-check; nil when ps is not installed.
	PS func(ppid int) (int, error)
}

// Phase is one lesson's measured outcome.
type Phase struct {
	Phase     int    `json:"phase"`
	Name      string `json:"name"`
	Lesson    string `json:"lesson"`
	Requests  int    `json:"requests"`
	Zombies   int    `json:"zombies"`              // zombies at the end of the phase
	PSZombies *int   `json:"ps_zombies,omitempty"` // what ps counted, if it ran
	FDs       int    `json:"fds"`                  // the parent's fds at the end of the phase
	FDsBefore int    `json:"fds_before"`
	CloseWait int    `json:"close_wait"`
	// Recover is how long the switch took to bring zombies to 0 (or fds
	// back to where they were), when the phase switches something on.
	RecoverMs *float64 `json:"recover_ms,omitempty"`
	// Exit-to-reap p50 and p99 under reaper wait and loop (phase 7, from
	// the process events).
	WaitP50Ms *float64 `json:"wait_p50_ms,omitempty"`
	WaitP99Ms *float64 `json:"wait_p99_ms,omitempty"`
	LoopP50Ms *float64 `json:"loop_p50_ms,omitempty"`
	LoopP99Ms *float64 `json:"loop_p99_ms,omitempty"`
	Summary   string   `json:"summary"`
}

// Point is one sample of the server over the run, for the chart.
type Point struct {
	T       float64 `json:"t"` // seconds since the start
	Phase   int     `json:"phase"`
	Zombies int     `json:"zombies"`
	FDs     int     `json:"fds"`
}

// Result is the whole run.
type Result struct {
	PID     int           `json:"pid"`
	Addr    string        `json:"addr"`
	Phases  []Phase       `json:"phases"`
	Points  []Point       `json:"points"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// run is one demo in progress.
type run struct {
	cfg   Config
	zw    *model.Reader
	pid   int
	addr  string
	start time.Time

	mu     sync.Mutex
	phase  int
	points []Point

	// after runs once the server and its children are gone (removing the
	// cgroup of phase 6, which a child still exiting would keep busy).
	after []func()
}

// Run starts the server, runs the phases and stops the server, leaving no
// process behind, also when ctx is cancelled (Ctrl-C) midway.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	fs, err := proc.New("/proc")
	if err != nil {
		return nil, err
	}
	// Orphans of a server that had to be killed come to us, not to a
	// PID 1 that may never reap them.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
	}
	// The demo bounds its own load (--requests, --burst), so the server's
	// --max-children is lifted: with the reaper off, zombies count.
	cmd := cfg.Server("--addr", "127.0.0.1:0", "--reaper", "off", "--close-conn=true", "--log-level", "error", "--max-children", "0")
	var serverLog strings.Builder
	cmd.Stderr = &lockedWriter{w: &serverLog}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the server: %w", err)
	}
	zw := model.NewReader(fs)
	zw.Sources = []model.Source{model.TCPStates(fs)}
	r := &run{cfg: cfg, zw: zw, pid: cmd.Process.Pid, start: time.Now()}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		r.stop(cmd, exited)
		for _, f := range r.after {
			f()
		}
	}()

	st, err := r.waitServer(ctx, exited)
	if err != nil {
		if ended(ctx) {
			return nil, errors.New("interrupted while the server started: it was stopped")
		}
		return nil, fmt.Errorf("%w; server said: %s", err, strings.TrimSpace(serverLog.String()))
	}
	r.addr = st.Addr
	fmt.Fprintf(cfg.Out, "zombiewatch demo: the bundled server runs as pid %d on %s (a child process per connection)\n\n", r.pid, r.addr)

	sampling, stopSampling := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() { r.sample(sampling); close(samplerDone) }()
	res, err := r.phases(ctx)
	stopSampling()
	<-samplerDone
	if err != nil {
		return nil, err
	}
	res.Points = r.points
	res.Elapsed = time.Since(r.start)
	return res, nil
}

// phases runs the lessons asked for (all seven by default), in order.
func (r *run) phases(ctx context.Context) (*Result, error) {
	res := &Result{PID: r.pid, Addr: r.addr}
	phases := r.cfg.Phases
	if len(phases) == 0 {
		phases = []int{1, 2, 3, 4, 5, 6, 7}
	}
	for _, n := range phases {
		r.setPhase(n)
		p, err := lessons[n-1](ctx, r)
		if err != nil {
			if ended(ctx) {
				return nil, fmt.Errorf("interrupted in phase %d: the server and its children were stopped", n)
			}
			return nil, fmt.Errorf("phase %d: %w", n, err)
		}
		p.Phase = n
		res.Phases = append(res.Phases, p)
		fmt.Fprintf(r.cfg.Out, "%d. %s\n   %s\n\n", n, p.Summary, p.Lesson)
	}
	return res, nil
}

// stop ends the server with SIGTERM (it reaps its children), kills it if it
// does not stop, and reaps whatever was orphaned to us.
func (r *run) stop(cmd *exec.Cmd, exited chan error) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
	for {
		if pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); pid <= 0 || err != nil {
			return
		}
	}
}

func (r *run) waitServer(ctx context.Context, exited chan error) (*control.Status, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := control.Call(r.pid, control.Request{}, time.Second)
		if err == nil {
			return st, nil
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("the server exited at start: %v", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the server did not answer on its control socket: %w", err)
		}
	}
}

func (r *run) setPhase(n int) {
	r.mu.Lock()
	r.phase = n
	r.mu.Unlock()
}

// sample records the server's zombies and fds every 100 ms for the chart.
func (r *run) sample(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if snap, err := r.snapshot(false); err == nil {
			r.mu.Lock()
			r.points = append(r.points, Point{T: time.Since(r.start).Seconds(), Phase: r.phase, Zombies: snap.Zombies, FDs: *snap.FDs})
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *run) snapshot(kinds bool) (*model.Process, error) {
	return r.zw.Process(context.Background(), r.pid, model.Options{FDTypes: kinds})
}

func (r *run) set(args ...string) error {
	req, err := control.ParseRequest(args)
	if err != nil {
		return err
	}
	_, err = control.Call(r.pid, req, 2*time.Second)
	return err
}

// ended tells whether ctx is cancelled or past its deadline. A dial
// bounded by ctx's deadline can fail with a timeout a moment before ctx's
// own timer marks it done.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// load sends n requests from clients concurrent clients and checks that
// every one got 200.
func (r *run) load(ctx context.Context, clients, n int) error {
	res := load.Run(ctx, load.Config{Addr: r.addr, Clients: clients, Conns: n / clients, Timeout: 10 * time.Second})
	if res.OK() != res.Conns {
		return fmt.Errorf("load: %v", res)
	}
	return nil
}

// poll reads the server every 10 ms until done says so, or 10 s pass.
func (r *run) poll(ctx context.Context, what string, done func(*model.Process) bool) (*model.Process, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		snap, err := r.snapshot(true)
		if err != nil {
			return nil, err
		}
		if done(snap) {
			return snap, nil
		}
		if time.Now().After(deadline) {
			return snap, fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// settled waits until every child has finished and the zombie count and
// fds have held still for 300 ms (a reaper may still be working).
func (r *run) settled(ctx context.Context) (*model.Process, error) {
	var last *model.Process
	var since time.Time
	return r.poll(ctx, "the server to settle", func(s *model.Process) bool {
		if last == nil || s.Zombies != last.Zombies || *s.FDs != *last.FDs || s.Children != s.Zombies {
			last, since = s, time.Now()
			return false
		}
		return time.Since(since) >= 300*time.Millisecond
	})
}

// psCount cross-checks the zombie count with ps, when it is installed.
func (r *run) psCount() *int {
	if r.cfg.PS == nil {
		return nil
	}
	n, err := r.cfg.PS(r.pid)
	if err != nil {
		return nil
	}
	return &n
}

func ms(d time.Duration) *float64 {
	v := float64(d.Microseconds()) / 1000
	return &v
}

// lockedWriter serialises writes from the server's stderr copier.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// PSZombies counts ppid's zombie children with ps (procps).
func PSZombies(ppid int) (int, error) {
	out, err := exec.Command("ps", "-o", "stat=", "--ppid", strconv.Itoa(ppid)).Output()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1) {
		return 0, err
	}
	return strings.Count(string(out), "Z"), nil
}
