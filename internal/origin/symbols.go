package origin

import (
	"bufio"
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Frame is one address of a user stack, resolved as far as its binary
// allows: function, file and line for Go (from the binary's own pclntab),
// function+offset for other ELF files with a symbol table (or a debug
// file installed for them), module+offset otherwise. Every string comes
// from the traced process's files: hostile input, escaped when shown.
type Frame struct {
	Address  uint64 `json:"address"`
	Module   string `json:"module,omitempty"` // the mapped file; "[anon]" for memory no file backs (JIT)
	Offset   uint64 `json:"offset"`           // in the module's file, or from the mapping's start
	Function string `json:"function,omitempty"`
	FuncOff  uint64 `json:"function_offset,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	// InInlined: the line is of a call the compiler inlined into Function,
	// which a binary without debug info (-ldflags=-w) cannot name.
	InInlined bool `json:"line_in_inlined_call,omitempty"`
}

// String is the frame as one reads it: "main.dial pool.go:88",
// "malloc+0x1a (libc.so.6)", "libfoo.so+0x1234", or the bare address.
func (f Frame) String() string {
	switch {
	case f.Function != "" && f.File != "" && f.InInlined:
		return fmt.Sprintf("%s (in a call inlined from %s:%d)", f.Function, filepath.Base(f.File), f.Line)
	case f.Function != "" && f.File != "":
		return fmt.Sprintf("%s %s:%d", f.Function, filepath.Base(f.File), f.Line)
	case f.Function != "" && f.Module != "":
		return fmt.Sprintf("%s+%#x (%s)", f.Function, f.FuncOff, filepath.Base(f.Module))
	case f.Function != "":
		return fmt.Sprintf("%s+%#x", f.Function, f.FuncOff)
	case f.Module != "":
		return fmt.Sprintf("%s+%#x", filepath.Base(f.Module), f.Offset)
	}
	return fmt.Sprintf("%#x", f.Address)
}

// roots are the functions a whole stack ends in: a stack that ends
// elsewhere was cut short (a frame without a frame pointer).
var roots = map[string]bool{
	"runtime.goexit": true, "runtime.main": true, "runtime.mstart": true, "runtime.rt0_go": true,
	"_start": true, "__libc_start_main": true, "__libc_start_call_main": true,
	"clone": true, "clone3": true, "start_thread": true, "__clone": true, "__clone3": true,
}

// Whole tells whether a stack reaches its thread's entry.
func Whole(stack []Frame) bool {
	return len(stack) > 0 && roots[stack[len(stack)-1].Function]
}

// Symbolizer resolves the addresses of one live process, reading its
// mappings once and each mapped binary once.
type Symbolizer struct {
	procRoot string
	pid      int
	maps     []mapping
	modules  map[string]*module
}

type mapping struct {
	start, end, offset uint64
	path               string
	exec               bool // code can run here: a return address can point here
}

// module is one mapped ELF file's tables: its loadable segments (file
// offset to address), and the Go line table or the sorted function
// symbols; err says why it could not be read.
type module struct {
	loads []elf.ProgHeader
	gotab *gosym.Table
	dw    *dwarf.Data // Go's debug info, for calls inlined; nil when stripped (-w)
	syms  []elf.Symbol
	err   error
}

// maxMaps bounds the mappings read: a process can make millions.
const maxMaps = 1 << 16

// NewSymbolizer reads pid's mappings under procRoot (its maps file).
func NewSymbolizer(procRoot string, pid int) (*Symbolizer, error) {
	s := &Symbolizer{procRoot: procRoot, pid: pid, modules: map[string]*module{}}
	return s, s.Refresh()
}

// Refresh reads the mappings again (a library loaded since), keeping the
// binaries already read: a watch resolves each sample's stacks with it.
func (s *Symbolizer) Refresh() error {
	f, err := os.Open(filepath.Join(s.procRoot, strconv.Itoa(s.pid), "maps"))
	if err != nil {
		return err
	}
	defer f.Close()
	s.maps = s.maps[:0]
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 64<<10)
	for sc.Scan() && len(s.maps) < maxMaps {
		// Only code: a "return address" into data (the heap, a stack)
		// is a frame pointer gone astray, and ends the stack.
		if m, ok := parseMapping(sc.Text()); ok && m.exec {
			s.maps = append(s.maps, m)
		}
	}
	return sc.Err()
}

// parseMapping reads one line of a maps file,
// "7f12-7f34 r-xp 00001000 08:01 1234   /usr/lib/libc.so.6": five fields,
// then the path, which may hold blanks, to the end of the line.
func parseMapping(line string) (mapping, bool) {
	var fields [5]string
	rest := line
	for i := range fields {
		var ok bool
		fields[i], rest, ok = strings.Cut(strings.TrimLeft(rest, " "), " ")
		if !ok && i < len(fields)-1 {
			return mapping{}, false
		}
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	off, err3 := strconv.ParseUint(fields[2], 16, 64)
	if !ok || err1 != nil || err2 != nil || err3 != nil || end <= start {
		return mapping{}, false
	}
	return mapping{start: start, end: end, offset: off, path: strings.TrimLeft(rest, " "), exec: strings.Contains(fields[1], "x")}, true
}

// Resolve turns a stack's addresses (innermost first) into frames. Every
// address but the innermost is a return address: its call is the byte
// before it. An address in no mapping is not a frame but where the
// kernel's walk went astray (a function without a frame pointer): the
// stack ends there, and Whole says it was cut short.
func (s *Symbolizer) Resolve(addrs []uint64) []Frame {
	frames := make([]Frame, 0, len(addrs))
	for i, a := range addrs {
		pc := a
		if i > 0 && pc > 0 {
			pc--
		}
		fs, mapped := s.frames(pc)
		if !mapped {
			break
		}
		for _, f := range fs {
			f.Address = a
			frames = append(frames, f)
		}
	}
	return frames
}

// frames are the functions at pc, innermost first: more than one where
// the compiler inlined calls there (as Go's debug info tells).
func (s *Symbolizer) frames(pc uint64) ([]Frame, bool) {
	i, found := slices.BinarySearchFunc(s.maps, pc, func(m mapping, pc uint64) int {
		switch {
		case m.end <= pc:
			return -1
		case m.start > pc:
			return 1
		}
		return 0
	})
	if !found {
		return nil, false
	}
	m := s.maps[i]
	if !strings.HasPrefix(m.path, "/") {
		name := m.path
		if name == "" {
			name = "[anon]"
		}
		return []Frame{{Module: name, Offset: pc - m.start}}, true
	}
	fileOff := pc - m.start + m.offset
	f := Frame{Module: m.path, Offset: fileOff}
	mod := s.module(m)
	if mod.err != nil {
		return []Frame{f}, true
	}
	addr, ok := mod.address(fileOff)
	if !ok {
		return []Frame{f}, true
	}
	if mod.gotab != nil {
		return mod.goFrames(addr, f), true
	}
	j, _ := slices.BinarySearchFunc(mod.syms, addr, func(sym elf.Symbol, a uint64) int {
		if sym.Value <= a {
			return -1
		}
		return 1
	})
	if j > 0 {
		sym := mod.syms[j-1]
		if sym.Size == 0 || addr < sym.Value+sym.Size {
			f.Function, f.FuncOff = sym.Name, addr-sym.Value
		}
	}
	return []Frame{f}, true
}

// address turns a file offset into the address the ELF file's symbols
// use, through the loadable segment that holds it.
func (m *module) address(fileOff uint64) (uint64, bool) {
	for _, p := range m.loads {
		if fileOff >= p.Off && fileOff < p.Off+p.Filesz {
			return fileOff - p.Off + p.Vaddr, true
		}
	}
	return 0, false
}

// module opens a mapping's file the way the process sees it: through
// map_files (the very file mapped, even deleted or in another mount
// namespace), else through its root.
func (s *Symbolizer) module(m mapping) *module {
	if mod, ok := s.modules[m.path]; ok {
		return mod
	}
	mod := &module{}
	s.modules[m.path] = mod
	// The file is the traced process's: a malformed ELF must not end the
	// reading.
	defer func() {
		if r := recover(); r != nil {
			*mod = module{err: fmt.Errorf("%s: unreadable ELF: %v", m.path, r)}
		}
	}()
	pid := strconv.Itoa(s.pid)
	f, err := openELF(filepath.Join(s.procRoot, pid, "map_files", fmt.Sprintf("%x-%x", m.start, m.end)))
	if err != nil {
		f, err = openELF(filepath.Join(s.procRoot, pid, "root", strings.TrimSuffix(m.path, " (deleted)")))
	}
	if err != nil {
		mod.err = err
		return mod
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			mod.loads = append(mod.loads, p.ProgHeader)
		}
	}
	if mod.gotab, err = goTable(f.File); err == nil && mod.gotab != nil {
		if f.Section(".debug_info") != nil && debugSize(f.File) <= maxTable {
			mod.dw, _ = f.DWARF()
		}
		return mod
	}
	mod.syms = functions(f.File)
	if len(mod.syms) == 0 || !hasSection(f.File, ".symtab") {
		if debug := debugFile(f.File, m.path); debug != nil {
			mod.syms = functions(debug.File)
			debug.Close()
		}
	}
	return mod
}

// maxTable bounds a Go line table read into memory.
const maxTable = 512 << 20

// goTable is a Go binary's line table, nil for other binaries.
func goTable(f *elf.File) (*gosym.Table, error) {
	sec, text := f.Section(".gopclntab"), f.Section(".text")
	if sec == nil || text == nil || sec.Size > maxTable {
		return nil, nil
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	return gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
}

// debugSize is the size of a file's DWARF sections, read whole by DWARF().
func debugSize(f *elf.File) uint64 {
	var n uint64
	for _, sec := range f.Sections {
		if strings.HasPrefix(sec.Name, ".debug_") || strings.HasPrefix(sec.Name, ".zdebug_") {
			n += sec.Size
		}
	}
	return n
}

// functions are the file's function symbols, by address.
func functions(f *elf.File) []elf.Symbol {
	var out []elf.Symbol
	for _, read := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, _ := read()
		for _, s := range syms {
			if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, b elf.Symbol) int {
		switch {
		case a.Value < b.Value:
			return -1
		case a.Value > b.Value:
			return 1
		}
		return 0
	})
	return slices.CompactFunc(out, func(a, b elf.Symbol) bool { return a.Value == b.Value })
}

func hasSection(f *elf.File, name string) bool { return f.Section(name) != nil }

// debugFile is the separate debug file installed for f, found as gdb
// finds it: by build id under /usr/lib/debug/.build-id, then by
// .gnu_debuglink beside the file and under /usr/lib/debug.
func debugFile(f *elf.File, path string) *elfFile {
	var candidates []string
	if id := buildID(f); id != "" && len(id) > 2 {
		candidates = append(candidates, filepath.Join("/usr/lib/debug/.build-id", id[:2], id[2:]+".debug"))
	}
	if sec := f.Section(".gnu_debuglink"); sec != nil {
		if data, err := sec.Data(); err == nil {
			if name, _, ok := bytes.Cut(data, []byte{0}); ok && len(name) > 0 && !bytes.ContainsRune(name, '/') {
				dir := filepath.Dir(path)
				candidates = append(candidates,
					filepath.Join(dir, ".debug", string(name)),
					filepath.Join("/usr/lib/debug", dir, string(name)))
			}
		}
	}
	for _, c := range candidates {
		if d, err := openELF(c); err == nil {
			return d
		}
	}
	return nil
}

// openELF opens an ELF file that must be a regular file: a FIFO or a
// device put where a path was (the traced process chooses its paths)
// would block a read forever.
func openELF(path string) (*elfFile, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	e, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &elfFile{e, f}, nil
}

// elfFile is an ELF file whose Close closes the file it reads.
type elfFile struct {
	*elf.File
	f *os.File
}

func (e *elfFile) Close() error { return e.f.Close() }

// buildID is the GNU build id note's value, in hex.
func buildID(f *elf.File) string {
	sec := f.Section(".note.gnu.build-id")
	if sec == nil {
		return ""
	}
	data, err := sec.Data()
	if err != nil || len(data) < 16 {
		return ""
	}
	nameSize := f.ByteOrder.Uint32(data[0:4])
	descSize := f.ByteOrder.Uint32(data[4:8])
	start := 12 + (nameSize+3)&^3
	if uint64(start)+uint64(descSize) > uint64(len(data)) {
		return ""
	}
	return hex.EncodeToString(data[start : start+descSize])
}
