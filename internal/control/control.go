// Package control is the bundled server's local control channel: how
// zombiewatch reads and switches a running server's reaper and connection
// closing.
//
// The channel is a Unix socket in the abstract namespace named after the
// server's pid, so it needs no file and no TCP port. Abstract sockets have no
// file permissions, so the server checks each peer's credentials
// (SO_PEERCRED): only its own uid or root may talk to it. Each connection
// carries one JSON request line and one JSON reply line.
package control

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/sockdiag"
)

// Reaper is how the server collects its finished children (Part 3's
// webserver3d, 3e/3f and 3g, plus SIG_IGN).
type Reaper string

const (
	// ReaperOff: nobody waits; every finished child stays a zombie (3d).
	ReaperOff Reaper = "off"
	// ReaperWait: one wait per SIGCHLD notification; notifications
	// coalesce, so bursts leave zombies behind (3e/3f).
	ReaperWait Reaper = "wait"
	// ReaperLoop: on each notification, wait4(-1, WNOHANG) until nothing is
	// left (3g).
	ReaperLoop Reaper = "loop"
	// ReaperIgnore: SIGCHLD set to SIG_IGN; the kernel reaps children
	// itself and no wait is needed, or possible.
	ReaperIgnore Reaper = "ignore"
)

// Reapers lists the modes in the order `r` cycles through them.
var Reapers = []Reaper{ReaperOff, ReaperWait, ReaperLoop, ReaperIgnore}

// ParseReaper checks a mode name.
func ParseReaper(s string) (Reaper, error) {
	for _, r := range Reapers {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("reaper %q: want off, wait, loop or ignore", s)
}

// Settings are what can be switched while the server runs.
type Settings struct {
	Reaper    Reaper `json:"reaper"`
	CloseConn bool   `json:"close_conn"`
	// Hold is how long each new child stays after answering.
	Hold Duration `json:"hold"`
}

// Duration is a time.Duration that reads and writes as "300ms" in JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads what MarshalJSON writes.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// Status is the server's settings and counters.
type Status struct {
	Settings
	PID          int     `json:"pid"`
	Addr         string  `json:"addr"`
	Spawned      uint64  `json:"spawned"`       // children started
	Reaped       uint64  `json:"reaped"`        // children the server waited for
	Unreaped     int     `json:"unreaped"`      // started, not yet waited for (alive or zombie); -1 under ignore
	HeldConns    int     `json:"held_conns"`    // connection copies kept open (close-conn off)
	ForkErrors   uint64  `json:"fork_errors"`   // failed forks (EAGAIN: process limit; EMFILE: fds)
	AcceptErrors uint64  `json:"accept_errors"` // failed accepts (EMFILE: fds)
	ReapP50Ms    float64 `json:"reap_p50_ms"`   // spawn-to-reaped latency of recent children
	ReapP99Ms    float64 `json:"reap_p99_ms"`
	// MaxChildren bounds the children not yet reaped (0: no bound); Busy
	// counts connections answered 503 at the bound.
	MaxChildren int    `json:"max_children"`
	Busy        uint64 `json:"busy"`
	// ChildFailures counts children that died before answering (their
	// Go runtime could not start near RLIMIT_NPROC: exit 2 or SIGABRT).
	ChildFailures uint64 `json:"child_failures"`
}

// Request asks for a change; nil fields stay as they are.
type Request struct {
	Reaper    *Reaper        `json:"reaper,omitempty"`
	CloseConn *bool          `json:"close_conn,omitempty"`
	Hold      *time.Duration `json:"hold_ns,omitempty"`
}

type reply struct {
	Status *Status `json:"status,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// ParseRequest reads "reaper=MODE", "close-conn=on|off" and
// "hold=DURATION" arguments.
func ParseRequest(args []string) (Request, error) {
	var req Request
	for _, arg := range args {
		key, value, ok := strings.Cut(arg, "=")
		if !ok {
			return req, fmt.Errorf("%q: want reaper=MODE, close-conn=on|off or hold=DURATION", arg)
		}
		switch key {
		case "reaper":
			r, err := ParseReaper(value)
			if err != nil {
				return req, err
			}
			req.Reaper = &r
		case "close-conn":
			var on bool
			switch value {
			case "on", "true", "1":
				on = true
			case "off", "false", "0":
			default:
				return req, fmt.Errorf("close-conn %q: want on or off", value)
			}
			req.CloseConn = &on
		case "hold":
			d, err := time.ParseDuration(value)
			if err != nil || d < 0 {
				return req, fmt.Errorf("hold %q: want a duration such as 300ms", value)
			}
			req.Hold = &d
		default:
			return req, fmt.Errorf("%q: unknown setting (want reaper, close-conn or hold)", key)
		}
	}
	return req, nil
}

// Abstract socket names are free for anyone on the host to bind, so a
// predictable name could be taken first (the server would not start) or
// taken by an impostor. The server binds "@zombiewatch/server/PID/RANDOM":
// nobody can predict it, so nobody can squat it. Clients find it among the
// listening sockets in /proc/net/unix by its "@zombiewatch/server/PID/"
// prefix, and believe a candidate only if the kernel says (SO_PEERCRED)
// that PID itself, under its own uid, holds it.
const namePrefix = "@zombiewatch/server/"

// Addr is the prefix of the abstract socket names of the server with this
// pid (the name itself ends in a random part).
func Addr(pid int) string { return namePrefix + strconv.Itoa(pid) + "/" }

// maxCandidates bounds the sockets tried for one pid: an attacker may bind
// many names under a pid's prefix; only the real one passes the check.
const maxCandidates = 16

// Listening lists the listening abstract sockets of this network
// namespace named like a bundled server's control socket, by the pid
// their name claims (at most maxCandidates a pid): a reading that asks
// about many processes lists once, and asks only those with a candidate.
// The list comes from the kernel's structured answer (sock_diag), where a
// name cannot inject rows as it can in /proc/net/unix (names are printed
// raw there, newlines included). Anyone may bind names under a pid's
// prefix: where this process may read the pid's descriptors, the sockets
// the pid itself holds come first, so a flood of impostor names cannot
// push the real one out.
func Listening() (map[int][]string, error) {
	socks, err := sockdiag.Dump()
	if err != nil {
		return nil, err
	}
	byPID := map[int][]uint64{}
	names := map[uint64]string{}
	for ino, s := range socks {
		if s.Protocol != "UNIX" || s.State != "LISTEN" {
			continue
		}
		rest, ok := strings.CutPrefix(s.Local, namePrefix)
		if !ok {
			continue
		}
		digits, _, ok := strings.Cut(rest, "/")
		pid, err := strconv.Atoi(digits)
		if !ok || err != nil || pid <= 0 || digits != strconv.Itoa(pid) {
			continue
		}
		byPID[pid] = append(byPID[pid], ino)
		names[ino] = s.Local
	}
	out := make(map[int][]string, len(byPID))
	for pid, inos := range byPID {
		if len(inos) > maxCandidates {
			held := heldSockets(pid)
			slices.SortStableFunc(inos, func(a, b uint64) int {
				return cmp.Compare(b2i(!held[a]), b2i(!held[b]))
			})
			inos = inos[:maxCandidates]
		}
		for _, ino := range inos {
			out[pid] = append(out[pid], names[ino])
		}
	}
	return out, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// heldSockets is the socket inodes among pid's descriptors, empty where
// they may not be read.
func heldSockets(pid int) map[uint64]bool {
	held := map[uint64]bool{}
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return held
	}
	for _, e := range entries {
		target, err := os.Readlink(dir + "/" + e.Name())
		if ino, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64); err == nil {
				held[n] = true
			}
		}
	}
	return held
}

// ErrNoServer: no bundled server listens for that pid.
var ErrNoServer = errors.New("no control socket: not a running bundled server (cmd/server)")

// maxMessage bounds a request and a reply: both are a few hundred bytes.
const maxMessage = 64 << 10

// Call sends req to the server with this pid and returns its status after
// the change. An empty Request only reads the status. Abstract socket
// names are free for anyone to bind, so before it writes a byte it checks
// who holds the socket (SO_PEERCRED): the process asked about, under that
// process's uid, or the answer is refused as an impostor's.
func Call(pid int, req Request, timeout time.Duration) (*Status, error) {
	listening, err := Listening()
	if err != nil {
		return nil, fmt.Errorf("pid %d: find its control socket: %w", pid, err)
	}
	return CallNames(pid, listening[pid], req, timeout)
}

// CallNames is Call with pid's candidate sockets already listed
// (Listening).
func CallNames(pid int, names []string, req Request, timeout time.Duration) (*Status, error) {
	var conn *net.UnixConn
	err := fmt.Errorf("pid %d: %w", pid, ErrNoServer)
	for _, name := range names {
		c, derr := net.DialTimeout("unix", name, timeout)
		if derr != nil {
			continue // gone since the listing
		}
		if verr := verifyOwner(c.(*net.UnixConn), pid); verr != nil {
			c.Close()
			err = verr
			continue // an impostor's name under the prefix: try the next
		}
		conn = c.(*net.UnixConn)
		break
	}
	if conn == nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	// A refused peer may be answered and closed before its request is
	// written: read the reply whatever the write said.
	werr := json.NewEncoder(conn).Encode(req)
	var rep reply
	if err := json.NewDecoder(io.LimitReader(conn, maxMessage)).Decode(&rep); err != nil {
		if werr != nil {
			err = werr
		}
		return nil, fmt.Errorf("pid %d: control socket: no reply: %w", pid, err)
	}
	if rep.Error != "" {
		// The peer is the process it claims, but any process may answer
		// under its own pid: its words are quoted (escaped), never
		// printed raw, and bounded.
		msg := rep.Error
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return nil, fmt.Errorf("pid %d: server refused: %q", pid, msg)
	}
	if rep.Status == nil {
		return nil, fmt.Errorf("pid %d: control socket: empty reply", pid)
	}
	if err := rep.Status.Validate(pid); err != nil {
		return nil, fmt.Errorf("pid %d: control socket: a reply no bundled server gives: %w", pid, err)
	}
	return rep.Status, nil
}

// maxCount bounds a counter in a reply: more than 2^53 children is no
// server's (and would not survive a float in JSON).
const maxCount = 1 << 53

// Validate checks a reply as hostile input: a process of any user may bind
// a name under the prefix for its own pid and answer anything. Every field
// must be one a bundled server gives: a known reaper, counts within
// bounds, a sane hold and latencies, its own pid and a host:port address.
func (st *Status) Validate(pid int) error {
	if _, err := ParseReaper(string(st.Reaper)); err != nil {
		return err
	}
	switch {
	case st.PID != pid:
		return fmt.Errorf("it names pid %d", st.PID)
	case st.Hold < 0 || time.Duration(st.Hold) > time.Hour:
		return fmt.Errorf("hold %s: want 0 to 1h", time.Duration(st.Hold))
	case st.Unreaped < -1 || st.HeldConns < 0 || st.MaxChildren < 0 || st.Unreaped > maxCount || st.HeldConns > maxCount || st.MaxChildren > maxCount:
		return fmt.Errorf("counts out of range (unreaped %d, held %d, max-children %d)", st.Unreaped, st.HeldConns, st.MaxChildren)
	case st.Spawned > maxCount || st.Reaped > maxCount || st.ForkErrors > maxCount || st.AcceptErrors > maxCount || st.Busy > maxCount || st.ChildFailures > maxCount:
		return errors.New("counters out of range")
	case !okMs(st.ReapP50Ms) || !okMs(st.ReapP99Ms):
		return fmt.Errorf("latencies %g, %g ms out of range", st.ReapP50Ms, st.ReapP99Ms)
	}
	if st.Addr != "" {
		if _, err := netip.ParseAddrPort(st.Addr); err != nil {
			return fmt.Errorf("address %q: %v", truncateString(st.Addr, 64), err)
		}
	}
	return nil
}

// okMs: a latency in milliseconds, finite, 0 to a day.
func okMs(v float64) bool { return v >= 0 && v <= 86400e3 }

func truncateString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ErrImpostor: the socket named after a pid is held by another process.
var ErrImpostor = errors.New("the control socket is not held by that process")

// verifyOwner checks that the peer is pid itself, running as the uid that
// owns /proc/pid.
func verifyOwner(conn *net.UnixConn, pid int) error {
	cred, err := peerCred(conn)
	if err != nil {
		return fmt.Errorf("pid %d: control socket: peer credentials: %w", pid, err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid), &st); err != nil {
		return fmt.Errorf("pid %d: %w", pid, ErrNoServer)
	}
	if int(cred.Pid) != pid || cred.Uid != st.Uid {
		return fmt.Errorf("pid %d: %w (held by pid %d, uid %d): ignored", pid, ErrImpostor, cred.Pid, cred.Uid)
	}
	return nil
}

// Validate refuses settings no server mode has.
func (r Request) Validate() error {
	if r.Reaper != nil {
		if _, err := ParseReaper(string(*r.Reaper)); err != nil {
			return err
		}
	}
	if r.Hold != nil && (*r.Hold < 0 || *r.Hold > time.Hour) {
		return fmt.Errorf("hold %s: want 0 to 1h", *r.Hold)
	}
	return nil
}

// Handler is the server side: it reports and applies settings.
type Handler interface {
	Status() Status
	Apply(Request) (Status, error)
	// Refused is told of every peer turned away.
	Refused(uid, pid int)
}

// Listen opens this process's control socket under a name nobody can
// have bound before it (see Addr).
func Listen(pid int) (*net.UnixListener, error) {
	var random [12]byte
	if _, err := rand.Read(random[:]); err != nil {
		return nil, err
	}
	name := Addr(pid) + hex.EncodeToString(random[:])
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", name, err)
	}
	return l, nil
}

// maxServing bounds the connections served at once: only the owner's
// uid and root get past the peer check, so the slots are theirs.
const maxServing = 8

// Serve answers requests on l until it is closed. Only peers whose uid is
// ownUID or 0 are served; any other is answered and closed at once, before
// a byte of its request is read, so no one else can hold the channel.
func Serve(l *net.UnixListener, ownUID int, h Handler) error {
	slots := make(chan struct{}, maxServing)
	for {
		conn, err := l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and the like: the server's own fds are the lesson;
			// never let them stop the channel that can fix them.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !permitted(conn, ownUID, h) {
			conn.Close()
			continue
		}
		slots <- struct{}{}
		go func() {
			defer func() { <-slots }()
			serveOne(conn, h)
		}()
	}
}

// permitted checks the peer and answers a refused one.
func permitted(conn *net.UnixConn, ownUID int, h Handler) bool {
	cred, err := peerCred(conn)
	if err != nil {
		return false
	}
	if int(cred.Uid) != ownUID && cred.Uid != 0 {
		h.Refused(int(cred.Uid), int(cred.Pid))
		conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		json.NewEncoder(conn).Encode(reply{Error: fmt.Sprintf("uid %d may not control this server: only uid %d or root", cred.Uid, ownUID)})
		return false
	}
	return true
}

func serveOne(conn *net.UnixConn, h Handler) {
	defer conn.Close()
	deadline := time.Now().Add(2 * time.Second)
	conn.SetDeadline(deadline)
	enc := json.NewEncoder(conn)
	var req Request
	if err := json.NewDecoder(io.LimitReader(conn, maxMessage)).Decode(&req); err != nil {
		enc.Encode(reply{Error: "bad request: " + err.Error()})
		return
	}
	if err := req.Validate(); err != nil {
		enc.Encode(reply{Error: "bad request: " + err.Error()})
		return
	}
	if time.Now().After(deadline) {
		return // the caller has given up: never apply what nobody waits for
	}
	st, err := h.Apply(req)
	if err != nil {
		enc.Encode(reply{Error: err.Error()})
		return
	}
	enc.Encode(reply{Status: &st})
}

func peerCred(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil {
		return nil, err
	}
	return cred, credErr
}
