package origin

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// StackDepth bounds a recorded stack: a deeper one keeps its innermost
// frames and is reported cut short.
const StackDepth = 64

// Record is what the kernel kept of one descriptor installed or one child
// forked while tracing: the user stack (an id in the stack map, negative
// when the map had no room for it) and when, on CLOCK_BOOTTIME.
type Record struct {
	StackID int64
	BootNs  uint64
}

// Tracer follows up to MaxFollowed processes in the kernel: every system
// call of their threads that returns a new descriptor (the raw sys_exit
// tracepoint, filtered by syscall number: open, socket, accept, pipe, dup,
// eventfd, memfd and the rest, and recvmsg with descriptors in an
// SCM_RIGHTS message), every close, and every child it forks (the
// sched_process_fork tracepoint), each with the user stack that did it.
// The records are joined with the table open at the end: a number reused
// keeps only its latest opener, and a closed one is forgotten.
//
// fentry on fd_install, the one place every descriptor enters a table,
// would see io_uring's too and cost other system calls nothing; kernels
// that refuse trampolines (this project's lab machine does, with EPERM)
// still have the tracepoints, so those are what is used.
type Tracer struct {
	Start  uint64    // CLOCK_BOOTTIME when tracing began
	pids   *ebpf.Map // the processes followed: one value of MaxFollowed tgids, 0 for none
	stacks *ebpf.Map
	kinds  *ebpf.Map
	lost   *ebpf.Map // one counter: records a full map could not take
	budget *ebpf.Map // the stack walks of the current second: {began, walks}

	walksPerSecond int
	unwindRules    *ebpf.Map // {tgid, ip} → unwindRule: the followed processes' system call sites in C code
	scratch        *ebpf.Map // per CPU: the frames of the stack being walked
	custom         *ebpf.Map // hash → frames: the stacks unwind walked
	unwinders      map[int]*unwinder
	off            offsets
	fds            *ebpf.Map // an array: process slot × fdsPer + fd → Record
	fdMem          *ebpf.Memory
	forks          *ebpf.Map // {parent tgid, child pid} → Record
	links          []link.Link
	followed       []uint32 // by slot; 0 for a free one
	fdsPer         int      // descriptor numbers recorded per process: 0 to fdsPer-1
}

// MaxFollowed is how many processes one tracer follows at once: each of
// the system's calls compares its process with each of them.
const MaxFollowed = 4

// key is the forks map's key: a followed process and a child it forked.
type key struct {
	TGID, ID uint32
}

// Bounds of the kernel's maps: the descriptor numbers recorded per
// process (as many as it may hold: its RLIMIT_NOFILE, up to 262,144; 16
// bytes each, allocated up front: a record is then two stores, no lock),
// the children (a hash, as used), and the distinct stacks (512 bytes
// each).
const (
	maxFDs    = 1 << 18
	maxForks  = 1 << 14
	maxStacks = 1 << 12
	// DefaultFDs is the descriptor numbers recorded per process by New.
	DefaultFDs = 1 << 16
)

// fdsFor is how many descriptors pid may hold at once: its soft
// RLIMIT_NOFILE, within [1024, maxFDs].
func fdsFor(pid int) int {
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		return maxFDs
	}
	return int(min(max(lim.Cur, 1024), maxFDs))
}

// ErrUnavailable wraps every reason tracing cannot start here (no BPF, no
// BTF, not privileged), so a caller can say what would fix it.
var ErrUnavailable = errors.New("origin tracing unavailable")

// Options bound the kernel's maps and the stack walks; zero takes the
// defaults.
type Options struct {
	// MaxFDs: descriptors numbered from 0 to MaxFDs-1 are recorded, of
	// each process (one numbered beyond is counted lost).
	MaxFDs, MaxForks int
	// Processes is how many a tracer made by New follows at once (default
	// 1, at most MaxFollowed).
	Processes int
	// StacksPerSecond bounds the user stacks walked each second (default
	// DefaultStacksPerSecond): walking one costs the traced thread ~7 µs,
	// so a loop opening 100,000 descriptors a second would be slowed
	// several times over. Records over the budget keep their time but no
	// stack (StackID NotSampled), and are reported as not sampled.
	StacksPerSecond int
}

// DefaultStacksPerSecond keeps the tracer's cost to a few percent of one
// core whatever the traced process does (bench/origin measures it), and
// samples every descriptor of a leak of up to that many a second.
const DefaultStacksPerSecond = 2000

// NotSampled is the StackID of a record made over the budget of stack
// walks.
const NotSampled = -1000

// Trace starts tracing pid. Close ends it.
func Trace(pid int) (*Tracer, error) { return TraceWith(pid, Options{}) }

// TraceWith is Trace with maps of other sizes; by default the descriptor
// map holds as many as pid may open (its RLIMIT_NOFILE).
func TraceWith(pid int, opts Options) (*Tracer, error) {
	opts.MaxFDs = cmp.Or(opts.MaxFDs, fdsFor(pid))
	return start(strconv.Itoa(pid), opts, pid)
}

// New starts a tracer that follows no process yet (Follow adds them);
// name ends its programs' names, so that bpftool shows whose they are.
// It records descriptors numbered below opts.MaxFDs (default DefaultFDs)
// of each of opts.Processes.
func New(name string, opts Options) (*Tracer, error) { return start(name, opts, 0) }

// start makes the maps, follows pid (if not 0), then loads and attaches
// the programs: once they show, pid is followed.
func start(name string, opts Options, pid int) (*Tracer, error) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("%w: the kernel has no BTF (/sys/kernel/btf/vmlinux: %v)", ErrUnavailable, err)
	}
	off, err := kernelOffsets()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	t := &Tracer{
		walksPerSecond: cmp.Or(opts.StacksPerSecond, DefaultStacksPerSecond),
		followed:       make([]uint32, min(cmp.Or(opts.Processes, 1), MaxFollowed)),
		fdsPer:         min(cmp.Or(opts.MaxFDs, DefaultFDs), maxFDs),
		unwinders:      map[int]*unwinder{},
		off:            off,
	}
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	if err := t.makeMaps(cmp.Or(opts.MaxForks, maxForks)); err != nil {
		return nil, unavailable("creating the BPF maps", err)
	}
	if pid != 0 {
		if err := t.Follow(pid); err != nil {
			return nil, err
		}
	}
	progs := []struct {
		name, attachTo string
		insns          asm.Instructions
	}{
		{"zwexit" + name, "sys_exit", t.sysExit(off)},
		{"zwfork" + name, "sched_process_fork", t.fork(off)},
	}
	for _, p := range progs {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name: p.name, Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: p.attachTo,
			Instructions: p.insns, License: "GPL",
		})
		if err != nil {
			return nil, unavailable("loading the program on the "+p.attachTo+" tracepoint", err)
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		prog.Close() // the link holds it
		if err != nil {
			return nil, unavailable("attaching to the "+p.attachTo+" tracepoint", err)
		}
		t.links = append(t.links, l)
	}
	t.Start = bootNow()
	ok = true
	return t, nil
}

// ProgramName is the name of the program ("exit" or "fork") of a tracer
// made by Trace(pid), as bpftool and /proc/PID/fdinfo show it: who traces
// what is visible on the host.
func ProgramName(what string, pid int) string {
	return fmt.Sprintf("zw%s%d", what, pid) // at most 15 bytes: the kernel's bound
}

// Follow adds pid to the processes traced: from now on what it opens and
// forks is recorded.
func (t *Tracer) Follow(pid int) error {
	if pid <= 0 || pid > 1<<22 {
		return fmt.Errorf("pid %d: no such process id", pid)
	}
	free := -1
	for i, f := range t.followed {
		if f == uint32(pid) {
			return nil
		}
		if f == 0 && free < 0 {
			free = i
		}
	}
	if free < 0 {
		return fmt.Errorf("following pid %d: this tracer follows at most %d at once", pid, len(t.followed))
	}
	// Its system call sites in C code, for unwind; none found (a Go
	// program) or none readable, the kernel's walk is all there is.
	if u, err := syscallSites("/proc", pid); err == nil {
		t.unwinders[pid] = u
		for ip, r := range u.sites {
			if err := t.unwindRules.Put(unwindKey{TGID: uint32(pid), IP: ip}, r); err != nil {
				// Full: those not put are not trusted either, as the
				// program does not have them.
				delete(u.sites, ip)
			}
		}
	}
	t.followed[free] = uint32(pid)
	return t.putFollowed()
}

// putFollowed writes the followed processes where the programs read them.
func (t *Tracer) putFollowed() error {
	var pids [MaxFollowed]uint32
	copy(pids[:], t.followed)
	return t.pids.Put(uint32(0), pids)
}

// Unfollow stops tracing pid and forgets what was recorded of it.
func (t *Tracer) Unfollow(pid int) error {
	slot := slices.Index(t.followed, uint32(pid))
	if slot < 0 {
		return nil
	}
	t.followed[slot] = 0
	if err := t.putFollowed(); err != nil {
		return err
	}
	if u := t.unwinders[pid]; u != nil {
		for ip := range u.sites {
			t.unwindRules.Delete(unwindKey{TGID: uint32(pid), IP: ip})
		}
		delete(t.unwinders, pid)
	}
	// Its descriptors' records, zeroed for the next in the slot.
	if _, err := t.fdMem.WriteAt(make([]byte, t.fdsPer*16), int64(slot*t.fdsPer*16)); err != nil {
		return err
	}
	var gone []key
	var k key
	var v Record
	it := t.forks.Iterate()
	for it.Next(&k, &v) {
		if k.TGID == uint32(pid) {
			gone = append(gone, k)
		}
	}
	for _, k := range gone {
		t.forks.Delete(k) // gone already if it was deleted meanwhile
	}
	return it.Err()
}

// unavailable wraps a refusal with what would lift it. Only a refusal or
// a missing feature is ErrUnavailable: a program the verifier rejects is
// a bug of ours, and must fail the tests, not skip them.
func unavailable(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		// The bare errno: the library's hint about RLIMIT_MEMLOCK is
		// wrong since Linux 5.11, which charges BPF memory to the cgroup.
		errno := unix.EPERM
		if errors.Is(err, unix.EACCES) {
			errno = unix.EACCES
		}
		return fmt.Errorf("%w: %s: %v (run as root, or with CAP_BPF and CAP_PERFMON; a kernel in lockdown=confidentiality refuses tracing to everyone)", ErrUnavailable, what, errno)
	case errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %s: %v (this kernel lacks it)", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%s: %v", what, err)
}

func (t *Tracer) makeMaps(forks int) error {
	var err error
	if t.pids, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_pids", Type: ebpf.Array, KeySize: 4, ValueSize: 4 * MaxFollowed, MaxEntries: 1}); err != nil {
		return err
	}
	if t.unwindRules, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_unwind", Type: ebpf.Hash, KeySize: 16, ValueSize: 16, MaxEntries: maxSites, Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return err
	}
	if t.scratch, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_scratch", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8 * StackDepth, MaxEntries: 1}); err != nil {
		return err
	}
	if t.custom, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_custom", Type: ebpf.Hash, KeySize: 8, ValueSize: 8 * StackDepth, MaxEntries: maxStacks, Flags: unix.BPF_F_NO_PREALLOC}); err != nil {
		return err
	}
	if t.stacks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_stacks", Type: ebpf.StackTrace, KeySize: 4, ValueSize: 8 * StackDepth, MaxEntries: maxStacks}); err != nil {
		return err
	}
	if t.kinds, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_kinds", Type: ebpf.Array, KeySize: 4, ValueSize: 1, MaxEntries: maxSyscall}); err != nil {
		return err
	}
	for nr, kind := range syscallKinds {
		if err := t.kinds.Put(nr, kind); err != nil {
			return err
		}
	}
	if t.budget, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_budget", Type: ebpf.Array, KeySize: 4, ValueSize: 16, MaxEntries: 1}); err != nil {
		return err
	}
	if t.lost, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_lost", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}); err != nil {
		return err
	}
	// Mapped into this process: a process's records are read as one
	// slice of memory, not the whole array through system calls.
	if t.fds, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_fds", Type: ebpf.Array, KeySize: 4, ValueSize: 16, MaxEntries: uint32(len(t.followed) * t.fdsPer), Flags: unix.BPF_F_MMAPABLE}); err != nil {
		return err
	}
	if t.fdMem, err = t.fds.Memory(); err != nil {
		return err
	}
	t.forks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_forks", Type: ebpf.Hash, KeySize: 8, ValueSize: 16, MaxEntries: uint32(forks), Flags: unix.BPF_F_NO_PREALLOC})
	return err
}

// Close detaches the programs and frees the maps.
func (t *Tracer) Close() error {
	for _, l := range t.links {
		l.Close()
	}
	t.links = nil
	for _, m := range []*ebpf.Map{t.pids, t.unwindRules, t.scratch, t.custom, t.stacks, t.kinds, t.budget, t.lost, t.fds, t.forks} {
		if m != nil {
			m.Close()
		}
	}
	return nil
}

// Records reads what was recorded of pid: by descriptor number, and by
// child pid.
func (t *Tracer) Records(pid int) (fds, forks map[int]Record, err error) {
	fds, forks = map[int]Record{}, map[int]Record{}
	slot := slices.Index(t.followed, uint32(pid))
	if slot < 0 {
		return fds, forks, nil
	}
	// This process's slot of the array (16 bytes a record). A record
	// being written meanwhile may be read half old: its time is only for
	// rates, and a number reused is re-read at the next reading.
	buf := make([]byte, t.fdsPer*16)
	if _, err := t.fdMem.ReadAt(buf, int64(slot*t.fdsPer*16)); err != nil {
		return nil, nil, err
	}
	for fd := range t.fdsPer {
		rec := Record{StackID: int64(binary.NativeEndian.Uint64(buf[fd*16:])), BootNs: binary.NativeEndian.Uint64(buf[fd*16+8:])}
		if rec.BootNs != 0 {
			fds[fd] = rec
		}
	}
	var k key
	var val Record
	it := t.forks.Iterate()
	for it.Next(&k, &val) {
		if k.TGID == uint32(pid) {
			forks[int(k.ID)] = val
		}
	}
	return fds, forks, it.Err()
}

// Lost is how many records the maps had no room for, for all the
// processes followed (more descriptors than the map holds, more than
// 16,384 children, at once).
func (t *Tracer) Lost() (uint64, error) {
	var n uint64
	err := t.lost.Lookup(uint32(0), &n)
	return n, err
}

// Stack is the user stack of an id, innermost first; nil when the map
// does not have it.
func (t *Tracer) Stack(id int64) []uint64 {
	if id < 0 {
		return nil
	}
	var frames [StackDepth]uint64
	if id >= customStack {
		if err := t.custom.Lookup(uint64(id), &frames); err != nil {
			return nil
		}
	} else if err := t.stacks.Lookup(uint32(id), &frames); err != nil {
		return nil
	}
	n := 0
	for n < StackDepth && frames[n] != 0 {
		n++
	}
	return frames[:n:n]
}

// bootNow is CLOCK_BOOTTIME in nanoseconds: the clock the records carry.
func bootNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano())
}

// Since is how long ago a record's time was.
func Since(bootNs uint64) time.Duration {
	now := bootNow()
	if bootNs > now {
		return 0
	}
	return time.Duration(now - bootNs)
}

// stackOf is the stack of an id recorded in pid: one unwind walked keeps
// only the frames that can be trusted, so that a frame-pointer chain
// through C code built without frame pointers ends rather than skips a
// caller.
func (t *Tracer) stackOf(pid int, id int64) []uint64 {
	frames := t.Stack(id)
	if u := t.unwinders[pid]; u != nil && id >= customStack {
		frames = frames[:u.trusted(frames)]
	}
	return frames
}
