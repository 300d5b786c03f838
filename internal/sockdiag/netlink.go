// Package sockdiag says what a process's sockets are: protocol, TCP
// state, local and remote address, by inode. On the live /proc it asks the
// kernel with netlink sock_diag (NETLINK_SOCK_DIAG: inet_diag, unix_diag),
// entering another network namespace on a locked thread where it must; on
// a fixture tree or another --proc-root it reads the /proc/PID/net tables
// (internal/proc). A TCP socket no table lists is told apart (reset, or
// never connected) with TCP_INFO on a copy of its descriptor. Tables keeps
// one dump per network namespace for the length of a reading.
package sockdiag

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Netlink sock_diag (NETLINK_SOCK_DIAG, inet_diag, unix_diag) dumps a
// network namespace's TCP, UDP and UNIX sockets in binary, one answer per socket, where
// /proc/net/tcp formats text and walks the whole established hash table
// again for every page it hands out (measured: go test ./internal/proc
// -bench Sockets). It answers for the namespace the netlink socket was
// made in: a process's own, entered with setns where permitted.

const (
	inetDiagReqSize = 56 // struct inet_diag_req_v2
	inetDiagMsgSize = 72 // struct inet_diag_msg
	nlmsgHdrSize    = 16
	nlmsgDone       = 3
	nlmsgError      = 2
)

// maxDiagDump bounds one dump's answers, as maxFileSize bounds a table
// read as text: about 700,000 sockets.
const maxDiagDump = 64 << 20

// Dump dumps this process's network namespace's sockets (TCP, UDP and
// UNIX, by inode): the structured answer, which a socket's name cannot
// forge rows in.
func Dump() (map[uint64]proc.Socket, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	out := map[uint64]proc.Socket{}
	buf := make([]byte, 64<<10)
	for _, q := range []struct {
		family   uint8
		protocol uint8
		name     string
	}{{unix.AF_INET, unix.IPPROTO_TCP, "TCP"}, {unix.AF_INET6, unix.IPPROTO_TCP, "TCPv6"},
		{unix.AF_INET, unix.IPPROTO_UDP, "UDP"}, {unix.AF_INET6, unix.IPPROTO_UDP, "UDPv6"}} {
		err := sockDiagQuery(fd, buf, inetDiagReq(q.family, q.protocol), inetDiagMsgSize, func(m []byte) {
			ino, s := parseInetDiag(m, q.name)
			out[ino] = s
		})
		if err != nil {
			return nil, err
		}
	}
	// AF_UNIX from the kernel's structured answer: /proc/net/unix prints
	// abstract names raw, newlines included, so a socket's name can
	// inject rows there; here a name is an attribute of its own socket.
	err = sockDiagQuery(fd, buf, unixDiagReq(), unixDiagMsgSize, func(m []byte) {
		ino, s := parseUnixDiag(m)
		if _, taken := out[ino]; !taken {
			out[ino] = s
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// inetDiagReq is a dump request for every socket of family and protocol.
func inetDiagReq(family, protocol uint8) []byte {
	req := make([]byte, nlmsgHdrSize+inetDiagReqSize)
	req[16], req[17] = family, protocol
	binary.NativeEndian.PutUint32(req[20:], ^uint32(0)) // every state
	return req
}

// The AF_UNIX dump (struct unix_diag_req, unix_diag_msg; linux/unix_diag.h).
const (
	unixDiagReqSize = 24
	unixDiagMsgSize = 16
	udiagShowName   = 0x01
	unixDiagName    = 0 // the UNIX_DIAG_NAME attribute
	sockListen      = 10
)

// unixDiagReq asks for every AF_UNIX socket with its name.
func unixDiagReq() []byte {
	req := make([]byte, nlmsgHdrSize+unixDiagReqSize)
	req[16] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(req[20:], ^uint32(0)) // every state
	binary.NativeEndian.PutUint32(req[28:], udiagShowName)
	return req
}

// maxUnixName bounds a socket name (sun_path is 108 bytes).
const maxUnixName = 108

// parseUnixDiag reads one struct unix_diag_msg and its name attribute: an
// abstract name (a leading NUL) is shown with "@", as ss and lsof show it;
// State is "LISTEN" for a listening socket.
func parseUnixDiag(m []byte) (uint64, proc.Socket) {
	ino := uint64(binary.NativeEndian.Uint32(m[4:]))
	s := proc.Socket{Protocol: "UNIX"}
	if m[2] == sockListen {
		s.State = "LISTEN"
	}
	for a := m[unixDiagMsgSize:]; len(a) >= 4; {
		l := int(binary.NativeEndian.Uint16(a))
		typ := binary.NativeEndian.Uint16(a[2:])
		if l < 4 || l > len(a) {
			break
		}
		if typ == unixDiagName {
			name := a[4:l]
			if len(name) > maxUnixName {
				name = name[:maxUnixName]
			}
			if len(name) > 0 && name[0] == 0 {
				s.Local = "@" + string(name[1:])
			} else {
				s.Local = string(bytes.TrimRight(name, "\x00"))
			}
		}
		a = a[min((l+3)&^3, len(a)):]
	}
	return ino, s
}

// sockDiagQuery sends one dump request (req, its header filled here) and
// hands each answer's message (at least minMsg bytes) to each.
func sockDiagQuery(fd int, buf, req []byte, minMsg int, each func(msg []byte)) error {
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	total := 0
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("sock_diag: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // only the kernel answers
		}
		if total += n; total > maxDiagDump {
			return errors.New("sock_diag: answer larger than 64 MiB")
		}
		b := buf[:n]
		for len(b) >= nlmsgHdrSize {
			l := int(binary.NativeEndian.Uint32(b))
			typ := binary.NativeEndian.Uint16(b[4:])
			if l < nlmsgHdrSize || l > len(b) {
				return errors.New("sock_diag: malformed answer")
			}
			switch typ {
			case nlmsgDone:
				return nil
			case nlmsgError:
				if l >= nlmsgHdrSize+4 {
					if e := int32(binary.NativeEndian.Uint32(b[nlmsgHdrSize:])); e != 0 {
						if unix.Errno(-e) == unix.ENOENT {
							return nil // no such protocol here (no IPv6)
						}
						return fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return nil
			case unix.SOCK_DIAG_BY_FAMILY:
				if l >= nlmsgHdrSize+minMsg {
					each(b[nlmsgHdrSize:l])
				}
			}
			b = b[min((l+3)&^3, len(b)):]
		}
	}
}

// parseInetDiag reads one struct inet_diag_msg: family, state, the socket
// id (ports big-endian, addresses in network order) and the inode.
func parseInetDiag(m []byte, proto string) (uint64, proc.Socket) {
	family, state := m[0], m[1]
	sport := binary.BigEndian.Uint16(m[4:])
	dport := binary.BigEndian.Uint16(m[6:])
	// v4-mapped v6 addresses are shown as v4, as the /proc tables read
	// through net.IP are.
	var src, dst netip.Addr
	if family == unix.AF_INET {
		src, dst = netip.AddrFrom4([4]byte(m[8:12])), netip.AddrFrom4([4]byte(m[24:28]))
	} else {
		src, dst = netip.AddrFrom16([16]byte(m[8:24])).Unmap(), netip.AddrFrom16([16]byte(m[24:40])).Unmap()
	}
	ino := uint64(binary.NativeEndian.Uint32(m[68:]))
	s := proc.Socket{Protocol: proto, Local: hostPort(src, sport)}
	switch proto {
	case "TCP", "TCPv6":
		s.State = proc.TCPStateName(uint64(state))
		if state != 10 { // LISTEN has no peer
			s.Remote = hostPort(dst, dport)
		}
	default:
		if dport != 0 {
			s.Remote = hostPort(dst, dport)
		}
	}
	return ino, s
}

func hostPort(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}

// DumpOf dumps the sockets of pid's network namespace, as Dump does. It
// works on the live /proc only; in a namespace other than the reader's it
// enters it (setns, which needs CAP_SYS_ADMIN) on a thread of its own. The
// error tells the caller to read the /proc/PID/net files instead.
func DumpOf(f *proc.FS, pid int) (map[uint64]proc.Socket, error) {
	if !f.Live() {
		return nil, errors.New("sock_diag: not the live /proc")
	}
	theirs, err := NetNS(f, pid)
	if err != nil {
		return nil, err
	}
	ours, err := NetNS(f, os.Getpid())
	if err != nil {
		return nil, err
	}
	if theirs == ours {
		return Dump()
	}
	// setns moves the calling thread: the goroutine stays locked to it,
	// and it is moved back before it is unlocked. Left locked, a thread
	// would end with its goroutine, but not the main thread, which the
	// runtime keeps (wedged): were it left in the other namespace, /proc/
	// self/net and this process's later netlink sockets would be that
	// namespace's.
	type result struct {
		m   map[uint64]proc.Socket
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer unix.Close(home)
		ns, err := unix.Open(f.PIDFile(pid, "ns/net"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer unix.Close(ns)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("sock_diag: enter pid %d's network namespace: %w", pid, err)}
			return
		}
		m, err := Dump()
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // home again: the thread may serve others
		}
		done <- result{m, err}
	}()
	r := <-done
	return r.m, r.err
}

// NetNS is the inode of pid's network namespace.
func NetNS(f *proc.FS, pid int) (uint64, error) {
	var st unix.Stat_t
	path := f.PIDFile(pid, "ns/net")
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}
