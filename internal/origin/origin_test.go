package origin_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/origin"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func TestMain(m *testing.M) { zombietest.Main(m) }

// What the leaker does: files leaked, of them reopened, children forked.
const (
	leaked   = 20
	reopened = 5
	forked   = 3
)

// buildLeaker builds testdata/leaker with go build and ldflags.
func buildLeaker(t *testing.T, ldflags string) string {
	t.Helper()
	zombietest.SkipSlow(t)
	bin := filepath.Join(t.TempDir(), "leaker")
	out, err := exec.Command("go", "build", "-ldflags="+ldflags, "-o", bin, "./testdata/leaker").CombinedOutput()
	if err != nil {
		t.Fatalf("go build testdata/leaker: %v\n%s", err, out)
	}
	return bin
}

// traceLeaker runs the leaker under the tracer until it has leaked, and
// joins what it holds with the records.
func traceLeaker(t *testing.T, bin string) *origin.Report {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin, dir, fmt.Sprint(leaked), fmt.Sprint(reopened), fmt.Sprint(forked))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
		zombietest.ReapAll()
	})
	tr := trace(t, cmd.Process.Pid)
	start := time.Now()
	fmt.Fprintln(stdin, "go")
	done := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && line != "done\n" {
			err = fmt.Errorf("leaker said %q", line)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the leaker did not finish within 30 s")
	}
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	// Its children exit on their own time: read once all are zombies.
	var p *model.Process
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if p, err = model.NewReader(fs).Process(t.Context(), cmd.Process.Pid, model.Options{FDList: true}); err != nil {
			t.Fatal(err)
		}
		if p.Zombies >= forked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leaker holds %d zombies after 30 s, want %d", p.Zombies, forked)
		}
	}
	rec, err := tr.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	sym, err := origin.NewSymbolizer("/proc", p.PID)
	if err != nil {
		t.Fatal(err)
	}
	r := origin.Join(p, rec, time.Since(start), sym.Resolve)
	open := r.FDsUntraced
	for _, o := range r.FDs {
		open += o.Count
	}
	if open != len(p.FDList) || r.FDsUntraced < 3 {
		t.Errorf("%d fds accounted for (%d untraced), the table has %d: want all, stdin, stdout and stderr among the untraced", open, r.FDsUntraced, len(p.FDList))
	}
	return r
}

// files is the file groups of a report by the leaker's function that
// opened them, and the frame of it in the first group's stack.
func files(t *testing.T, r *origin.Report) (map[string]int, map[string]origin.Frame) {
	counts, frames := map[string]int{}, map[string]origin.Frame{}
	for _, o := range r.FDs {
		if o.Kind != proc.FDFile {
			continue
		}
		f := frameIn(o.Stack, "main.")
		if f == nil || !o.Whole {
			t.Errorf("files opened at %v (whole %v): want a frame of the leaker's main package, and the stack to its goroutine's start", o.Stack, o.Whole)
			continue
		}
		counts[f.Function] += o.Count
		frames[f.Function] = *f
	}
	return counts, frames
}

// TestOriginNamesTheLeakingLines traces a Go program built as users build
// theirs, which leaks files from one function, reuses their numbers from
// another and leaves children unreaped from a third: each is named with
// the line of its call (the calls the compiler inlined there, os.Create,
// as frames of their own), and what was open before is counted apart.
func TestOriginNamesTheLeakingLines(t *testing.T) {
	r := traceLeaker(t, buildLeaker(t, ""))
	counts, frames := files(t, r)
	if want := map[string]int{"main.leakFiles": leaked - reopened, "main.reopen": reopened}; !reflect.DeepEqual(counts, want) {
		t.Errorf("files by opening function %v, want %v", counts, want)
	}
	for fn, marker := range map[string]string{"main.leakFiles": "// the leak", "main.reopen": "// the reuse"} {
		if f := frames[fn]; filepath.Base(f.File) != "main.go" || f.Line != lineOf(t, marker) || f.InInlined {
			t.Errorf("%s: at %s:%d, want main.go:%d (the line marked %q)", fn, f.File, f.Line, lineOf(t, marker), marker)
		}
	}
	if len(r.Zombies) != 1 || r.Zombies[0].Count != forked || r.Zombies[0].OldestExitSeconds == nil || r.ZombiesUntraced != 0 {
		t.Fatalf("zombies by stack %+v (%d untraced): want the %d of forkZombies, with exit ages", r.Zombies, r.ZombiesUntraced, forked)
	}
	if f := frameIn(r.Zombies[0].Stack, "main.forkZombies"); f == nil || f.Line != lineOf(t, "// the fork") {
		t.Errorf("zombies forked at %v: want main.forkZombies at the line marked // the fork", r.Zombies[0].Stack)
	}
}

// TestOriginStrippedBinary: a binary without symbols and debug info
// (-ldflags=-s -w) still names its functions (from pclntab, which Go
// keeps); a line inside a call inlined there is said to be one.
func TestOriginStrippedBinary(t *testing.T) {
	r := traceLeaker(t, buildLeaker(t, "-s -w"))
	counts, frames := files(t, r)
	if want := map[string]int{"main.leakFiles": leaked - reopened, "main.reopen": reopened}; !reflect.DeepEqual(counts, want) {
		t.Errorf("files by opening function %v, want %v", counts, want)
	}
	if f := frames["main.leakFiles"]; !f.InInlined || filepath.Base(f.File) != "file.go" {
		t.Errorf("main.leakFiles resolved to %+v: want its line marked as one of the inlined os.Create (file.go)", f)
	}
}

// trace starts tracing pid until the test ends; it skips the test where
// the kernel or the user cannot trace, saying why.
func trace(t *testing.T, pid int) *origin.Tracer {
	t.Helper()
	tr, err := origin.Trace(pid)
	if errors.Is(err, origin.ErrUnavailable) {
		t.Skipf("this kernel or this user cannot trace: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// lineOf is the line of testdata/leaker/main.go holding marker.
func lineOf(t *testing.T, marker string) int {
	t.Helper()
	data, err := os.ReadFile("testdata/leaker/main.go")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasSuffix(line, marker) {
			return i + 1
		}
	}
	t.Fatalf("no line of the leaker ends in %q", marker)
	return 0
}

func frameIn(stack []origin.Frame, function string) *origin.Frame {
	for i := range stack {
		if strings.Contains(stack[i].Function, function) {
			return &stack[i]
		}
	}
	return nil
}

// TestSymbolizerNamesGoFunctions: an address inside a function of this
// binary resolves to it, with its file; one in no mapping ends the stack.
func TestSymbolizerNamesGoFunctions(t *testing.T) {
	sym, err := origin.NewSymbolizer("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	pc := uint64(reflect.ValueOf(lineOf).Pointer())
	frames := sym.Resolve([]uint64{pc + 4, 8}) // the second: a page no process maps
	if len(frames) != 1 {
		t.Fatalf("resolved %v: want one frame, the stack ending at the unmapped address", frames)
	}
	f := frames[0]
	if !strings.HasSuffix(f.Function, "origin_test.lineOf") || filepath.Base(f.File) != "origin_test.go" || f.Line == 0 || f.FuncOff != 4 {
		t.Errorf("resolved %+v: want origin_test.lineOf+4 in origin_test.go", f)
	}
}

// TestSymbolizerNamesCFunctions: a C program's descriptor, opened in the
// C library, resolves to a function of libc by its symbol table (python3
// opens the file; its frames are the C library's and the interpreter's).
func TestSymbolizerNamesCFunctions(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	cmd := exec.Command(python, "-c", "import sys; sys.stdin.readline(); f = open('/etc/hostname'); print('done', flush=True); sys.stdin.readline()")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	tr := trace(t, cmd.Process.Pid)
	fmt.Fprintln(stdin)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "done\n" {
		t.Fatalf("python said %q: %v", line, err)
	}
	fds, _, err := tr.Records()
	if err != nil {
		t.Fatal(err)
	}
	sym, err := origin.NewSymbolizer("/proc", cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, rec := range fds {
		frames := sym.Resolve(tr.Stack(rec.StackID))
		if len(frames) > 0 && strings.Contains(frames[0].Module, "libc") && frames[0].Function != "" {
			named++
		}
	}
	if named == 0 {
		t.Errorf("none of %d descriptors python3 opened has its innermost frame named in libc", len(fds))
	}
}
