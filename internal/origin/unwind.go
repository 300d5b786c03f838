package origin

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/frame"
)

// The kernel walks user stacks by frame pointers, and most C libraries
// are built without them: a descriptor opened through open(3) showed the
// C library's wrapper and nothing else. Every wrapper makes a system
// call, and the library's .eh_frame (kept for exceptions and never
// stripped) says where, at the instruction after it, the return address
// into the caller is, where the caller's rbp is, and what the caller's sp
// is: offsets from sp. When the tracer starts following a process it
// computes those rules at its system call sites and at the return
// addresses of the calls towards them (fork calls _Fork), and at each
// stack it walks the BPF program applies them frame after frame while
// there is one, then follows the frame pointers from the rbp they give.

// unwindRule is, at a system call's return address, where the return
// address into the caller is, and whether rbp still holds the caller's
// frame pointer.
type unwindRule struct {
	RA      uint32 // the caller's return address is at sp+RA
	RBPSame uint32 // 1: the function did not touch rbp
	RBPAt   uint32 // else the caller's rbp is saved at sp+RBPAt
	CFA     uint32 // the caller's sp is sp+CFA
}

// maxCFIFrames bounds the frames unwound by rules, one after another,
// before the frame-pointer chain takes over: a system call wrapper and
// the C library's functions above it (fork calls _Fork).
const maxCFIFrames = 6

// maxCallDepth bounds how far up the C library's own calls the rules go
// from a function that makes a system call.
const maxCallDepth = 4

// unwinder is what unwinding one process needs: its system call sites
// with their rules, and its C modules' frame tables, which tell where a
// frame-pointer chain can be trusted.
type unwinder struct {
	sites map[uint64]unwindRule
	mods  []unwindMod
}

// unwindMod is one executable mapping of a binary with an .eh_frame.
type unwindMod struct {
	mapping
	loads []elf.ProgHeader
	fdes  frame.FrameDescriptionEntries // nil: none (Go's code keeps frame pointers)
}

// cfi is what one binary's .eh_frame gives: its rules at its system call
// sites, by file offset, and its frame table.
type cfi struct {
	rules map[uint64]unwindRule
	loads []elf.ProgHeader
	fdes  frame.FrameDescriptionEntries
}

// unwindKey is the unwind map's key: a followed process and an address.
type unwindKey struct {
	TGID, _ uint32
	IP      uint64
}

// maxSites bounds the rules the tracer knows, for all the processes it
// follows (Debian's C library has ~4,700: ~550 system call sites and the
// calls towards them).
const maxSites = 1 << 16

// Bounds on what one binary (the traced process's: it may be made to
// waste our time) costs: the code read to find its system calls, its
// .eh_frame, and the places whose CFI is run (the C library has ~550
// system call sites; bytes 0f 05 inside other instructions count too).
const (
	maxText       = 64 << 20
	maxEHFrame    = 16 << 20
	maxCandidates = 1 << 13
)

// syscallSites are the rules at the return addresses of the system call
// instructions in pid's mapped C binaries and libraries (those with an
// .eh_frame; Go's own code keeps frame pointers and needs none), by
// address in pid.
func syscallSites(procRoot string, pid int) (*unwinder, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byPath := map[string]cfi{}
	u := &unwinder{sites: map[uint64]unwindRule{}}
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	for n := 0; sc.Scan() && n < maxMaps; n++ {
		m, ok := parseMapping(sc.Text())
		if !ok || !m.exec || !strings.HasPrefix(m.path, "/") {
			continue
		}
		c, ok := byPath[m.path]
		if !ok {
			c = fileSites(procRoot, pid, m)
			byPath[m.path] = c
		}
		u.mods = append(u.mods, unwindMod{mapping: m, loads: c.loads, fdes: c.fdes})
		for off, r := range c.rules {
			if off >= m.offset && off-m.offset < m.end-m.start && len(u.sites) < maxSites {
				u.sites[m.start+off-m.offset] = r
			}
		}
	}
	return u, sc.Err()
}

// trusted is how many of the frames of a stack unwind walked can be
// trusted: frame 0 (the system call's return address) and those unwound
// by a rule (the frame before has one), as the BPF program did; then each
// one from the frame-pointer chain only if the function of the one before
// keeps a frame pointer there (its CFA is rbp-based), as C code built
// without them does not.
func (u *unwinder) trusted(frames []uint64) int {
	n := min(len(frames), 1)
	for steps := 0; n < len(frames) && steps < maxCFIFrames; steps++ {
		if _, ok := u.sites[frames[n-1]]; !ok {
			break
		}
		n++ // unwound by the rule at the frame before
	}
	for n < len(frames) && u.keepsFP(frames[n-1]-1) {
		n++
	}
	return n
}

// keepsFP tells whether the function at pc has rbp as its frame pointer
// there. Code of a binary without an .eh_frame (Go's, which keeps frame
// pointers) does; code of no mapping, or where no rule says, does not.
func (u *unwinder) keepsFP(pc uint64) bool {
	for _, m := range u.mods {
		if pc < m.start || pc >= m.end {
			continue
		}
		if m.fdes == nil {
			return true
		}
		fileOff := pc - m.start + m.offset
		for _, p := range m.loads {
			if fileOff >= p.Off && fileOff < p.Off+p.Filesz {
				ctx, err := establish(m.fdes, fileOff-p.Off+p.Vaddr)
				return err == nil && ctx.CFA.Rule == frame.RuleCFA && ctx.CFA.Reg == dwarfRBP
			}
		}
		return false
	}
	return false
}

// establish is the CFI's row at pc.
func establish(fdes frame.FrameDescriptionEntries, pc uint64) (ctx *frame.FrameContext, err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("malformed CFI at %#x", pc)
		}
	}()
	fde, err := fdes.FDEForPC(pc)
	if err != nil {
		return nil, err
	}
	return fde.EstablishFrame(pc)
}

// fileSites reads the binary of one mapping: its system call sites and
// their rules, by file offset, and its frame table; none when it cannot
// be read or needs none.
func fileSites(procRoot string, pid int, m mapping) (c cfi) {
	// The file is the traced process's: a malformed one is skipped.
	defer func() {
		if recover() != nil {
			c = cfi{}
		}
	}()
	f, err := openELF(filepath.Join(procRoot, strconv.Itoa(pid), "map_files", fmt.Sprintf("%x-%x", m.start, m.end)))
	if err != nil {
		if f, err = openELF(filepath.Join(procRoot, strconv.Itoa(pid), "root", strings.TrimSuffix(m.path, " (deleted)"))); err != nil {
			return cfi{}
		}
	}
	defer f.Close()
	eh := f.Section(".eh_frame")
	if eh == nil || f.Section(".gopclntab") != nil || f.Machine != elf.EM_X86_64 || eh.Size > maxEHFrame {
		return cfi{}
	}
	data, err := eh.Data()
	if err != nil {
		return cfi{}
	}
	fdes, err := parseEHFrame(data, eh.Addr)
	if err != nil {
		return cfi{}
	}
	c = cfi{rules: map[uint64]unwindRule{}, fdes: fdes}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			c.loads = append(c.loads, p.ProgHeader)
		}
	}
	// The system call sites, and the direct calls (e8 rel32): the
	// functions that make system calls, then those that call them, up
	// to maxCallDepth, get rules at their call's return address.
	type call struct{ ret, target uint64 }
	var calls []call
	callers := map[uint64]bool{} // entries of functions whose calls get rules
	candidates := 0
	add := func(p *elf.Prog, vaddr, at uint64) bool {
		if candidates++; candidates > maxCandidates {
			return false
		}
		if r, ok := ruleAt(c.fdes, at); ok {
			c.rules[vaddr-p.Vaddr+p.Off] = r
			if fde, err := c.fdes.FDEForPC(at); err == nil {
				callers[fde.Begin()] = true
			}
		}
		return true
	}
	progs := map[uint64]*elf.Prog{}
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 || p.Filesz > maxText {
			continue
		}
		text := make([]byte, p.Filesz)
		if _, err := p.ReadAt(text, 0); err != nil {
			continue
		}
		for i := 0; i+1 < len(text); i++ {
			switch {
			case text[i] == 0x0f && text[i+1] == 0x05: // syscall
				if ret := p.Vaddr + uint64(i) + 2; !add(p, ret, ret) {
					return c
				}
			case text[i] == 0xe8 && i+5 <= len(text) && len(calls) < maxCandidates*8:
				ret := p.Vaddr + uint64(i) + 5
				calls = append(calls, call{ret, uint64(int64(ret) + int64(int32(binary.LittleEndian.Uint32(text[i+1:]))))})
				progs[ret] = p
			}
		}
	}
	// The row just before the return address is the call's own: a call
	// that ends a function (to one that does not return) is still in it.
	for range maxCallDepth {
		found := map[uint64]bool{}
		for _, cl := range calls {
			if callers[cl.target] && !found[cl.ret] {
				if _, done := c.rules[cl.ret-progs[cl.ret].Vaddr+progs[cl.ret].Off]; !done {
					found[cl.ret] = true
				}
			}
		}
		if len(found) == 0 {
			break
		}
		callers = map[uint64]bool{}
		for ret := range found {
			if !add(progs[ret], ret, ret-1) {
				return c
			}
		}
	}
	return c
}

// parseEHFrame parses an .eh_frame mapped at addr: its FDEs, sorted for
// FDEForPC. A malformed one is an error, never a panic.
func parseEHFrame(data []byte, addr uint64) (fdes frame.FrameDescriptionEntries, err error) {
	defer func() {
		if r := recover(); r != nil {
			fdes, err = nil, fmt.Errorf("malformed .eh_frame: %v", r)
		}
	}()
	fdes, err = frame.Parse(data, binary.LittleEndian, 0, 8, addr)
	if err != nil {
		return nil, err
	}
	return frame.FrameDescriptionEntries(nil).Append(fdes), nil
}

// DWARF's numbers of x86-64's registers.
const (
	dwarfRBP = 6
	dwarfRSP = 7
)

// ruleAt is the rule at pc from the CFI: only a frame whose CFA is sp
// plus a constant, with the return address saved at an offset from it.
// Bytes 0f 05 inside another instruction make a pc no system call
// returns to: its rule is never looked up.
func ruleAt(fdes frame.FrameDescriptionEntries, pc uint64) (unwindRule, bool) {
	ctx, err := establish(fdes, pc)
	if err != nil || ctx.CFA.Rule != frame.RuleCFA || ctx.CFA.Reg != dwarfRSP {
		return unwindRule{}, false
	}
	ra, ok := ctx.Regs[ctx.RetAddrReg]
	if !ok || ra.Rule != frame.RuleOffset {
		return unwindRule{}, false
	}
	at := ctx.CFA.Offset + ra.Offset
	if at < 0 || at > 1<<16 {
		return unwindRule{}, false
	}
	if ctx.CFA.Offset < 8 || ctx.CFA.Offset > 1<<16 {
		return unwindRule{}, false
	}
	r := unwindRule{RA: uint32(at), CFA: uint32(ctx.CFA.Offset)}
	switch rbp, ok := ctx.Regs[dwarfRBP]; {
	case !ok || rbp.Rule == frame.RuleSameVal:
		r.RBPSame = 1
	case rbp.Rule == frame.RuleOffset && ctx.CFA.Offset+rbp.Offset >= 0 && ctx.CFA.Offset+rbp.Offset <= 1<<16:
		r.RBPAt = uint32(ctx.CFA.Offset + rbp.Offset)
	default:
		return unwindRule{}, false // the caller's rbp is lost
	}
	return r, true
}
