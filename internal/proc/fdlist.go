package proc

import (
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// FDLink is one open descriptor as its link in /proc/PID/fd names it,
// unresolved: the model (model.FDEntry) adds what the link points at.
type FDLink struct {
	FD     int
	Target string // "socket:[123]", "pipe:[9]", "anon_inode:[eventfd]", a path
	// Err: why its link could not be read (a path beyond PATH_MAX); Target
	// is then empty.
	Err error
}

// FDList reads every descriptor's link, sorted by number (a descriptor
// closed meanwhile is left out). A refused readlink is an error: the list
// would be partial.
func (f *FS) FDList(pid int) ([]FDLink, error) {
	path := f.PIDFile(pid, "fd")
	dir, err := OpenDir(path)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	var out []FDLink
	for _, name := range names {
		n, ok := ParsePID(name)
		if !ok && name != "0" {
			continue
		}
		m, err := unix.Readlinkat(int(dir.Fd()), name, buf)
		switch {
		case err == unix.EACCES || err == unix.EPERM:
			return nil, &fs.PathError{Op: "readlink", Path: path + "/" + name, Err: err}
		case err == unix.ENOENT:
			continue // closed since the listing
		case err != nil:
			out = append(out, FDLink{FD: n, Err: err})
			continue
		}
		out = append(out, FDLink{FD: n, Target: string(buf[:m])})
	}
	slices.SortFunc(out, func(a, b FDLink) int { return a.FD - b.FD })
	return out, nil
}

// Kind classifies a link target (socket, pipe, file, device, anon_inode:*).
func Kind(target string) string { return fdKind(target) }

// Socket is what the network tables of a process's namespace say of one
// socket inode.
type Socket struct {
	Protocol string // TCP, TCPv6, UDP, UDPv6, UNIX
	State    string // TCP state name; "" for others
	Local    string // address:port, or a unix socket's path
	Remote   string // address:port ("" for unix and unconnected sockets)
}

// UnixFromFiles reads pid's namespace's UNIX sockets from /proc/PID/net/unix.
// The text table prints abstract names raw: a name with a newline makes it
// unparsable (the error names the file) or injects rows, so a caller lets
// no UNIX row take the place of a TCP or UDP socket's inode.
func (f *FS) UnixFromFiles(pid int) (map[uint64]Socket, error) {
	out := map[uint64]Socket{}
	path := f.PIDPath(pid, "net", "unix")
	if err := f.checkRegular(path); err != nil {
		if IsGone(err) {
			return out, nil
		}
		return out, &ParseError{Path: path, Err: err}
	}
	pfs, err := procfs.NewFS(filepath.Join(f.root, strconv.Itoa(pid)))
	if err != nil {
		return out, err
	}
	un, err := pfs.NetUNIX()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return out, nil
		}
		return out, &ParseError{Path: path, Err: err}
	}
	for _, l := range un.Rows {
		out[l.Inode] = Socket{Protocol: "UNIX", Local: l.Path}
	}
	return out, nil
}

// InetFromFiles reads pid's TCP and UDP tables (v4 and v6) from
// /proc/PID/net, by inode.
//
// procfs marks NetTCP deprecated in favour of netlink sock_diag, but netlink
// answers for the reader's namespace only and cannot read a fixture tree or
// another --proc-root; the files can (internal/sockdiag asks netlink first).
func (f *FS) InetFromFiles(pid int) (map[uint64]Socket, error) {
	pfs, err := procfs.NewFS(filepath.Join(f.root, strconv.Itoa(pid)))
	if err != nil {
		return nil, err
	}
	// procfs parses the four tables into lines of one type.
	udp := func(read func() (procfs.NetUDP, error)) func() (procfs.NetTCP, error) {
		return func() (procfs.NetTCP, error) {
			lines, err := read()
			return procfs.NetTCP(lines), err
		}
	}
	out := map[uint64]Socket{}
	//lint:ignore SA1019 netlink cannot read a fixture tree or another proc root (see above)
	for _, t := range []struct {
		proto string
		read  func() (procfs.NetTCP, error)
	}{{"TCP", pfs.NetTCP}, {"TCPv6", pfs.NetTCP6}, {"UDP", udp(pfs.NetUDP)}, {"UDPv6", udp(pfs.NetUDP6)}} {
		path := f.PIDPath(pid, "net", strings.ToLower(t.proto))
		if err := f.checkRegular(path); err != nil {
			if IsGone(err) {
				continue
			}
			return nil, &ParseError{Path: path, Err: err}
		}
		lines, err := t.read()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // no IPv6, or a fixture without it
			}
			return nil, &ParseError{Path: path, Err: err}
		}
		for _, l := range lines {
			out[l.Inode] = inetSocket(t.proto, l.St, l.LocalAddr, l.LocalPort, l.RemAddr, l.RemPort)
		}
	}
	return out, nil
}

// inetSocket is what a line of net/tcp or net/udp says of its socket: a
// TCP listener and an unconnected UDP socket have no peer.
func inetSocket(proto string, st uint64, local net.IP, lport uint64, remote net.IP, rport uint64) Socket {
	addr := func(ip net.IP, port uint64) string {
		return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10))
	}
	s := Socket{Protocol: proto, Local: addr(local, lport)}
	switch {
	case proto == "TCP" || proto == "TCPv6":
		s.State = TCPStateName(st)
		if st != 10 { // LISTEN
			s.Remote = addr(remote, rport)
		}
	case rport != 0:
		s.Remote = addr(remote, rport)
	}
	return s
}

// tcpStates names the states of /proc/net/tcp's st column (and of
// inet_diag's and TCP_INFO's state: the kernel's TCP_* numbers).
var tcpStates = [...]string{
	1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
}

// TCPStateName names a kernel TCP state number ("state 12" for one it
// does not know, "" for 0 and for numbers past any state).
func TCPStateName(n uint64) string {
	switch {
	case n >= 1 && n < uint64(len(tcpStates)):
		return tcpStates[n]
	case n == 0 || n > 255:
		return ""
	}
	return "state " + strconv.FormatUint(n, 10)
}
