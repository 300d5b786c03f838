package origin

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
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
	zero := make([]Record, t.fdsPer)
	keys := make([]uint32, t.fdsPer)
	for i := range keys {
		keys[i] = uint32(slot*t.fdsPer + i)
	}
	if _, err := t.fds.BatchUpdate(keys, zero, nil); err != nil {
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

// What a system call does to the descriptor table, by its number.
const (
	kindNone     = iota
	kindFD       // returns a new descriptor
	kindFcntl    // fcntl: a new descriptor for F_DUPFD and F_DUPFD_CLOEXEC
	kindPairArg0 // writes two descriptors to the array its first argument points to
	kindPairArg3 // the same, its fourth argument (socketpair)
	kindClose    // close: the descriptor of its first argument is gone
	kindClone    // clone: with CLONE_PIDFD, a pidfd written where its third argument points
	kindClone3   // clone3: with CLONE_PIDFD in its clone_args, a pidfd written where they say
	kindRecvmsg  // recvmsg: descriptors received in an SCM_RIGHTS message, written to its control buffer
)

// maxReceived is how many descriptors of one message (a pair, an
// SCM_RIGHTS message) are recorded; more in one message go untraced.
const maxReceived = 8

// syscallKinds are x86-64's numbers of the system calls that add or
// remove a descriptor. bpf(2) is left out: it returns 0 for success as
// often as a descriptor.
var syscallKinds = map[uint32]uint8{
	2: kindFD, 85: kindFD, 257: kindFD, 437: kindFD, 304: kindFD, // open, creat, openat, openat2, open_by_handle_at
	41: kindFD, 43: kindFD, 288: kindFD, // socket, accept, accept4
	32: kindFD, 33: kindFD, 292: kindFD, 72: kindFcntl, // dup, dup2, dup3, fcntl
	213: kindFD, 291: kindFD, 284: kindFD, 290: kindFD, // epoll_create(1), eventfd(2)
	282: kindFD, 289: kindFD, 283: kindFD, 319: kindFD, // signalfd(4), timerfd_create, memfd_create
	253: kindFD, 294: kindFD, 300: kindFD, 298: kindFD, // inotify_init(1), fanotify_init, perf_event_open
	434: kindFD, 438: kindFD, 323: kindFD, 425: kindFD, // pidfd_open, pidfd_getfd, userfaultfd, io_uring_setup
	428: kindFD, 430: kindFD, 432: kindFD, 433: kindFD, 447: kindFD, // open_tree, fsopen, fsmount, fspick, memfd_secret
	22: kindPairArg0, 293: kindPairArg0, 53: kindPairArg3, // pipe, pipe2, socketpair
	3:  kindClose,
	56: kindClone, 435: kindClone3, // os/exec's children come with a pidfd
	47: kindRecvmsg,
}

const maxSyscall = 512

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
	if t.fds, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_fds", Type: ebpf.Array, KeySize: 4, ValueSize: 16, MaxEntries: uint32(len(t.followed) * t.fdsPer)}); err != nil {
		return err
	}
	t.forks, err = ebpf.NewMap(&ebpf.MapSpec{Name: "zw_forks", Type: ebpf.Hash, KeySize: 8, ValueSize: 16, MaxEntries: uint32(forks), Flags: unix.BPF_F_NO_PREALLOC})
	return err
}

// offsets are the kernel structures' fields the programs read, from BTF:
// this kernel's layout, not a header's.
type offsets struct {
	origAX, di, si, dx, r10 int16 // struct pt_regs: the syscall number, arguments 1, 2, 3 and 4
	ip, sp, bp              int16 // struct pt_regs: where the user's code was
	taskPID, taskTGID       int16
}

func kernelOffsets() (offsets, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return offsets{}, fmt.Errorf("reading the kernel's BTF: %v", err)
	}
	var o offsets
	for _, f := range []struct {
		typ, member string
		dst         *int16
	}{
		{"pt_regs", "orig_ax", &o.origAX},
		{"pt_regs", "di", &o.di},
		{"pt_regs", "si", &o.si},
		{"pt_regs", "dx", &o.dx},
		{"pt_regs", "r10", &o.r10},
		{"pt_regs", "ip", &o.ip},
		{"pt_regs", "sp", &o.sp},
		{"pt_regs", "bp", &o.bp},
		{"task_struct", "pid", &o.taskPID},
		{"task_struct", "tgid", &o.taskTGID},
	} {
		var s *btf.Struct
		if err := spec.TypeByName(f.typ, &s); err != nil {
			return o, fmt.Errorf("struct %s in the kernel's BTF: %v", f.typ, err)
		}
		found := false
		for _, m := range s.Members {
			if m.Name == f.member {
				*f.dst, found = int16(m.Offset.Bytes()), true
			}
		}
		if !found {
			return o, fmt.Errorf("struct %s has no %s in the kernel's BTF", f.typ, f.member)
		}
	}
	return o, nil
}

// The programs' stack, as offsets from the frame pointer: the record's
// value (stack id, time), its key (the process, then the descriptor or
// child), the two descriptors a pipe returns, the syscall number looked
// up.
const (
	valStack = -16
	valTime  = -8
	keyTGID  = -24
	keyOff   = -20
	nrOff    = -36
	argsOff  = -56  // the first 16 bytes of clone3's clone_args: flags, pidfd
	slotOff  = -60  // where the process's records begin in the descriptor array
	fdsOff   = -96  // the descriptors of one call, maxReceived of them at most
	ukeyOff  = -112 // the unwind map's key: {tgid, 0, ip}
	spOff    = -120 // the user's sp
	bpOff    = -128 // the frame pointer of the frame walked next
	tmpOff   = -144 // a frame read from the user's stack: {next frame pointer, return address}
)

// ifTraced starts a program, then goes on to body: r6 = ctx, the current
// process into the key and its slot's first record into slotOff; on to
// "exit" unless it is one of those followed.
func (t *Tracer) ifTraced(body ...asm.Instruction) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(asm.R0, 32),
		asm.StoreMem(asm.RFP, keyTGID, asm.R0, asm.Word),
	}
	insns = append(insns, lookupFirst(t.pids, "exit")...)
	insns = append(insns, asm.LoadMem(asm.R1, asm.RFP, keyTGID, asm.Word))
	for i := range t.followed {
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R0, int16(4*i), asm.Word),
			asm.Mov.Imm(asm.R3, int32(i*t.fdsPer)),
			asm.JEq.Reg(asm.R1, asm.R2, "traced"))
	}
	insns = append(insns,
		asm.Ja.Label("exit"),
		asm.StoreMem(asm.RFP, slotOff, asm.R3, asm.Word).WithSymbol("traced"))
	return append(insns, body...)
}

// record ends a program: the stack and the time into the value, then
// store (the value under the key; on to "updated", or "full" when there
// is no room); while r9 is not 0, store again for the next descriptor of
// the call (a pair, those received in one message).
func (t *Tracer) record(store asm.Instructions) asm.Instructions {
	insns := asm.Instructions{
		// The time, then the stack if this second's budget of stack
		// walks is not spent (r7: the budget's {second began, walks}).
		asm.FnKtimeGetBootNs.Call().WithSymbol("record"),
		asm.StoreMem(asm.RFP, valTime, asm.R0, asm.DWord),
	}
	insns = append(insns, lookupFirst(t.budget, "walk")...)
	insns = append(insns,
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadMem(asm.R1, asm.RFP, valTime, asm.DWord),
		asm.LoadMem(asm.R2, asm.R7, 0, asm.DWord),
		asm.Sub.Reg(asm.R1, asm.R2),
		asm.JLT.Imm(asm.R1, int32(time.Second), "counted"),
		asm.LoadMem(asm.R1, asm.RFP, valTime, asm.DWord),
		asm.StoreMem(asm.R7, 0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R7, 8, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, 8, asm.DWord).WithSymbol("counted"),
		asm.JGE.Imm(asm.R1, int32(t.walksPerSecond), "over"),
		asm.Mov.Imm(asm.R1, 1),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.Add.Imm(asm.R2, 8),
		asm.StoreXAdd(asm.R2, asm.R1, asm.DWord),
	)
	insns = append(insns, t.unwind()...)
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R6).WithSymbol("kernelwalk"),
		asm.LoadMapPtr(asm.R2, t.stacks.FD()),
		asm.Mov.Imm(asm.R3, unix.BPF_F_USER_STACK),
		asm.FnGetStackid.Call(),
		asm.StoreMem(asm.RFP, valStack, asm.R0, asm.DWord),
		asm.Ja.Label("store"),
		asm.Mov.Imm(asm.R1, NotSampled).WithSymbol("over"),
		asm.StoreMem(asm.RFP, valStack, asm.R1, asm.DWord),
	)
	store[0] = store[0].WithSymbol("store")
	insns = append(insns, store...)
	// No room: counted, never a silent loss.
	lost := lookupFirst(t.lost, "updated")
	lost[0] = lost[0].WithSymbol("full")
	insns = append(insns, lost...)
	insns = append(insns,
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.JEq.Imm(asm.R9, 0, "exit").WithSymbol("updated"),
		asm.Sub.Imm(asm.R9, 1),
	)
	// The next descriptor of the call: the rest shift down one.
	for i := range maxReceived - 1 {
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.RFP, fdsOff+4*int16(i+1), asm.Word),
			asm.StoreMem(asm.RFP, fdsOff+4*int16(i), asm.R1, asm.Word))
	}
	return append(insns,
		asm.LoadMem(asm.R1, asm.RFP, fdsOff, asm.Word),
		asm.StoreMem(asm.RFP, keyOff, asm.R1, asm.Word),
		asm.Ja.Label("store"),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
}

// unwind is the walk of the user stack from a system call in a function
// without a frame pointer (a C library's wrapper; unwind.go): where the
// process's ip has an unwind rule, frame 0 is ip, the next frames are
// unwound by rules while the frame before has one (up to maxCFIFrames),
// and the rest follow the frame-pointer chain from the rbp they give; the
// frames go to the custom stack map under their hash, which becomes the
// stack id (customStack set). Elsewhere, on to "kernelwalk". r7 and r8
// are spent.
func (t *Tracer) unwind() asm.Instructions {
	insns := asm.Instructions{
		asm.FnGetCurrentTaskBtf.Call().WithSymbol("walk"),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.FnTaskPtRegs.Call(),
		asm.LoadMem(asm.R1, asm.R0, t.off.ip, asm.DWord),
		asm.StoreMem(asm.RFP, ukeyOff+8, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, t.off.sp, asm.DWord),
		asm.StoreMem(asm.RFP, spOff, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, t.off.bp, asm.DWord),
		asm.StoreMem(asm.RFP, bpOff, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.RFP, keyTGID, asm.Word),
		asm.StoreMem(asm.RFP, ukeyOff, asm.R1, asm.Word),
		asm.StoreImm(asm.RFP, ukeyOff+4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, t.unwindRules.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, ukeyOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "kernelwalk"),
		asm.Mov.Reg(asm.R7, asm.R0), // the rule: {ra, rbp same, rbp at}
	}
	insns = append(insns, lookupFirst(t.scratch, "kernelwalk")...)
	insns = append(insns, asm.Mov.Reg(asm.R8, asm.R0), asm.Mov.Imm(asm.R1, 0))
	for i := range StackDepth {
		insns = append(insns, asm.StoreMem(asm.R8, int16(8*i), asm.R1, asm.DWord))
	}
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.RFP, ukeyOff+8, asm.DWord),
		asm.StoreMem(asm.R8, 0, asm.R1, asm.DWord),
	)
	// Frames by rules while the frame before has one (r7), then by the
	// frame-pointer chain.
	for k := 1; k <= maxCFIFrames; k++ {
		if k > 1 {
			insns = append(insns,
				asm.LoadMapPtr(asm.R1, t.unwindRules.FD()),
				asm.Mov.Reg(asm.R2, asm.RFP),
				asm.Add.Imm(asm.R2, ukeyOff),
				asm.FnMapLookupElem.Call(),
				asm.JEq.Imm(asm.R0, 0, fmt.Sprintf("chain%d", k)),
				asm.Mov.Reg(asm.R7, asm.R0))
		}
		failed := "hash"
		if k == 1 {
			failed = "kernelwalk"
		}
		// The return address at sp + ra: frame k, and the next to look up.
		insns = append(insns, fromSP(0, tmpOff)...)
		insns = append(insns,
			asm.JNE.Imm(asm.R0, 0, failed),
			asm.LoadMem(asm.R1, asm.RFP, tmpOff, asm.DWord),
			asm.StoreMem(asm.R8, int16(8*k), asm.R1, asm.DWord),
			asm.StoreMem(asm.RFP, ukeyOff+8, asm.R1, asm.DWord),
			// The caller's rbp: kept, or saved at sp + rbp at (unread,
			// bpOff is zeroed: the chain ends).
			asm.LoadMem(asm.R1, asm.R7, 4, asm.Word),
			asm.JEq.Imm(asm.R1, 1, fmt.Sprintf("cfa%d", k)),
		)
		insns = append(insns, fromSP(8, bpOff)...)
		insns = append(insns,
			// The caller's sp: sp + cfa.
			asm.LoadMem(asm.R1, asm.RFP, spOff, asm.DWord).WithSymbol(fmt.Sprintf("cfa%d", k)),
			asm.LoadMem(asm.R2, asm.R7, 12, asm.Word),
			asm.Add.Reg(asm.R1, asm.R2),
			asm.StoreMem(asm.RFP, spOff, asm.R1, asm.DWord),
		)
	}
	insns = append(insns, asm.Ja.Label(fmt.Sprintf("chain%d", maxCFIFrames+1)))
	for i := 2; i < StackDepth; i++ {
		first := asm.LoadMem(asm.R3, asm.RFP, bpOff, asm.DWord)
		if i <= maxCFIFrames+1 {
			first = first.WithSymbol(fmt.Sprintf("chain%d", i))
		}
		insns = append(insns,
			first,
			asm.JEq.Imm(asm.R3, 0, "hash"),
			asm.Mov.Reg(asm.R1, asm.RFP),
			asm.Add.Imm(asm.R1, tmpOff),
			asm.Mov.Imm(asm.R2, 16),
			asm.FnProbeReadUser.Call(),
			asm.JNE.Imm(asm.R0, 0, "hash"),
			asm.LoadMem(asm.R1, asm.RFP, tmpOff+8, asm.DWord),
			asm.JEq.Imm(asm.R1, 0, "hash"),
			asm.StoreMem(asm.R8, int16(8*i), asm.R1, asm.DWord),
			asm.LoadMem(asm.R1, asm.RFP, tmpOff, asm.DWord),
			asm.StoreMem(asm.RFP, bpOff, asm.R1, asm.DWord),
		)
	}
	// FNV-1a over the frames: the stack's id.
	insns = append(insns,
		asm.LoadImm(asm.R1, int64(-3750763034362895579), asm.DWord).WithSymbol("hash"), // 14695981039346656037
		asm.LoadImm(asm.R3, 1099511628211, asm.DWord),
	)
	for i := range StackDepth {
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R8, int16(8*i), asm.DWord),
			asm.Xor.Reg(asm.R1, asm.R2),
			asm.Mul.Reg(asm.R1, asm.R3))
	}
	return append(insns,
		asm.LoadImm(asm.R2, customStack-1, asm.DWord),
		asm.And.Reg(asm.R1, asm.R2),
		asm.LoadImm(asm.R2, customStack, asm.DWord),
		asm.Or.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.RFP, valStack, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, tmpOff, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, t.custom.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, tmpOff),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.Mov.Imm(asm.R4, unix.BPF_ANY),
		asm.FnMapUpdateElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "store"),
		asm.Mov.Imm(asm.R1, -int32(unix.ENOMEM)), // no room: no stack, as a full kernel map says
		asm.StoreMem(asm.RFP, valStack, asm.R1, asm.DWord),
		asm.Ja.Label("store"),
	)
}

// fromSP reads the 8 bytes at the user's sp plus the rule's field at
// field (r7: the rule) to dst; r0 is 0 when they could be read.
func fromSP(field, dst int16) asm.Instructions {
	return asm.Instructions{
		asm.LoadMem(asm.R3, asm.RFP, spOff, asm.DWord),
		asm.LoadMem(asm.R1, asm.R7, field, asm.Word),
		asm.Add.Reg(asm.R3, asm.R1),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, int32(dst)),
		asm.Mov.Imm(asm.R2, 8),
		asm.FnProbeReadUser.Call(),
	}
}

// customStack marks the id of a stack walked by unwind: its frames are
// in the custom stack map.
const customStack = 1 << 62

// readArgs reads 16 bytes at the user address in r3 to argsOff; on to
// "exit" if they cannot be read.
func readArgs() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, argsOff),
		asm.Mov.Imm(asm.R2, 16),
		asm.FnProbeReadUser.Call(),
		asm.JNE.Imm(asm.R0, 0, "exit"),
	}
}

// fdRecord is the descriptor's record in the array, in r0, from the
// descriptor in r1; on to label when it is numbered beyond those recorded.
func (t *Tracer) fdRecord(label string) asm.Instructions {
	return asm.Instructions{
		asm.JGE.Imm(asm.R1, int32(t.fdsPer), label),
		asm.LoadMem(asm.R2, asm.RFP, slotOff, asm.Word),
		asm.Add.Reg(asm.R1, asm.R2),
		asm.StoreMem(asm.RFP, nrOff, asm.R1, asm.Word),
		asm.LoadMapPtr(asm.R1, t.fds.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, nrOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, label),
	}
}

// storeFD stores the value as the record of the descriptor in the key:
// two stores into the array, no lock, no allocation.
func (t *Tracer) storeFD() asm.Instructions {
	insns := asm.Instructions{asm.LoadMem(asm.R1, asm.RFP, keyOff, asm.Word)}
	insns = append(insns, t.fdRecord("full")...)
	return append(insns,
		asm.LoadMem(asm.R1, asm.RFP, valStack, asm.DWord),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.RFP, valTime, asm.DWord),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.Ja.Label("updated"),
	)
}

// storeFork stores the value under the key {process, child} in the forks
// hash.
func (t *Tracer) storeFork() asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, t.forks.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, keyTGID),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, valStack),
		asm.Mov.Imm(asm.R4, unix.BPF_ANY),
		asm.FnMapUpdateElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "updated"),
		asm.Ja.Label("full"),
	}
}

// lookupFirst looks up element 0 of the array m into r0 (r1, r2 spent),
// on to label when there is none.
func lookupFirst(m *ebpf.Map, label string) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, nrOff, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, nrOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, label),
	}
}

// sysExit: the raw sys_exit tracepoint (struct pt_regs *regs, long ret).
// r7 = ret, r8 = regs, r9 = how many descriptors at fdsOff are left to
// record after the first.
func (t *Tracer) sysExit(o offsets) asm.Instructions {
	insns := t.ifTraced(
		asm.LoadMem(asm.R7, asm.R6, 8, asm.DWord),
		asm.JSLT.Imm(asm.R7, 0, "exit"),
		asm.LoadMem(asm.R8, asm.R6, 0, asm.DWord),
		asm.LoadMem(asm.R2, asm.R8, o.origAX, asm.DWord),
		asm.JGE.Imm(asm.R2, maxSyscall, "exit"),
		asm.StoreMem(asm.RFP, nrOff, asm.R2, asm.Word),
		asm.LoadMapPtr(asm.R1, t.kinds.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, nrOff),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.Byte),
		asm.Mov.Imm(asm.R9, 0),
		asm.JEq.Imm(asm.R1, kindFD, "fd"),
		asm.JEq.Imm(asm.R1, kindFcntl, "fcntl"),
		asm.JEq.Imm(asm.R1, kindPairArg0, "pair0"),
		asm.JEq.Imm(asm.R1, kindPairArg3, "pair3"),
		asm.JEq.Imm(asm.R1, kindClose, "close"),
		asm.JEq.Imm(asm.R1, kindClone, "clone"),
		asm.JEq.Imm(asm.R1, kindClone3, "clone3"),
		asm.JEq.Imm(asm.R1, kindRecvmsg, "recvmsg"),
		asm.Ja.Label("exit"),

		// recvmsg(fd, struct user_msghdr *msg, flags): msg_control and
		// msg_controllen (the length received) at 32 and 40; the first
		// cmsghdr {u64 len; int level; int type} and its descriptors.
		asm.LoadMem(asm.R3, asm.R8, o.si, asm.DWord).WithSymbol("recvmsg"),
		asm.Add.Imm(asm.R3, 32),
	)
	insns = append(insns, readArgs()...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.RFP, argsOff+8, asm.DWord),
		asm.JLT.Imm(asm.R1, 20, "exit"), // no room for a header and a descriptor
		asm.LoadMem(asm.R7, asm.RFP, argsOff, asm.DWord),
		asm.Mov.Reg(asm.R3, asm.R7),
	)
	insns = append(insns, readArgs()...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.RFP, argsOff+8, asm.Word),
		asm.JNE.Imm(asm.R1, unix.SOL_SOCKET, "exit"),
		asm.LoadMem(asm.R1, asm.RFP, argsOff+12, asm.Word),
		asm.JNE.Imm(asm.R1, unix.SCM_RIGHTS, "exit"),
		asm.LoadMem(asm.R2, asm.RFP, argsOff, asm.DWord),
		asm.JLT.Imm(asm.R2, 20, "exit"),
		asm.Sub.Imm(asm.R2, 16),
		asm.RSh.Imm(asm.R2, 2),
		asm.JLE.Imm(asm.R2, maxReceived, "received"),
		asm.Mov.Imm(asm.R2, maxReceived),
		asm.Mov.Reg(asm.R9, asm.R2).WithSymbol("received"),
		asm.Sub.Imm(asm.R9, 1),
		asm.LSh.Imm(asm.R2, 2),
		asm.Mov.Reg(asm.R3, asm.R7),
		asm.Add.Imm(asm.R3, 16),
		asm.Ja.Label("read"),

		// In the parent (the child returns 0), where CLONE_PIDFD was asked:
		// the address of the pidfd into r3.
		asm.JEq.Imm(asm.R7, 0, "exit").WithSymbol("clone"),
		asm.LoadMem(asm.R1, asm.R8, o.di, asm.DWord),
		asm.And.Imm(asm.R1, unix.CLONE_PIDFD),
		asm.JEq.Imm(asm.R1, 0, "exit"),
		asm.LoadMem(asm.R3, asm.R8, o.dx, asm.DWord),
		asm.Ja.Label("one"),
		asm.JEq.Imm(asm.R7, 0, "exit").WithSymbol("clone3"),
		asm.LoadMem(asm.R3, asm.R8, o.di, asm.DWord),
	)
	insns = append(insns, readArgs()...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.RFP, argsOff, asm.DWord),
		asm.And.Imm(asm.R1, unix.CLONE_PIDFD),
		asm.JEq.Imm(asm.R1, 0, "exit"),
		asm.LoadMem(asm.R3, asm.RFP, argsOff+8, asm.DWord),
		// One descriptor at the user address in r3.
		asm.Mov.Imm(asm.R2, 4).WithSymbol("one"),
		asm.Ja.Label("read"),

		asm.LoadMem(asm.R1, asm.R8, o.si, asm.DWord).WithSymbol("fcntl"),
		asm.JEq.Imm(asm.R1, unix.F_DUPFD, "fd"),
		asm.JEq.Imm(asm.R1, unix.F_DUPFD_CLOEXEC, "fd"),
		asm.Ja.Label("exit"),

		asm.JNE.Imm(asm.R7, 0, "exit").WithSymbol("close"),
		asm.LoadMem(asm.R1, asm.R8, o.di, asm.DWord),
	)
	insns = append(insns, t.fdRecord("exit")...)
	insns = append(insns,
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord), // no time: no record
		asm.Ja.Label("exit"),

		asm.LoadMem(asm.R3, asm.R8, o.di, asm.DWord).WithSymbol("pair0"),
		asm.Ja.Label("pair"),
		asm.LoadMem(asm.R3, asm.R8, o.r10, asm.DWord).WithSymbol("pair3"),
		asm.Mov.Imm(asm.R2, 8).WithSymbol("pair"),
		asm.Mov.Imm(asm.R9, 1),
		// r2 bytes of descriptors at the user address in r3, to fdsOff;
		// the first into the key.
		asm.Mov.Reg(asm.R1, asm.RFP).WithSymbol("read"),
		asm.Add.Imm(asm.R1, fdsOff),
		asm.FnProbeReadUser.Call(),
		asm.JNE.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R1, asm.RFP, fdsOff, asm.Word),
		asm.StoreMem(asm.RFP, keyOff, asm.R1, asm.Word),
		asm.Ja.Label("record"),

		asm.StoreMem(asm.RFP, keyOff, asm.R7, asm.Word).WithSymbol("fd"),
	)
	return append(insns, t.record(t.storeFD())...)
}

// fork: the sched_process_fork tracepoint (struct task_struct *parent,
// struct task_struct *child), processes only: a new thread (pid other
// than its tgid) is not a child anyone waits for.
func (t *Tracer) fork(o offsets) asm.Instructions {
	insns := t.ifTraced(
		asm.Mov.Imm(asm.R9, 0),
		asm.LoadMem(asm.R7, asm.R6, 8, asm.DWord), // child
		asm.LoadMem(asm.R8, asm.R7, o.taskPID, asm.Word),
		asm.LoadMem(asm.R1, asm.R7, o.taskTGID, asm.Word),
		asm.JNE.Reg(asm.R8, asm.R1, "exit"),
		asm.StoreMem(asm.RFP, keyOff, asm.R8, asm.Word),
	)
	return append(insns, t.record(t.storeFork())...)
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
	// The whole array in batches (16 bytes a record: a few MiB at most),
	// this process's slot kept.
	var cursor ebpf.MapBatchCursor
	keys := make([]uint32, 4096)
	vals := make([]Record, 4096)
	for {
		n, err := t.fds.BatchLookup(&cursor, keys, vals, nil)
		for i := range n {
			if int(keys[i])/t.fdsPer == slot && vals[i].BootNs != 0 {
				fds[int(keys[i])%t.fdsPer] = vals[i]
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return nil, nil, err
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
