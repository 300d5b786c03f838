package origin

import (
	"debug/elf"
	"testing"
)

// libcEHFrame is the C library's .eh_frame, a seed of FuzzCFI.
func libcEHFrame(t testing.TB) ([]byte, uint64) {
	f, err := elf.Open("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Skipf("no C library to read: %v", err)
	}
	defer f.Close()
	eh := f.Section(".eh_frame")
	if eh == nil {
		t.Skip("the C library has no .eh_frame")
	}
	data, err := eh.Data()
	if err != nil {
		t.Fatal(err)
	}
	return data, eh.Addr
}

// TestRulesOfTheCLibrary: the CFI of the C library's open() gives, at the
// instruction after its system call, the caller's return address in the
// frame and rbp saved in it, as its code does (push rbp ... sub rsp).
func TestRulesOfTheCLibrary(t *testing.T) {
	data, addr := libcEHFrame(t)
	fdes, err := parseEHFrame(data, addr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, s := range syms {
		if s.Name != "__open64_nocancel" && s.Name != "socket" {
			continue
		}
		// Its first system call instruction, and the rule after it.
		for _, p := range f.Progs {
			if p.Type != elf.PT_LOAD || s.Value < p.Vaddr || s.Value >= p.Vaddr+p.Filesz {
				continue
			}
			code := make([]byte, s.Size)
			p.ReadAt(code, int64(s.Value-p.Vaddr))
			for i := 0; i+1 < len(code); i++ {
				if code[i] == 0x0f && code[i+1] == 0x05 {
					r, ok := ruleAt(fdes, s.Value+uint64(i)+2)
					if !ok || r.RA%8 != 0 || (r.RBPSame == 0 && r.RBPAt == 0) {
						t.Errorf("%s: rule %+v, %v: want the return address at an aligned offset and rbp's place", s.Name, r, ok)
					}
					found++
					break
				}
			}
		}
	}
	if found == 0 {
		t.Skip("neither __open64_nocancel nor socket has a system call instruction here")
	}
}

// FuzzCFI: whatever the .eh_frame of a binary the traced process maps
// holds, reading it ends, with rules or an error, never a panic.
func FuzzCFI(f *testing.F) {
	data, addr := libcEHFrame(f)
	f.Add(data[:min(len(data), 4096)], addr, uint64(addr+64))
	f.Add([]byte{0, 0, 0, 0}, uint64(0), uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, uint64(0x1000), uint64(0x1000))
	f.Fuzz(func(t *testing.T, data []byte, addr, pc uint64) {
		fdes, err := parseEHFrame(data, addr)
		if err != nil {
			return
		}
		ruleAt(fdes, pc)
		u := &unwinder{mods: []unwindMod{{mapping: mapping{start: 0, end: ^uint64(0), exec: true}, loads: []elf.ProgHeader{{Off: 0, Vaddr: 0, Filesz: ^uint64(0) >> 1}}, fdes: fdes}}}
		u.trusted([]uint64{pc, pc + 1, pc + 2})
	})
}
