// Package proc owns every read of a /proc tree that zombiewatch makes: one
// process's identity, its children and zombies, its descriptors, its limits
// and its SIGCHLD disposition.
//
// The tree's root is a value (New("/proc"), New("testdata/proc/zombies")), so
// the same code runs on the real /proc and on fixture trees. Reads go through
// github.com/prometheus/procfs where it has the data; the few files it does not
// parse fully (stat field 52, the signal masks in status, hard limits) are
// parsed here, each with a comment saying why.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// ErrNoProcess reports that the target pid does not exist (or exited while
// it was being read). Test for it with errors.Is.
var ErrNoProcess = errors.New("no such process")

// ErrPIDReused reports that the pid was taken by another process while it
// was being read or watched: its start time changed.
var ErrPIDReused = errors.New("pid reused by another process")

// PermissionError is a read the kernel refused. Hint says what would fix it.
type PermissionError struct {
	Path string
	Hint string
	Err  error
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("read %s: permission denied (%s)", e.Path, e.Hint)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// ptraceHint is what lets a reader see another user's fd directory.
const ptraceHint = "run as the process's user, as root, or with CAP_SYS_PTRACE"

// FS is one /proc tree.
type FS struct {
	root string
	fs   procfs.FS
	// real: root is a mounted procfs, where stat of an fd directory gives
	// the fd count (a copied tree's directories give their block size).
	real bool

	// Now is the clock used for ages; tests set it for stable output.
	Now func() time.Time
	// LookupUser names a uid ("" if unknown); tests set it so output does
	// not depend on the host's /etc/passwd.
	LookupUser func(uid int) string

	bootOnce sync.Once
	boot     time.Time
	bootErr  error

	users sync.Map // uid → user name, looked up once
}

// userHZ is the unit of stat's start time. It is 100 on every Linux
// architecture Go supports (procfs hard-codes it for the same reason).
const userHZ = 100

// New opens the /proc tree mounted (or copied) at root.
func New(root string) (*FS, error) {
	pfs, err := procfs.NewFS(root)
	if err != nil {
		return nil, fmt.Errorf("open proc root %s: %w", root, err)
	}
	var sfs unix.Statfs_t
	real := unix.Statfs(root, &sfs) == nil && sfs.Type == unix.PROC_SUPER_MAGIC
	return &FS{root: root, fs: pfs, real: real, Now: time.Now, LookupUser: lookupUser}, nil
}

// Root is the tree's root directory.
func (f *FS) Root() string { return f.root }

// bootTime reads btime from <root>/stat once per FS: procfs's
// ProcStat.StartTime re-reads /proc/stat on every call.
func (f *FS) bootTime() (time.Time, error) {
	f.bootOnce.Do(func() {
		// Only the btime line: procfs's Stat parses every CPU's line and
		// the interrupt counters as well, 4x the cost on 2 CPUs and more
		// on big hosts, for a value read once per run.
		path := f.path("stat")
		data, err := readFile(path, make([]byte, 0, 4096))
		var secs int64
		if err == nil {
			secs, err = btime(data)
		}
		if err != nil {
			f.bootErr = fmt.Errorf("read %s: %w", path, err)
			return
		}
		f.boot = time.Unix(secs, 0)
	})
	return f.boot, f.bootErr
}

// btime finds the boot time, in seconds since the epoch, in /proc/stat.
func btime(stat []byte) (int64, error) {
	for line := range bytes.Lines(stat) {
		if rest, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			return strconv.ParseInt(string(bytes.TrimSpace(rest)), 10, 64)
		}
	}
	return 0, errors.New("no btime line")
}

// startTime converts stat's start time (clock ticks since boot) to a time.
func (f *FS) startTime(ticks uint64) (time.Time, error) {
	boot, err := f.bootTime()
	if err != nil {
		return time.Time{}, err
	}
	return boot.Add(time.Duration(ticks) * (time.Second / userHZ)), nil
}

func (f *FS) path(elem ...string) string {
	return filepath.Join(append([]string{f.root}, elem...)...)
}

// pidFile is root/PID/name in one allocation, for the per-process hot
// paths (filepath.Join cleans and allocates more).
func (f *FS) pidFile(pid int, name string) string {
	return f.root + "/" + strconv.Itoa(pid) + "/" + name
}

func (f *FS) pidPath(pid int, elem ...string) string {
	return f.path(append([]string{strconv.Itoa(pid)}, elem...)...)
}

// isGone tells whether err means the process (or thread) is no longer there.
// Between listing and reading, processes exit: that is normal.
func isGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// classify turns a failed read of the target's file into the error the
// caller should see: ErrNoProcess, a PermissionError, or the error itself.
func classify(pid int, path string, err error) error {
	switch {
	case isGone(err):
		return fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	case errors.Is(err, fs.ErrPermission):
		return &PermissionError{Path: path, Hint: ptraceHint, Err: err}
	default:
		return err
	}
}

// readFile reads a small /proc file whole into buf's storage. It uses
// open, read and close directly: os.Open adds an fstat and allocations per
// file, which count when a parent holds thousands of zombies. /proc files
// report size 0 and hand out at most a page per read (seq_file), so a short
// read is not the end: it reads until read returns 0.
func readFile(path string, buf []byte) ([]byte, error) {
	return readProc(path, buf, false)
}

// readRecord reads a /proc file made of one record (stat, status, limits:
// the kernel's single_open files), which one read returns whole when it
// fits in buf: it saves the read that returns 0, one syscall per file.
func readRecord(path string, buf []byte) ([]byte, error) {
	return readProc(path, buf, true)
}

func readProc(path string, buf []byte, record bool) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if cap(buf) < 512 {
		buf = make([]byte, 0, 1024)
	}
	buf = buf[:cap(buf)]
	n := 0
	for {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if m == 0 {
			return buf[:n], nil
		}
		n += m
		if record && n < len(buf) {
			return buf[:n], nil
		}
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
			buf = buf[:cap(buf)]
		}
	}
}

// procfsProc is the part of procfs.Proc the descriptor count uses.
type procfsProc interface {
	FileDescriptorsLen() (int, error)
}

// signalName names a signal the way kill -l does ("SIGKILL").
func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return "signal " + strconv.Itoa(int(sig))
}
