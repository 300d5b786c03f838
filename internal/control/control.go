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
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Reaper is how the server collects its finished children (the seed's
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

// Addr is the abstract socket name of the server with this pid.
func Addr(pid int) string { return "@zombiewatch/server/" + strconv.Itoa(pid) }

// ErrNoServer: no bundled server listens for that pid.
var ErrNoServer = errors.New("no control socket: not a running bundled server (cmd/server)")

// Call sends req to the server with this pid and returns its status after
// the change. An empty Request only reads the status.
func Call(pid int, req Request, timeout time.Duration) (*Status, error) {
	conn, err := net.DialTimeout("unix", Addr(pid), timeout)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, fmt.Errorf("pid %d: %w", pid, ErrNoServer)
		}
		return nil, fmt.Errorf("pid %d: control socket: %w", pid, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("pid %d: control socket: %w", pid, err)
	}
	var rep reply
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		return nil, fmt.Errorf("pid %d: control socket: no reply: %w", pid, err)
	}
	if rep.Error != "" {
		return nil, fmt.Errorf("pid %d: server refused: %s", pid, rep.Error)
	}
	return rep.Status, nil
}

// Handler is the server side: it reports and applies settings.
type Handler interface {
	Status() Status
	Apply(Request) (Status, error)
	// Refused is told of every peer turned away.
	Refused(uid, pid int)
}

// Listen opens this process's control socket.
func Listen(pid int) (*net.UnixListener, error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: Addr(pid), Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", Addr(pid), err)
	}
	return l, nil
}

// Serve answers requests on l until it is closed. Only peers whose uid is
// ownUID or 0 are served.
func Serve(l *net.UnixListener, ownUID int, h Handler) error {
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
		serveOne(conn, ownUID, h)
	}
}

func serveOne(conn *net.UnixConn, ownUID int, h Handler) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	enc := json.NewEncoder(conn)
	// Read the request before answering, even a refusal: a reply sent
	// and closed before the peer wrote would reach it as EPIPE.
	var req Request
	decodeErr := json.NewDecoder(bufio.NewReader(conn)).Decode(&req)
	cred, err := peerCred(conn)
	if err != nil {
		enc.Encode(reply{Error: "cannot read peer credentials: " + err.Error()})
		return
	}
	if int(cred.Uid) != ownUID && cred.Uid != 0 {
		h.Refused(int(cred.Uid), int(cred.Pid))
		enc.Encode(reply{Error: fmt.Sprintf("uid %d may not control this server: only uid %d or root", cred.Uid, ownUID)})
		return
	}
	if decodeErr != nil {
		enc.Encode(reply{Error: "bad request: " + decodeErr.Error()})
		return
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
