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

// FDEntry is one open descriptor as its link names it.
type FDEntry struct {
	FD     int
	Target string // "socket:[123]", "pipe:[9]", "anon_inode:[eventfd]", a path
	// Err: why its link could not be read (a path beyond PATH_MAX); Target
	// is then empty.
	Err error
}

// FDList reads every descriptor's link, sorted by number (a descriptor
// closed meanwhile is left out). A refused readlink is an error: the list
// would be partial.
func (f *FS) FDList(pid int) ([]FDEntry, error) {
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
	var out []FDEntry
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
			out = append(out, FDEntry{FD: n, Err: err})
			continue
		}
		out = append(out, FDEntry{FD: n, Target: string(buf[:m])})
	}
	slices.SortFunc(out, func(a, b FDEntry) int { return a.FD - b.FD })
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

// Sockets reads pid's network namespace's TCP, UDP (v4 and v6) and unix
// tables, by inode: what lsof shows of each socket fd. TCP and UDP come
// from netlink sock_diag where it answers (the live /proc; one dump per
// namespace until ForgetSockets), from the /proc/PID/net files otherwise.
func (f *FS) Sockets(pid int) (map[uint64]Socket, error) {
	out := map[uint64]Socket{}
	if table := f.InetSockets(pid); table != nil {
		for ino, s := range table {
			out[ino] = s // a copy: the kept dump is shared
		}
		return out, nil
	}
	pfs, err := procfs.NewFS(filepath.Join(f.root, strconv.Itoa(pid)))
	if err != nil {
		return nil, err
	}
	inet, err := f.inetFromFiles(pid, pfs)
	if err != nil {
		return nil, err
	}
	for ino, s := range inet {
		out[ino] = s
	}
	// The text table of UNIX sockets: a name with a newline (abstract
	// names are printed raw) makes it unparsable, and may inject rows: a
	// failure is returned (the caller names it), and a row never takes
	// the place of a TCP or UDP socket's inode.
	path := f.PIDPath(pid, "net", "unix")
	if err := f.checkRegular(path); err != nil {
		if IsGone(err) {
			return out, nil
		}
		return out, &ParseError{Path: path, Err: err}
	}
	un, err := pfs.NetUNIX()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return out, nil
		}
		return out, &ParseError{Path: path, Err: err}
	}
	for _, l := range un.Rows {
		if _, taken := out[l.Inode]; !taken {
			out[l.Inode] = Socket{Protocol: "UNIX", Local: l.Path}
		}
	}
	return out, nil
}

// InetFromFiles reads pid's TCP and UDP tables from /proc/PID/net.
func (f *FS) InetFromFiles(pid int) (map[uint64]Socket, error) {
	pfs, err := procfs.NewFS(filepath.Join(f.root, strconv.Itoa(pid)))
	if err != nil {
		return nil, err
	}
	return f.inetFromFiles(pid, pfs)
}

func (f *FS) inetFromFiles(pid int, pfs procfs.FS) (map[uint64]Socket, error) {
	out := map[uint64]Socket{}
	addr := func(ip net.IP, port uint64) string {
		return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10))
	}
	//lint:ignore SA1019 netlink cannot read a fixture tree or another proc root (see tcp.go)
	for _, t := range []struct {
		proto string
		read  func() (procfs.NetTCP, error)
	}{{"TCP", pfs.NetTCP}, {"TCPv6", pfs.NetTCP6}} {
		if err := f.checkRegular(f.PIDPath(pid, "net", strings.ToLower(t.proto))); err != nil {
			if IsGone(err) {
				continue
			}
			return nil, &ParseError{Path: f.PIDPath(pid, "net", strings.ToLower(t.proto)), Err: err}
		}
		lines, err := t.read()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, &ParseError{Path: f.PIDPath(pid, "net", strings.ToLower(t.proto)), Err: err}
		}
		for _, l := range lines {
			s := Socket{Protocol: t.proto, State: tcpStates[l.St], Local: addr(l.LocalAddr, l.LocalPort)}
			if l.St != 10 { // LISTEN has no peer
				s.Remote = addr(l.RemAddr, l.RemPort)
			}
			out[l.Inode] = s
		}
	}
	for _, u := range []struct {
		proto string
		read  func() (procfs.NetUDP, error)
	}{{"UDP", pfs.NetUDP}, {"UDPv6", pfs.NetUDP6}} {
		if err := f.checkRegular(f.PIDPath(pid, "net", strings.ToLower(u.proto))); err != nil {
			if IsGone(err) {
				continue
			}
			return nil, &ParseError{Path: f.PIDPath(pid, "net", strings.ToLower(u.proto)), Err: err}
		}
		lines, err := u.read()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, &ParseError{Path: f.PIDPath(pid, "net", strings.ToLower(u.proto)), Err: err}
		}
		for _, l := range lines {
			s := Socket{Protocol: u.proto, Local: addr(l.LocalAddr, l.LocalPort)}
			if l.RemPort != 0 {
				s.Remote = addr(l.RemAddr, l.RemPort)
			}
			out[l.Inode] = s
		}
	}
	return out, nil
}
