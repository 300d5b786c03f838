package proc

import (
	"errors"
	"io/fs"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The per-process reads of /proc (stat, status, limits, the fd directory's
// stat, prlimit) never wait on a device: the kernel formats what it holds.
// Made as raw system calls they keep the goroutine's P, where the runtime
// would otherwise hand it to another thread at every call that outlasts
// sysmon's 20 µs tick (measured: a fifth of a host pass was that hand-off).

// atFDCWD is AT_FDCWD (-100) as the kernel reads it.
var atFDCWD = ^uintptr(99)

func rawOpen(path string) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	// O_NONBLOCK: in a hostile --proc-root tree a FIFO in place of a file
	// would block open (and read) for good; /proc's files ignore it.
	fd, _, e := unix.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(p)), uintptr(unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func rawRead(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return int(n), e
	}
	return int(n), nil
}

func rawClose(fd int) { unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0) }

func rawPrlimit(pid, resource int, old *unix.Rlimit) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PRLIMIT64, uintptr(pid), uintptr(resource), 0, uintptr(unsafe.Pointer(old)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func rawStat(path string, st *unix.Stat_t) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := unix.RawSyscall6(unix.SYS_NEWFSTATAT, atFDCWD, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(st)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// OpenDir opens a directory without blocking: a FIFO (or anything else)
// in its place in a hostile tree fails at once (ENOTDIR) instead of
// blocking in open.
func OpenDir(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// maxTable bounds a socket table read as text from a copied tree (the
// live host's come from sock_diag): 16 MiB is some 100,000 sockets.
const maxTable = 16 << 20

// checkRegular refuses, in a tree that is not a mounted procfs, a path
// that is not a regular file, before a library opens it with a blocking
// open (procfs's net/tcp, net/unix readers).
func (f *FS) checkRegular(path string) error {
	if f.real {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &fs.PathError{Op: "open", Path: path, Err: errors.New("not a regular file")}
	}
	if st.Size > maxTable {
		return &fs.PathError{Op: "open", Path: path, Err: errTooLarge(maxTable)}
	}
	return nil
}
