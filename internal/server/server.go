// Package server is the bundled forking HTTP server: a Go port of the
// concurrent server of Ruslan Spivak's "Let's Build A Web Server, Part 3"
// (webserver3c-3g, https://ruslanspivak.com/lsbaws-part3/; "Part 3" in the
// project's comments), made to show each of its lessons on demand.
//
// The parent accepts connections and hands each to a new child process, its
// own binary re-executed with the connection as fd 3 (Go cannot fork without
// exec). How the parent collects finished children (the Reaper) and whether
// it closes its copy of each connection can be switched while it runs,
// through package control. Configured right it is a robust server: it
// survives running out of processes or descriptors, and shuts down leaving
// no child behind.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/cgroup"
	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Config is the server's configuration. Reaper and CloseConn are only the
// starting values: control switches them live.
type Config struct {
	Addr      string
	Reaper    control.Reaper
	CloseConn bool
	// Child is how each child is run; see ChildConfig.
	Child ChildConfig
	// Grace is how long shutdown waits for children before killing them.
	Grace time.Duration
	// NoFile and NProc, when above 0, set RLIMIT_NOFILE and RLIMIT_NPROC
	// (soft and hard) at start, as `ulimit -n` and `ulimit -u` would. Go
	// raises its soft fd limit to the hard one at start-up, so a shell's
	// ulimit -n alone does not limit a Go server.
	NoFile, NProc uint64
	// MaxChildren bounds the children not yet reaped: past it, a new
	// connection is answered 503 at once (0: no bound).
	MaxChildren int
	// PidsMax, when above 0, runs the server in a pids cgroup of its own
	// with that pids.max (under CgroupRoot): the container way to the
	// Part 3's ulimit -u lesson, which binds root too. Removed at exit.
	PidsMax    int
	CgroupRoot string
	// ChildPrefix selects the server in this binary (see Main); LogLevel
	// is passed on to the children.
	ChildPrefix []string
	LogLevel    string
	Log         *slog.Logger
}

// Server is a running parent.
type Server struct {
	cfg     Config
	log     *slog.Logger
	self    string
	env     []string // the children's environment
	ln      *net.TCPListener
	ctl     *net.UnixListener
	devnull *os.File
	spare   *os.File // released on EMFILE to accept and shed one connection
	sigch   chan os.Signal
	pidscg  *cgroup.Made // the pids cgroup of --pids-max, or nil
	procfs  *proc.FS     // this process's /proc, for its children list

	// applyMu makes each control request's switch whole (leave the old
	// reaper, enter the new) and lets shutdown refuse later ones.
	applyMu  sync.Mutex
	stopping bool

	mu            sync.Mutex
	settings      control.Settings
	held          []net.Conn
	refused       int // control peers refused since refusedLogged
	refusedLogged time.Time
	busyLogged    time.Time // last --max-children warning
	failed        int       // child start-up failures since failedLogged
	failedLogged  time.Time
	spawned       map[int]time.Time // children not yet waited for, by pid
	killed        map[int]bool      // children shutdown killed: no latency, no warning
	reapLat       []time.Duration   // ring of recent spawn-to-reaped latencies
	latNext       int
	stats         control.Status
}

const latRing = 4096

// reservedThreads is how many OS threads the server starts at once and
// keeps for later (see reserveThreads).
const reservedThreads = 8

// Listen sets the limits and opens the listener and the control socket;
// Serve then runs the server.
func Listen(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if err := setLimit(unix.RLIMIT_NOFILE, cfg.NoFile); err != nil {
		return nil, fmt.Errorf("set RLIMIT_NOFILE %d: %w", cfg.NoFile, err)
	}
	if err := setLimit(unix.RLIMIT_NPROC, cfg.NProc); err != nil {
		return nil, fmt.Errorf("set RLIMIT_NPROC %d: %w", cfg.NProc, err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	reserveThreads(reservedThreads)
	s := &Server{
		cfg: cfg, log: cfg.Log, self: self,
		settings: control.Settings{Reaper: cfg.Reaper, CloseConn: cfg.CloseConn, Hold: control.Duration(cfg.Child.Hold)},
		// One connection per child: one P keeps a child's runtime to the
		// fewest threads, which matters near RLIMIT_NPROC.
		env:     append(os.Environ(), "GOMAXPROCS=1"),
		spawned: make(map[int]time.Time),
		sigch:   make(chan os.Signal, 64),
	}
	if s.devnull, err = os.Open(os.DevNull); err != nil {
		return nil, err
	}
	if s.spare, err = os.Open(os.DevNull); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.devnull.Close()
		s.spare.Close()
		return nil, err
	}
	s.ln = ln.(*net.TCPListener)
	if s.ctl, err = control.Listen(os.Getpid()); err != nil {
		s.ln.Close()
		return nil, err
	}
	if cfg.PidsMax > 0 {
		// The children inherit the cgroup: the server's own threads and
		// every child, zombies included, count against pids.max.
		m, err := cgroup.MakePids(cfg.CgroupRoot, fmt.Sprintf("zombiewatch-server-%d", os.Getpid()), cfg.PidsMax)
		if err == nil {
			if err = m.Enter(os.Getpid()); err != nil {
				m.Remove(time.Second)
			}
		}
		if err != nil {
			s.ln.Close()
			s.ctl.Close()
			return nil, fmt.Errorf("--pids-max %d: %w", cfg.PidsMax, err)
		}
		s.pidscg = m
	}
	return s, nil
}

func setLimit(resource int, n uint64) error {
	if n == 0 {
		return nil
	}
	return unix.Setrlimit(resource, &unix.Rlimit{Cur: n, Max: n})
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve accepts until ctx is done, then shuts down: stop accepting, wait up
// to Grace for the children, kill the rest, reap every one.
func (s *Server) Serve(ctx context.Context) error {
	s.log.Info("listening", "addr", s.Addr(), "pid", os.Getpid(), "reaper", s.cfg.Reaper,
		"close_conn", s.cfg.CloseConn, "control", s.ctl.Addr().String())
	signal.Notify(s.sigch, syscall.SIGCHLD)
	s.enterReaper(s.cfg.Reaper)
	reaperDone := make(chan struct{})
	go func() { s.reaper(); close(reaperDone) }()
	go control.Serve(s.ctl, os.Getuid(), s)

	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	s.acceptLoop(ctx)

	// From here shutdown alone waits for children: no control request
	// may switch the reaper, and the reaper goroutine is stopped first so
	// that every reap is counted before the last log line.
	s.ctl.Close()
	s.applyMu.Lock()
	s.stopping = true
	s.applyMu.Unlock()
	signal.Stop(s.sigch)
	close(s.sigch)
	<-reaperDone
	s.shutdown()
	if s.pidscg != nil {
		if err := s.pidscg.Remove(5 * time.Second); err != nil {
			s.log.Warn("could not remove the --pids-max cgroup", "err", err)
		}
	}
	return nil
}

func (s *Server) acceptLoop(ctx context.Context) {
	backoff := newBackoff()
	for {
		conn, err := s.ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.count(func(st *control.Status) { st.AcceptErrors++ })
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				s.log.Warn("accept failed: descriptors exhausted; answering 503 to one connection and backing off",
					"err", err, "errno", errnoName(err), "limit", fdLimit(), "held_conns", s.heldConns())
				s.shedOne()
			} else {
				s.log.Warn("accept failed; backing off", "err", err)
			}
			backoff.wait(ctx)
			continue
		}
		if err := s.spawn(conn); err != nil {
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
	}
}

// spawn hands conn to a new child: this binary re-executed, with the
// connection's descriptor as its fd 3. The fd is passed straight from the
// connection (no dup), so a kept copy costs the parent exactly one fd.
func (s *Server) spawn(conn *net.TCPConn) error {
	if s.atMaxChildren() {
		s.count(func(st *control.Status) { st.Busy++ })
		s.warnBusy()
		respondDirect(conn, 503, "Service Unavailable", fmt.Sprintf("the server has %d children, its --max-children\n", s.cfg.MaxChildren))
		conn.Close()
		return nil
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return err
	}
	keep, err := s.fork(raw, conn)
	if err != nil {
		s.log.Warn("fork failed: answering 503 and backing off", "err", err, "errno", errnoName(err), "meaning", forkMeaning(err))
		respondDirect(conn, 503, "Service Unavailable", "the server cannot fork a child now: "+forkMeaning(err)+"\n")
		conn.Close()
		return err
	}
	if !keep {
		conn.Close()
	}
	return nil
}

// fork starts a child serving conn and records it; keep says whether the
// server holds its copy of the connection (close-conn off). The lock is
// held from fork to bookkeeping: a child that exits at once is reaped
// (noteReaped takes the lock) only after it is recorded as spawned, so
// the counts cannot drift.
func (s *Server) fork(raw syscall.RawConn, conn *net.TCPConn) (keep bool, err error) {
	argv := s.childArgv()
	s.mu.Lock()
	defer s.mu.Unlock()
	var pid int
	var forkErr error
	err = raw.Control(func(fd uintptr) {
		attr := &syscall.ProcAttr{
			Env: s.env,
			// fd 2 is /dev/null: a child whose Go runtime cannot start
			// (near RLIMIT_NPROC) would dump thousands of lines there; the
			// parent tells of it in one line from its exit status. The
			// child logs to fd 4, the parent's stderr.
			Files: []uintptr{s.devnull.Fd(), s.devnull.Fd(), s.devnull.Fd(), fd, os.Stderr.Fd()},
			// A child outlives no killed parent (kill -9 leaves no
			// shutdown to end it): the kernel sends SIGKILL when the
			// parent goes; the child checks its parent is still the one
			// that forked it, for a parent gone before this was set.
			Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		}
		pid, forkErr = syscall.ForkExec(s.self, argv, attr)
	})
	if err == nil {
		err = forkErr
	}
	if err != nil {
		s.stats.ForkErrors++
		return false, err
	}
	s.stats.Spawned++
	if s.settings.Reaper != control.ReaperIgnore {
		s.spawned[pid] = time.Now()
	}
	keep = !s.settings.CloseConn
	if keep {
		// The reference is what keeps the fd open: Go closes an
		// unreferenced connection in a finalizer.
		s.held = append(s.held, conn)
	}
	return keep, nil
}

// childArgv is the command line of a new child, with the current hold.
func (s *Server) childArgv() []string {
	s.mu.Lock()
	hold := time.Duration(s.settings.Hold)
	s.mu.Unlock()
	c := s.cfg.Child
	argv := append([]string{s.self}, s.cfg.ChildPrefix...)
	return append(argv, "-child", "-parent="+strconv.Itoa(os.Getpid()),
		"-hold="+hold.String(),
		"-read-timeout="+c.ReadTimeout.String(),
		"-max-header-bytes="+strconv.Itoa(c.MaxHeaderBytes),
		"-log-level="+s.cfg.LogLevel)
}

// shedOne frees the spare descriptor to accept one waiting connection,
// answers it 503 and closes it, then takes the spare back: without it a
// server out of fds cannot even refuse, and clients hang in the backlog.
func (s *Server) shedOne() {
	s.spare.Close()
	s.ln.SetDeadline(time.Now().Add(10 * time.Millisecond))
	if conn, err := s.ln.AcceptTCP(); err == nil {
		respondDirect(conn, 503, "Service Unavailable", "the server is out of file descriptors\n")
		conn.Close()
	}
	s.ln.SetDeadline(time.Time{})
	if spare, err := os.Open(os.DevNull); err == nil {
		s.spare = spare
	}
}

// respondDirect answers from the parent, never blocking it for long.
func respondDirect(conn net.Conn, code int, reason, body string) {
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	conn.Write(response(code, reason, body))
}

// shutdown waits up to Grace for the children to exit, reaping them, then
// kills the rest and reaps every one, so that no zombie or orphan is left.
func (s *Server) shutdown() {
	s.log.Info("shutting down: waiting for children", "grace", s.cfg.Grace)
	deadline := time.Now().Add(s.cfg.Grace)
	for time.Now().Before(deadline) {
		s.reapAll()
		if !hasChildren() {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hasChildren() {
		// Under reaper=ignore the kernel reaps a child the moment it
		// exits, and its pid may name a stranger by the time it is killed.
		// A handler first (signal.Reset would put back SIG_IGN's effect
		// for SIGCHLD): from here an exiting child stays a zombie until
		// this process waits, so every pid listed below is still ours
		// when it is signalled (killing a zombie does nothing).
		signal.Notify(make(chan os.Signal, 1), syscall.SIGCHLD)
		kids := s.children()
		s.log.Warn("children still running after the grace period: killing them", "count", len(kids))
		s.mu.Lock()
		s.killed = make(map[int]bool, len(kids))
		for _, pid := range kids {
			if unix.Kill(pid, unix.SIGKILL) == nil {
				s.killed[pid] = true
			}
		}
		s.mu.Unlock()
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			break
		}
		s.noteReaped(pid, ws)
	}
	s.mu.Lock()
	for _, c := range s.held {
		c.Close()
	}
	s.held = nil
	spawned, reaped, failures := s.stats.Spawned, s.stats.Reaped, s.stats.ChildFailures
	s.mu.Unlock()
	s.log.Info("stopped", "spawned", spawned, "reaped", reaped, "child_failures", failures)
}

// atMaxChildren tells whether the children not yet reaped reach the
// bound. Under reaper=ignore the kernel reaps and nothing is recorded, so
// the children are counted from /proc (every thread's children file).
func (s *Server) atMaxChildren() bool {
	if s.cfg.MaxChildren <= 0 {
		return false
	}
	s.mu.Lock()
	n, ignore := len(s.spawned), s.settings.Reaper == control.ReaperIgnore
	s.mu.Unlock()
	if ignore {
		n = len(s.children())
	}
	return n >= s.cfg.MaxChildren
}

// warnBusy logs the bound being reached, at most once a second.
func (s *Server) warnBusy() {
	s.mu.Lock()
	now := time.Now()
	if now.Sub(s.busyLogged) < time.Second {
		s.mu.Unlock()
		return
	}
	s.busyLogged = now
	busy := s.stats.Busy
	s.mu.Unlock()
	s.log.Warn("at --max-children: answering 503 until children are reaped", "max_children", s.cfg.MaxChildren, "busy_total", busy)
}

// hasChildren tells whether any child, running or zombie, is left.
func hasChildren() bool {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != syscall.ECHILD
}

// children lists this process's children from /proc (every thread's).
func (s *Server) children() []int {
	if s.procfs == nil {
		fs, err := proc.New("/proc")
		if err != nil {
			return nil
		}
		s.procfs = fs
	}
	kids, _, err := s.procfs.Children(os.Getpid(), nil)
	if err != nil {
		s.log.Warn("cannot list children", "err", err)
	}
	return kids
}

func (s *Server) count(f func(*control.Status)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

func (s *Server) heldConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// Status reports settings and counters (control.Handler).
func (s *Server) Status() control.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Settings = s.settings
	st.PID = os.Getpid()
	st.Addr = s.Addr()
	st.HeldConns = len(s.held)
	st.Unreaped = len(s.spawned)
	st.MaxChildren = s.cfg.MaxChildren
	if s.settings.Reaper == control.ReaperIgnore {
		st.Unreaped = -1
	}
	lat := slices.Clone(s.reapLat)
	slices.Sort(lat)
	st.ReapP50Ms, st.ReapP99Ms = quantileMs(lat, 0.50), quantileMs(lat, 0.99)
	return st
}

func quantileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	d := sorted[int(q*float64(len(sorted)-1))]
	return float64(d.Microseconds()) / 1000
}

// Apply switches settings (control.Handler). Switching to a reaping mode
// reaps the zombies already there; switching close-conn on closes the
// copies held so far.
func (s *Server) Apply(req control.Request) (control.Status, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.stopping {
		return s.Status(), errors.New("the server is shutting down")
	}
	s.mu.Lock()
	old := s.settings
	if req.Reaper != nil {
		s.settings.Reaper = *req.Reaper
	}
	if req.CloseConn != nil {
		s.settings.CloseConn = *req.CloseConn
	}
	if req.Hold != nil {
		s.settings.Hold = control.Duration(*req.Hold)
	}
	now := s.settings
	var release []net.Conn
	if now.CloseConn && !old.CloseConn {
		release, s.held = s.held, nil
	}
	s.mu.Unlock()

	if now.Reaper != old.Reaper {
		s.log.Info("reaper switched", "from", old.Reaper, "to", now.Reaper)
		s.leaveReaper(old.Reaper)
		s.enterReaper(now.Reaper)
	}
	if now.Hold != old.Hold {
		s.log.Info("hold switched", "to", time.Duration(now.Hold))
	}
	if now.CloseConn != old.CloseConn {
		s.log.Info("close-conn switched", "to", now.CloseConn, "closed_held", len(release))
	}
	for _, c := range release {
		c.Close()
	}
	return s.Status(), nil
}

// Refused logs a peer turned away (control.Handler).
// Refused logs a refused control peer, at most once a second with the
// count since the last line: a local user must not flood the log.
func (s *Server) Refused(uid, pid int) {
	s.mu.Lock()
	s.refused++
	now := time.Now()
	if now.Sub(s.refusedLogged) < time.Second {
		s.mu.Unlock()
		return
	}
	n := s.refused
	s.refused, s.refusedLogged = 0, now
	s.mu.Unlock()
	s.log.Warn("control: refused a peer: only this server's uid or root may switch it",
		"peer_uid", uid, "peer_pid", pid, "own_uid", os.Getuid(), "refused", n)
}

type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) reset() { b.d = 0 }

// wait sleeps 5 ms, doubling on each failure in a row up to 50 ms. Every
// failure has answered (or dropped) its connection, so there is no busy
// loop to fear; a longer wait would leave the clients queued behind it to
// time out (300 clients at ulimit -n 256: 48 timed out with a 1 s cap).
func (b *backoff) wait(ctx context.Context) {
	b.d = min(max(2*b.d, 5*time.Millisecond), 50*time.Millisecond)
	select {
	case <-ctx.Done():
	case <-time.After(b.d):
	}
}

func errnoName(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return ""
}

func forkMeaning(err error) string {
	switch {
	case errors.Is(err, syscall.EAGAIN):
		return fmt.Sprintf("uid %d reached its process limit (RLIMIT_NPROC %s); zombies count against it", os.Getuid(), limitString(unix.RLIMIT_NPROC))
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return fmt.Sprintf("the server's descriptors are exhausted (RLIMIT_NOFILE %s)", limitString(unix.RLIMIT_NOFILE))
	case errors.Is(err, syscall.ENOMEM):
		return "out of memory"
	default:
		return err.Error()
	}
}

func fdLimit() string { return limitString(unix.RLIMIT_NOFILE) }

func limitString(resource int) string {
	var l unix.Rlimit
	if err := unix.Getrlimit(resource, &l); err != nil {
		return "?"
	}
	return proc.Limit(l.Cur).String()
}
