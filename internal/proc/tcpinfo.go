package proc

import (
	"errors"
	"strconv"

	"golang.org/x/sys/unix"
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

// TCPProbe reads TCP_INFO of one process's sockets. Its zero value, and a
// probe of a tree that is not this host's own /proc, answers TCPUnknown.
type TCPProbe struct {
	pidfd int
	err   error
}

// NewTCPProbe opens pid for TCPProbe.State; Close it after.
func (f *FS) NewTCPProbe(pid int) *TCPProbe {
	if !f.live {
		return &TCPProbe{pidfd: -1, err: errors.New("not this host's /proc")}
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return &TCPProbe{pidfd: -1, err: err}
	}
	return &TCPProbe{pidfd: fd}
}

// State is the state of the TCP socket the process holds as fd name.
func (t *TCPProbe) State(name string) string {
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
	if s, ok := tcpStates[uint64(info.State)]; ok {
		return s
	}
	return TCPEnded
}

// Close releases the probe.
func (t *TCPProbe) Close() {
	if t != nil && t.pidfd >= 0 {
		unix.Close(t.pidfd)
		t.pidfd = -1
	}
}
