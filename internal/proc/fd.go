package proc

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
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
	FDDevice = "device" // a path under /dev
	FDOther  = "other"
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
		if name == "" {
			name = "unknown"
		}
		return "anon_inode:" + name
	case strings.HasPrefix(target, "/dev/"):
		return FDDevice
	case strings.HasPrefix(target, "/"):
		return FDFile
	default:
		return FDOther
	}
}

// fdKinds counts pid's descriptors by kind and collects its socket inodes
// (for the TCP states). It lists the fd directory once and reads each link
// with readlinkat into a reused buffer, one reader per CPU: procfs's
// FileDescriptorTargets builds a path and a string per descriptor, and
// with 15,000 fds that was most of a reading. A descriptor closed between
// the listing and its readlink is skipped.
func (f *FS) fdKinds(pid int) (map[string]int, map[uint64]bool, error) {
	path := f.pidPath(pid, "fd")
	dir, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, nil, err
	}
	dirfd := int(dir.Fd())
	type part struct {
		kinds   map[string]int
		sockets map[uint64]bool
	}
	parts := make([]part, runtime.GOMAXPROCS(0))
	var next atomic.Int32
	parallel(len(names), func(lo, hi int) {
		p := part{kinds: map[string]int{}, sockets: map[uint64]bool{}}
		buf := make([]byte, 256)
		for _, name := range names[lo:hi] {
			n, err := unix.Readlinkat(dirfd, name, buf)
			if err != nil {
				continue
			}
			target := buf[:n]
			if ino, ok := bytes.CutPrefix(target, []byte("socket:[")); ok {
				if v, err := strconv.ParseUint(string(bytes.TrimSuffix(ino, []byte("]"))), 10, 64); err == nil {
					p.sockets[v] = true
				}
				p.kinds[FDSocket]++
				continue
			}
			p.kinds[fdKind(string(target))]++
		}
		parts[next.Add(1)-1] = p
	})
	kinds, sockets := map[string]int{}, map[uint64]bool{}
	for _, p := range parts {
		for k, n := range p.kinds {
			kinds[k] += n
		}
		for ino := range p.sockets {
			sockets[ino] = true
		}
	}
	return kinds, sockets, nil
}
