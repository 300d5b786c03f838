package origin

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// The BPF programs, written with cilium/ebpf's assembler: no C compiler
// is needed to build zombiewatch, and no object file is committed. The
// raw sys_exit program filters by process and syscall number and records
// the descriptors a call returns; the sched_process_fork program records
// the children; both walk the user stack within a budget (record, and
// unwind for C code without frame pointers).

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
