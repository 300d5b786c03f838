package proc

import (
	"bytes"
	"io/fs"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// FD kinds, as readlink of /proc/PID/fd/N names them. Anonymous inodes keep
// their kernel name: "anon_inode:eventfd", "anon_inode:[eventpoll]" becomes
// "anon_inode:eventpoll", and so on.
const (
	FDSocket = "socket"
	FDPipe   = "pipe"
	FDFile   = "file"   // a path outside /dev: regular file or directory
	FDDevice = "device" // a path under /dev (but /dev/shm: files)
	FDOther  = "other"
	// FDUnresolved: a descriptor whose link the kernel could not give (a
	// path beyond PATH_MAX: ENAMETOOLONG): counted, never left out.
	FDUnresolved = "unresolved"
)

// fdKind classifies one readlink target.
func fdKind(target string) string {
	switch {
	case strings.HasPrefix(target, "socket:["):
		return FDSocket
	case strings.HasPrefix(target, "pipe:["):
		return FDPipe
	case strings.HasPrefix(target, "anon_inode:"):
		name := strings.Trim(target[len("anon_inode:"):], "[]")
		if name == "" || len(name) > 32 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' }) {
			name = "unknown"
		}
		return "anon_inode:" + name
	case strings.HasPrefix(target, "/dev/shm/"):
		return FDFile // POSIX shared memory: files on a tmpfs
	case strings.HasPrefix(target, "/dev/"):
		return FDDevice
	case strings.HasPrefix(target, "/"):
		return FDFile
	default:
		return FDOther
	}
}

// FDCount counts pid's open descriptors. On a real procfs it is one stat
// of the fd directory (Linux >= 6.2 gives the count as its size, and any
// user may stat it); elsewhere, or where the size is 0, a listing. The
// O(1) count includes descriptor slots reserved by threads blocked in
// accept (a slot is taken before the connection arrives), which ls and
// lsof do not list; those slots do count toward EMFILE.
func (f *FS) FDCount(pid int) (n int, listed bool, err error) {
	path := f.PIDFile(pid, "fd")
	if f.real {
		var st unix.Stat_t
		if err := rawStat(path, &st); err != nil {
			return 0, false, &fs.PathError{Op: "stat", Path: path, Err: err}
		}
		if st.Size > 0 {
			return int(st.Size), false, nil
		}
	}
	names, err := listDir(path)
	return len(names), true, err
}

func listDir(path string) ([]string, error) {
	dir, err := OpenDir(path)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return dir.Readdirnames(-1)
}

// FDSummary is pid's descriptors by kind.
type FDSummary struct {
	Listed  int               // entries in the fd directory
	Kinds   map[string]int    // by kind, of the links read
	Sockets map[uint64]string // socket inode -> the fd name that holds it
	// Refused counts readlinks the kernel refused (EACCES/EPERM: another
	// user's process without ptrace access): the kinds are then partial.
	Refused int
	// Unresolved counts the other failed readlinks (a path beyond
	// PATH_MAX), in Kinds as FDUnresolved; Why is the first one's error.
	Unresolved int
	Why        error
}

// FDKinds counts pid's descriptors by kind and collects its socket inodes
// (for the TCP states). It lists the fd directory once and reads each link
// with readlinkat into a reused buffer, one reader per CPU: procfs's
// FileDescriptorTargets builds a path and a string per descriptor, and
// with 15,000 fds that was most of a reading. A descriptor closed between
// the listing and its readlink is skipped; a refused readlink is counted,
// never taken for "no kinds".
func (f *FS) FDKinds(pid int) (FDSummary, error) {
	path := f.PIDFile(pid, "fd")
	dir, err := OpenDir(path)
	if err != nil {
		return FDSummary{}, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return FDSummary{}, err
	}
	dirfd := int(dir.Fd())
	parts := make([]FDSummary, runtime.GOMAXPROCS(0))
	var next atomic.Int32
	Parallel(len(names), func(lo, hi int) {
		p := FDSummary{Kinds: map[string]int{}, Sockets: map[uint64]string{}}
		buf := make([]byte, 256)
		for _, name := range names[lo:hi] {
			n, err := unix.Readlinkat(dirfd, name, buf)
			switch {
			case err == unix.EACCES || err == unix.EPERM:
				p.Refused++
				continue
			case err == unix.ENOENT:
				continue // closed since the listing
			case err != nil:
				p.Kinds[FDUnresolved]++
				if p.Unresolved++; p.Why == nil {
					p.Why = &fs.PathError{Op: "readlink", Path: path + "/" + name, Err: err}
				}
				continue
			}
			target := buf[:n]
			if ino, ok := bytes.CutPrefix(target, []byte("socket:[")); ok {
				if v, err := parseUint(bytes.TrimSuffix(ino, []byte("]"))); err == nil {
					p.Sockets[v] = name
				}
				p.Kinds[FDSocket]++
				continue
			}
			p.Kinds[fdKind(string(target))]++
		}
		parts[next.Add(1)-1] = p
	})
	sum := FDSummary{Listed: len(names), Kinds: map[string]int{}, Sockets: map[uint64]string{}}
	for _, p := range parts {
		for k, n := range p.Kinds {
			sum.Kinds[k] += n
		}
		for ino, name := range p.Sockets {
			sum.Sockets[ino] = name
		}
		sum.Refused += p.Refused
		sum.Unresolved += p.Unresolved
		if sum.Why == nil {
			sum.Why = p.Why
		}
	}
	return sum, nil
}

// SocketProtocol names the protocol of the socket pid holds as fd name
// ("TCP", "TCPv6", "UNIX", "UDP"), from its system.sockprotoname
// attribute, as lsof does for a socket no table lists (a TCP connection
// the peer reset leaves the tables while its fd stays open).
func (f *FS) SocketProtocol(pid int, name string) (string, error) {
	buf := make([]byte, 32)
	n, err := unix.Getxattr(f.PIDFile(pid, "fd/"+name), "system.sockprotoname", buf)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(buf[:n]), "\x00"), nil
}

// FDDir is one stat of pid's fd directory on a real procfs: the count its
// size gives (0 for a zombie, a kernel thread and a process without fds),
// the directory's inode number, which the kernel gives anew to each
// process (the same number is the same process), and its owner, the
// effective uid (root while the process is not dumpable): a change of
// owner is a change of credentials.
func (f *FS) FDDir(pid int) (n int, ino uint64, owner int, err error) {
	path := f.PIDFile(pid, "fd")
	var st unix.Stat_t
	if err := rawStat(path, &st); err != nil {
		return 0, 0, 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return int(st.Size), st.Ino, int(st.Uid), nil
}

// TaskCount is pid's threads, from one stat of its task directory on a
// real procfs (its link count is 2 plus the threads).
func (f *FS) TaskCount(pid int) (int, error) {
	path := f.PIDFile(pid, "task")
	var st unix.Stat_t
	if err := rawStat(path, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return max(int(st.Nlink)-2, 1), nil
}
