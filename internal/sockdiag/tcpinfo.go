package sockdiag

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// A TCP socket in no TCP table is either a connection that ended (the peer
// reset it, or both sides closed: state CLOSE while this process keeps its
// fd) or a socket that never connected (socket() without connect()): the
// tables and sock_diag list neither. TCP_INFO on the socket tells them
// apart: segments came in on the first, none on the second. The socket is
// read through a copy of the target's descriptor (pidfd_getfd(2): root, or
// ptrace-attach rights over the target), closed at once; TCP_INFO changes
// nothing in the socket.

// The states given to TCP sockets in no table.
const (
	TCPEnded       = "CLOSE"       // it carried segments: reset or closed, still open here
	TCPUnconnected = "UNCONNECTED" // never connected: no segment either way
	TCPUnknown     = "UNKNOWN"     // its TCP_INFO could not be read
)

// Probe reads TCP_INFO of one process's sockets. Its zero value, and a
// probe of a tree that is not this host's own /proc, answers TCPUnknown.
type Probe struct {
	pidfd int
	err   error
}

// NewProbe opens pid for Probe.State; Close it after.
func NewProbe(f *proc.FS, pid int) *Probe {
	if !f.Live() {
		return &Probe{pidfd: -1, err: errors.New("not this host's /proc")}
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return &Probe{pidfd: -1, err: err}
	}
	return &Probe{pidfd: fd}
}

// State is the state of the TCP socket the process holds as fd name.
func (t *Probe) State(name string) string {
	if t == nil || t.pidfd < 0 {
		return TCPUnknown
	}
	target, err := strconv.Atoi(name)
	if err != nil {
		return TCPUnknown
	}
	fd, err := unix.PidfdGetfd(t.pidfd, target, 0)
	if err != nil {
		return TCPUnknown
	}
	defer unix.Close(fd)
	info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return TCPUnknown
	}
	if info.Segs_in == 0 && info.Segs_out == 0 {
		return TCPUnconnected
	}
	if s := proc.TCPStateName(uint64(info.State)); s != "" {
		return s
	}
	return TCPEnded
}

// Close releases the probe.
func (t *Probe) Close() {
	if t != nil && t.pidfd >= 0 {
		unix.Close(t.pidfd)
		t.pidfd = -1
	}
}
