// Package proc reads the kernel's files under a /proc tree: one file per
// kernel file (stat, status, limits, sched, task/TID/children, the fd
// directory and its links, net/tcp, net/udp, net/unix), each returning a
// typed record, plus the few syscalls that read the same facts where a
// file does not give them (prlimit for a live process's limits, getxattr
// for a socket's protocol, stat for an fd count). It knows no JSON, no
// ranking and no English: the model above it (internal/model) gives the
// records meaning; internal/sockdiag asks netlink what sockets are.
//
// The tree's root is a value (New("/proc"), New("testdata/proc/zombies")), so
// the same code runs on the real /proc and on fixture trees. Reads go through
// github.com/prometheus/procfs where it has the data; the files it does not
// parse fully (stat field 52, the signal masks in status, hard limits) are
// parsed here, each with a comment saying why.
//
// Everything in a /proc tree is input a process controls (its name, its
// command line) or, under --proc-root, a tree anyone may have written: the
// parsers take only canonical numbers, bound what they read, and name the
// file they could not parse.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// FS is one /proc tree.
type FS struct {
	root string
	fs   procfs.FS
	// real: root is a mounted procfs, where stat of an fd directory gives
	// the fd count (a copied tree's directories give their block size).
	real bool
	// live: root is this host's own /proc as this process sees it, so a
	// pid in it is a pid this process can signal, prlimit or connect to.
	live bool

	bootOnce sync.Once
	boot     time.Time
	bootErr  error

	statusReads atomic.Int64
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
	f := &FS{root: root, fs: pfs, real: real, live: real && isSelf(root)}
	// A directory that is not a proc tree would read as a host with no
	// processes: refuse it rather than print zeros.
	if _, err := f.BootTime(); err != nil {
		return nil, fmt.Errorf("%s is not a proc tree (%w)", root, err)
	}
	return f, nil
}

// isSelf tells whether root/self names this process: then root is the
// procfs of this process's own pid namespace, whatever its path (the
// DaemonSet's /host/proc with hostPID is live; a container's /proc seen
// from the host is not).
func isSelf(root string) bool {
	target, err := os.Readlink(filepath.Join(root, "self"))
	return err == nil && target == strconv.Itoa(os.Getpid())
}

// Root is the tree's root directory.
func (f *FS) Root() string { return f.root }

// Live tells whether the tree is this host's own /proc as this process sees
// it: the one seam that says whether pids in it may be probed, signalled or
// prlimit-ed. Decided once, in New.
func (f *FS) Live() bool { return f.live }

// Real tells whether the tree is a mounted procfs (not a copied tree).
func (f *FS) Real() bool { return f.real }

// BootTime is when the kernel booted, once per FS. On a mounted procfs it
// is the wall clock less CLOCK_BOOTTIME (the clock stat's start times
// count), to the microsecond: /proc/stat's btime is whole seconds, which
// made every age up to a second too old. A copied tree gives its btime.
func (f *FS) BootTime() (time.Time, error) {
	f.bootOnce.Do(func() {
		if f.real {
			var ts unix.Timespec
			if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err == nil {
				f.boot = time.Now().Add(-time.Duration(ts.Nano()))
				return
			}
		}
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
			n, err := parseUint(bytes.TrimSpace(rest))
			if err != nil || n > 1<<40 {
				return 0, fmt.Errorf("malformed btime %q", truncate(rest))
			}
			return int64(n), nil
		}
	}
	return 0, errors.New("no btime line")
}

// maxTicks bounds a start time: 100 years of clock ticks. More is a
// hostile or broken tree, not a process.
const maxTicks = 100 * 365 * 24 * 3600 * userHZ

// StartTime converts stat's start time (clock ticks since boot) to a time.
func (f *FS) StartTime(ticks uint64) (time.Time, error) {
	boot, err := f.BootTime()
	if err != nil {
		return time.Time{}, err
	}
	if ticks > maxTicks {
		return time.Time{}, fmt.Errorf("start time %d ticks: more than 100 years after boot", ticks)
	}
	return boot.Add(time.Duration(ticks) * (time.Second / userHZ)), nil
}

func (f *FS) path(elem ...string) string {
	return filepath.Join(append([]string{f.root}, elem...)...)
}

// PIDFile is root/PID/name in one allocation, for the per-process hot
// paths (filepath.Join cleans and allocates more).
func (f *FS) PIDFile(pid int, name string) string {
	return f.root + "/" + strconv.Itoa(pid) + "/" + name
}

// PIDPath is root/PID/elem...
func (f *FS) PIDPath(pid int, elem ...string) string {
	return f.path(append([]string{strconv.Itoa(pid)}, elem...)...)
}

// IsGone tells whether err means the process (or thread) is no longer there.
// Between listing and reading, processes exit: that is normal.
func IsGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

// maxFileSize bounds any /proc file read whole: the largest real one read
// here (a busy net/tcp) is far smaller; a larger one is a hostile tree.
const maxFileSize = 64 << 20

// Bounds of the single-record files and of the lists, checked as they are
// read (a hostile tree's 100 MB file costs no more than the bound): a
// status with 65,536 supplementary groups is about 400 KB; a children
// list of a million pids 8 MB.
const (
	maxRecord   = 1 << 20
	maxChildren = 8 << 20
	maxSmall    = 64 << 10 // cgroup, wchan, kernel limits, stat of the root
)

// readFile reads a small /proc file whole into buf's storage. It uses
// open, read and close directly: os.Open adds an fstat and allocations per
// file, which count when a parent holds thousands of zombies. /proc files
// report size 0 and hand out at most a page per read (seq_file), so a short
// read is not the end: it reads until read returns 0.
func readFile(path string, buf []byte) ([]byte, error) {
	return readProc(path, buf, false, maxSmall)
}

// readFileMax is readFile with its own bound.
func readFileMax(path string, buf []byte, limit int) ([]byte, error) {
	return readProc(path, buf, false, limit)
}

// readRecord reads a /proc file made of one record (stat, status, limits:
// the kernel's single_open files), which one read returns whole when it
// fits in buf: it saves the read that returns 0, one syscall per file.
func readRecord(path string, buf []byte) ([]byte, error) {
	return readProc(path, buf, true, maxRecord)
}

// errTooLarge: a file beyond its bound (a hostile tree).
type errTooLarge int

func (e errTooLarge) Error() string { return fmt.Sprintf("file larger than %d bytes", int(e)) }

// readHead reads at most n bytes from the start of path, in one read:
// for the files whose first lines are all that is wanted (sched).
func readHead(path string, buf []byte, n int) ([]byte, error) {
	fd, err := rawOpen(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer rawClose(fd)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	for {
		m, err := rawRead(fd, buf[:n])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		return buf[:m], nil
	}
}

func readProc(path string, buf []byte, record bool, limit int) ([]byte, error) {
	fd, err := rawOpen(path)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer rawClose(fd)
	if cap(buf) < 512 {
		buf = make([]byte, 0, 1024)
	}
	buf = buf[:cap(buf)]
	n := 0
	for {
		m, err := rawRead(fd, buf[n:])
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
		if n > limit {
			return nil, &ParseError{Path: path, Err: errTooLarge(limit)}
		}
		if n == len(buf) {
			buf = append(buf, make([]byte, min(len(buf), limit+1-len(buf)+1))...)
			buf = buf[:cap(buf)]
		}
	}
}

// Parallel calls work on contiguous parts of [0, n), one per CPU, and
// waits for them all. The reads it runs are independent and almost all
// kernel time: measured on 2 cores, one reader per CPU halves a pass.
func Parallel(n int, work func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), max(n/64, 1))
	if workers == 1 {
		work(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := n*w/workers, n*(w+1)/workers
		wg.Go(func() { work(lo, hi) })
	}
	wg.Wait()
}

// Owner is the uid owning pid's /proc directory (its effective uid, as ps's
// USER column shows): one stat.
func (f *FS) Owner(pid int) (int, error) {
	var st unix.Stat_t
	path := f.PIDPath(pid)
	if err := unix.Stat(path, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return int(st.Uid), nil
}

// maxCmdline bounds a command line (the kernel's own bound is ARG_MAX).
const maxCmdline = 128 << 10

// Cmdline reads pid's command line, NUL-separated arguments as the process
// left them (it may rewrite its own). A kernel thread has none.
func (f *FS) Cmdline(pid int) ([]string, error) {
	path := f.PIDFile(pid, "cmdline")
	// The first maxCmdline bytes, in one bounded read: a 100 MB command
	// line (or a hostile tree's file) costs no more.
	data, err := readHead(path, make([]byte, maxCmdline), maxCmdline)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimRight(data, "\x00")
	if len(data) == 0 {
		return nil, nil
	}
	var args []string
	for arg := range bytes.SplitSeq(data, []byte{0}) {
		args = append(args, string(arg))
	}
	return args, nil
}

// InitPIDNamespace is the inode of the host's own (initial) pid namespace
// (PROC_PID_INIT_INO): its PID 1 is the host's init, not a container's.
const InitPIDNamespace = 0xEFFFFFFC

// PIDNamespace is the inode of pid's pid namespace, from the ns/pid link
// ("pid:[4026531836]"). Reading it needs ptrace access to pid.
func (f *FS) PIDNamespace(pid int) (uint64, error) {
	target, err := os.Readlink(f.PIDFile(pid, "ns/pid"))
	if err != nil {
		return 0, err
	}
	ino, ok := strings.CutPrefix(target, "pid:[")
	if !ok {
		return 0, &ParseError{Path: f.PIDFile(pid, "ns/pid"), Err: fmt.Errorf("malformed link %q", truncate([]byte(target)))}
	}
	return parseUint([]byte(strings.TrimSuffix(ino, "]")))
}

// Wchan is the kernel function pid sleeps in ("do_wait" when blocked in
// wait4 or waitid), or "0" when it runs.
func (f *FS) Wchan(pid int) (string, error) {
	data, err := readFile(f.PIDFile(pid, "wchan"), make([]byte, 0, 128))
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(truncate(data))), nil
}
