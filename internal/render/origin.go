package render

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/origin"
)

// Bounds of the origin report: the groups shown and each stack's frames
// (--json has them all).
const (
	originGroups = 10
	originFrames = 8
)

// Origin prints what tracing found: the open descriptors by the stack
// that opened them, the zombie children by the stack that forked them.
func Origin(w io.Writer, r *origin.Report) error {
	b := &strings.Builder{}
	traced := time.Duration(r.TracedSeconds * float64(time.Second)).Round(100 * time.Millisecond)
	fmt.Fprintf(b, "\nORIGINS (pid %d traced for %s)\n", r.PID, traced)
	opened := 0
	for _, o := range r.FDs {
		opened += o.Count
	}
	heading(b, "open descriptors opened", opened, r.FDsUntraced, "opened before tracing began (or received untraced)")
	for i, o := range r.FDs {
		if i == originGroups {
			fmt.Fprintf(b, "  … %d more groups (--json lists them)\n", len(r.FDs)-i)
			break
		}
		rate := ""
		if o.PerMinute > 0 {
			rate = fmt.Sprintf(", +%.0f/min", o.PerMinute)
		}
		example := ""
		if o.Example != "" {
			example = " (" + Printable(o.Example) + plural(o.Count, ")", ", …)")
		}
		fmt.Fprintf(b, "  %d %s%s%s, opened at\n", o.Count, GroupWhat(o.FDGroup), example, rate)
		stack(b, o.Stack, o.NotSampled)
	}
	zombies := 0
	for _, o := range r.Zombies {
		zombies += o.Count
	}
	heading(b, "zombie children forked", zombies, r.ZombiesUntraced, "forked before tracing began")
	for i, o := range r.Zombies {
		if i == originGroups {
			fmt.Fprintf(b, "  … %d more stacks (--json lists them)\n", len(r.Zombies)-i)
			break
		}
		fmt.Fprintf(b, "  %d %s%s, forked at\n", o.Count, plural(o.Count, "zombie", "zombies"), exitAges(o))
		stack(b, o.Stack, o.NotSampled)
	}
	if r.RecordsLost > 0 {
		fmt.Fprintf(b, "note: %d opened while traced were not recorded (the kernel's maps were full): they count as origin unknown\n", r.RecordsLost)
	}
	if r.CutShort > 0 {
		fmt.Fprintf(b, "note: %d %s before the thread's entry: past a function built without frame pointers a stack cannot be walked (the C library's own frames are unwound by its CFI; C: build with -fno-omit-frame-pointer; Go keeps them)\n",
			r.CutShort, plural(r.CutShort, "stack ends", "stacks end"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// heading is a section's first line: how many were traced, and how many
// have no known origin.
func heading(b *strings.Builder, what string, traced, untraced int, untracedWhat string) {
	fmt.Fprintf(b, "%s while traced: %d", what, traced)
	if untraced > 0 {
		fmt.Fprintf(b, "; %d %s: origin unknown", untraced, untracedWhat)
	}
	b.WriteString("\n")
}

// stack prints a stack's frames, innermost first, bounded, from the first
// frame of the program's own code: the Go standard library's frames above
// it (os.OpenFile, syscall.Syscall6) are counted, not shown.
func stack(b *strings.Builder, frames []origin.Frame, notSampled bool) {
	switch {
	case notSampled:
		fmt.Fprintf(b, "      (no stack: opened over the budget of %d stack walks a second, which keeps the tracer cheap)\n", origin.DefaultStacksPerSecond)
		return
	case len(frames) == 0:
		b.WriteString("      (stack not kept: the kernel's stack map was full)\n")
		return
	}
	if own := firstOwn(frames); own > 0 {
		fmt.Fprintf(b, "      (%d %s in Go's standard library)\n", own, plural(own, "frame", "frames"))
		frames = frames[own:]
	}
	for i, f := range frames {
		if i == originFrames {
			fmt.Fprintf(b, "      … %d more frames\n", len(frames)-i)
			return
		}
		arrow := "  "
		if i > 0 {
			arrow = "← "
		}
		fmt.Fprintf(b, "    %s%s\n", arrow, Printable(f.String()))
	}
}

// firstOwn is the index of a Go stack's first frame outside the standard
// library; 0 when there is none, or the stack is not Go's.
func firstOwn(frames []origin.Frame) int {
	for i, f := range frames {
		if !strings.HasSuffix(f.File, ".go") && !strings.HasSuffix(f.File, ".s") {
			return 0
		}
		if !goStd(f.Function) {
			return i
		}
	}
	return 0
}

// goStd tells whether a Go function is of the standard library: its
// package path's first element has no dot ("net/http", "internal/poll"),
// and it is not main.
func goStd(function string) bool {
	path := function
	if i := strings.LastIndex(path, "/"); i >= 0 {
		rest := path[i:]
		if j := strings.Index(rest, "."); j >= 0 {
			path = path[:i+j]
		}
	} else if j := strings.Index(path, "."); j >= 0 {
		path = path[:j]
	}
	first, _, _ := strings.Cut(path, "/")
	return path != "main" && !strings.Contains(first, ".")
}

// exitAges says when a stack's zombies exited, where the kernel told.
func exitAges(o origin.ZombieOrigin) string {
	switch {
	case o.NewestExitSeconds == nil:
		return ""
	case *o.OldestExitSeconds-*o.NewestExitSeconds < 0.5:
		return fmt.Sprintf(" (exited %s ago)", age(*o.OldestExitSeconds))
	}
	return fmt.Sprintf(" (exited %s to %s ago)", age(*o.NewestExitSeconds), age(*o.OldestExitSeconds))
}

func age(seconds float64) string {
	return time.Duration(seconds * float64(time.Second)).Round(100 * time.Millisecond).String()
}

// OriginShort is a stack in one line, from the program's own first frame:
// "main.dial pool.go:88 ← main.handle server.go:142 ← …", for a watch.
func OriginShort(frames []origin.Frame) string {
	frames = frames[firstOwn(frames):]
	const shown = 3
	var parts []string
	for i, f := range frames {
		if i == shown {
			parts = append(parts, "…")
			break
		}
		parts = append(parts, f.String())
	}
	return strings.Join(parts, " ← ")
}
