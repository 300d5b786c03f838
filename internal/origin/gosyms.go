package origin

import (
	"debug/dwarf"
)

// goFrames resolves an address of a Go binary: the function and line
// from its pclntab, and, where the debug info is there, the calls the
// compiler inlined at that address as frames of their own (pclntab alone
// names the outer function with the line of the innermost inlined one:
// "leakFiles file.go:400" for os.Create inlined into leakFiles). Without
// debug info a line from another file than the function's is marked as
// inlined code rather than passed off as the function's own.
func (m *module) goFrames(addr uint64, base Frame) []Frame {
	file, line, fn := m.gotab.PCToLine(addr)
	if fn == nil {
		return []Frame{base}
	}
	outer := base
	outer.Function, outer.FuncOff = fn.Name, addr-fn.Entry
	if chain := m.inlined(addr); len(chain) > 0 {
		// Innermost first: the inlined function at the address's line,
		// then each caller at the line that called it.
		frames := make([]Frame, 0, len(chain)+1)
		for i := len(chain) - 1; i >= 0; i-- {
			f := base
			f.Function, f.File, f.Line = chain[i].name, file, line
			frames = append(frames, f)
			file, line = chain[i].callFile, chain[i].callLine
		}
		outer.File, outer.Line = file, line
		return append(frames, outer)
	}
	outer.File, outer.Line = file, line
	if entryFile, _, _ := m.gotab.PCToLine(fn.Entry); entryFile != file && m.dw == nil {
		outer.InInlined = true
	}
	return []Frame{outer}
}

// inlinedCall is one call the compiler inlined: the function inlined and
// where it was called from.
type inlinedCall struct {
	name     string
	callFile string
	callLine int
}

// inlined lists the inlined calls whose code holds addr, outermost
// first, from the DWARF tree of the compile unit holding it.
func (m *module) inlined(addr uint64) []inlinedCall {
	if m.dw == nil {
		return nil
	}
	r := m.dw.Reader()
	cu, err := r.SeekPC(addr)
	if err != nil || cu == nil {
		return nil
	}
	var files []*dwarf.LineFile
	if lr, err := m.dw.LineReader(cu); err == nil && lr != nil {
		files = lr.Files()
	}
	var chain []inlinedCall
	for {
		e, err := r.Next()
		if err != nil || e == nil || e.Tag == dwarf.TagCompileUnit {
			return chain
		}
		switch e.Tag {
		case 0: // the end of a scope's children
			continue
		case dwarf.TagSubprogram, dwarf.TagLexDwarfBlock, dwarf.TagInlinedSubroutine:
			if !m.holds(e, addr) {
				if e.Children {
					r.SkipChildren()
				}
				continue
			}
			if e.Tag == dwarf.TagInlinedSubroutine {
				chain = append(chain, m.call(e, files))
			}
		default:
			if e.Children {
				r.SkipChildren()
			}
		}
	}
}

// holds tells whether an entry's code ranges hold addr.
func (m *module) holds(e *dwarf.Entry, addr uint64) bool {
	ranges, err := m.dw.Ranges(e)
	if err != nil {
		return false
	}
	for _, rg := range ranges {
		if addr >= rg[0] && addr < rg[1] {
			return true
		}
	}
	return false
}

// call reads an inlined call: the name of the function inlined (its
// abstract origin's) and the call's file and line.
func (m *module) call(e *dwarf.Entry, files []*dwarf.LineFile) inlinedCall {
	var c inlinedCall
	if off, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
		r := m.dw.Reader()
		r.Seek(off)
		if origin, err := r.Next(); err == nil && origin != nil {
			c.name, _ = origin.Val(dwarf.AttrName).(string)
		}
	}
	if i, ok := e.Val(dwarf.AttrCallFile).(int64); ok && i >= 0 && int(i) < len(files) && files[i] != nil {
		c.callFile = files[i].Name
	}
	if l, ok := e.Val(dwarf.AttrCallLine).(int64); ok {
		c.callLine = int(l)
	}
	return c
}
