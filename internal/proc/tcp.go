package proc

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/prometheus/procfs"
)

// tcpStates names the states of /proc/net/tcp's st column.
var tcpStates = map[uint64]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}

// TCPStates counts pid's TCP sockets by state, matching the inodes of its
// socket fds in <root>/PID/net/tcp and tcp6 (the tables of pid's own
// network namespace). CLOSE_WAIT is the classic leak: the peer closed and
// this process never did.
//
// procfs marks NetTCP deprecated in favour of netlink sock_diag, but netlink
// answers for the reader's namespace only and cannot read a fixture tree or
// another --proc-root; the files can.
//
// A TCP socket no table lists (the peer reset the connection, which unhashes
// it, while this process keeps its fd) is counted as CLOSE, its protocol
// read from the socket's system.sockprotoname attribute as lsof does.
func (f *FS) TCPStates(pid int, inodes map[uint64]string) (map[string]int, error) {
	states := make(map[string]int)
	if len(inodes) == 0 {
		return states, nil
	}
	pfs, err := procfs.NewFS(filepath.Join(f.root, strconv.Itoa(pid)))
	if err != nil {
		return nil, err
	}
	found := make(map[uint64]bool, len(inodes))
	//lint:ignore SA1019 netlink cannot read a fixture tree or another proc root (see above)
	for name, read := range map[string]func() (procfs.NetTCP, error){"tcp": pfs.NetTCP, "tcp6": pfs.NetTCP6} {
		if err := f.checkRegular(f.PIDPath(pid, "net", name)); err != nil {
			if IsGone(err) {
				continue
			}
			return nil, &ParseError{Path: f.PIDPath(pid, "net", name), Err: err}
		}
		lines, err := read()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // no IPv6, or a fixture without it
			}
			return nil, &ParseError{Path: f.PIDPath(pid, "net", name), Err: err}
		}
		for _, l := range lines {
			if _, ok := inodes[l.Inode]; ok {
				found[l.Inode] = true
				name, ok := tcpStates[l.St]
				if !ok {
					name = "state " + strconv.FormatUint(l.St, 10)
				}
				states[name]++
			}
		}
	}
	if !f.real {
		return states, nil // a copied tree has no socket attributes
	}
	var probe *TCPProbe
	defer func() { probe.Close() }()
	for ino, name := range inodes {
		if !found[ino] {
			f.countUnlisted(states, pid, name, &probe)
		}
	}
	return states, nil
}

// countUnlisted counts a socket in no table: by its TCP_INFO state if it
// is TCP (see TCPProbe), nothing if it is not.
func (f *FS) countUnlisted(states map[string]int, pid int, name string, probe **TCPProbe) {
	proto, err := f.SocketProtocol(pid, name)
	if err != nil || (proto != "TCP" && proto != "TCPv6") {
		return
	}
	if *probe == nil {
		*probe = f.NewTCPProbe(pid)
	}
	states[(*probe).State(name)]++
}

// TCPStatesIn counts pid's TCP sockets (inodes) by state in a socket table
// of its namespace (SockDiag's); those it does not list are counted as
// TCPStates counts them.
func (f *FS) TCPStatesIn(table map[uint64]Socket, pid int, inodes map[uint64]string) map[string]int {
	states := make(map[string]int)
	var probe *TCPProbe
	defer func() { probe.Close() }()
	for ino, name := range inodes {
		s, ok := table[ino]
		switch {
		case ok && (s.Protocol == "TCP" || s.Protocol == "TCPv6"):
			states[s.State]++
		case ok:
		default:
			f.countUnlisted(states, pid, name, &probe)
		}
	}
	return states
}
