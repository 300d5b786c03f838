package origin_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

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
func traceLeaker(t *testing.T, bin string, opts origin.Options) *origin.Report {
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
	tr := trace(t, cmd.Process.Pid, opts)
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
	// Its children exit on their own time: read once all are zombies.
	p := holding(t, cmd.Process.Pid, forked)
	r := join(t, tr, p, time.Since(start))
	open := r.FDsUntraced
	for _, o := range r.FDs {
		open += o.Count
	}
	if open != len(p.FDList) || r.FDsUntraced < 3 {
		t.Errorf("%d fds accounted for (%d untraced), the table has %d: want all, stdin, stdout and stderr among the untraced", open, r.FDsUntraced, len(p.FDList))
	}
	return r
}

// byFunction is what a report names, by the leaker's innermost own
// function: counts of descriptors and zombies, and the frame.
func byFunction(t *testing.T, r *origin.Report) (map[string]int, map[string]origin.Frame) {
	t.Helper()
	counts, frames := map[string]int{}, map[string]origin.Frame{}
	add := func(what string, n int, stack []origin.Frame, whole bool) {
		f := frameIn(stack, "main.")
		if f == nil || !whole {
			t.Errorf("%s at %v (whole %v): want a frame of the leaker's main package, and the stack to its goroutine's start", what, stack, whole)
			return
		}
		counts[what+" "+f.Function] += n
		frames[what+" "+f.Function] = *f
	}
	for _, o := range r.FDs {
		switch {
		case o.Kind == proc.FDFile:
			add("file", o.Count, o.Stack, o.Whole)
		case o.Protocol == "TCP" && o.TCPState == "ESTABLISHED":
			add("tcp", o.Count, o.Stack, o.Whole)
		}
	}
	for _, o := range r.Zombies {
		add("zombie", o.Count, o.Stack, o.Whole)
	}
	return counts, frames
}

// want is what the leaker leaves, by function: openAndClose and
// forkAndReap leave nothing, so nothing may name them.
var want = map[string]int{
	"tcp main.leakConns":      leaked,
	"file main.leakFiles":     leaked - reopened,
	"file main.reopen":        reopened,
	"zombie main.forkZombies": forked,
}

// TestOriginNamesTheLeakingLines traces a Go program built as users build
// theirs, which leaks connections and files from two functions, reuses
// numbers from a third, opens and closes files from a fourth, forks
// children from two sites and reaps one's: each leak is named with the
// line of its call (the calls the compiler inlined there, os.Create, as
// frames of their own), nothing names the code that leaks nothing, and
// what was open before is counted apart.
func TestOriginNamesTheLeakingLines(t *testing.T) {
	r := traceLeaker(t, buildLeaker(t, ""), origin.Options{})
	counts, frames := byFunction(t, r)
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("origins by function %v, want %v", counts, want)
	}
	for key, marker := range map[string]string{
		"tcp main.leakConns": "// the connection leak", "file main.leakFiles": "// the file leak",
		"file main.reopen": "// the reuse", "zombie main.forkZombies": "// the fork",
	} {
		if f := frames[key]; filepath.Base(f.File) != "main.go" || f.Line != lineOf(t, marker) || f.InInlined {
			t.Errorf("%s: at %s:%d, want main.go:%d (the line marked %q)", key, f.File, f.Line, lineOf(t, marker), marker)
		}
	}
	if r.ZombiesUntraced != 0 {
		t.Errorf("%d zombies untraced, want 0: all were forked while traced", r.ZombiesUntraced)
	}
}

// TestOriginStrippedBinary: a binary without symbols and debug info
// (-ldflags=-s -w) still names its functions (from pclntab, which Go
// keeps); a line inside a call inlined there is said to be one.
func TestOriginStrippedBinary(t *testing.T) {
	r := traceLeaker(t, buildLeaker(t, "-s -w"), origin.Options{})
	counts, frames := byFunction(t, r)
	if !reflect.DeepEqual(counts, want) {
		t.Errorf("origins by function %v, want %v", counts, want)
	}
	if f := frames["file main.leakFiles"]; !f.InInlined || filepath.Base(f.File) != "file.go" {
		t.Errorf("main.leakFiles resolved to %+v: want its line marked as one of the inlined os.Create (file.go)", f)
	}
}

// TestOriginCountsWhatTheMapsCannotHold: with room for 8 descriptors,
// the rest opened while traced are counted as lost and as untraced,
// never dropped from the totals.
func TestOriginCountsWhatTheMapsCannotHold(t *testing.T) {
	r := traceLeaker(t, buildLeaker(t, ""), origin.Options{MaxFDs: 8})
	traced := 0
	for _, o := range r.FDs {
		traced += o.Count
	}
	if traced > 8 || r.RecordsLost < uint64(2*leaked-8) || r.FDsUntraced < int(r.RecordsLost)-2*leaked {
		t.Errorf("%d traced, %d untraced, %d lost: want at most 8 traced and the %d+ others lost", traced, r.FDsUntraced, r.RecordsLost, 2*leaked-8)
	}
}

// TestOriginStackBudget: over the budget of stack walks a second, a
// record keeps its time but no stack, and is counted as not sampled:
// never dropped, never given another's stack.
func TestOriginStackBudget(t *testing.T) {
	r := traceLeaker(t, buildLeaker(t, ""), origin.Options{StacksPerSecond: 10})
	sampled, notSampled := 0, 0
	for _, o := range r.FDs {
		switch {
		case o.NotSampled && len(o.Stack) == 0:
			notSampled += o.Count
		case !o.NotSampled && len(o.Stack) > 0:
			sampled += o.Count
		default:
			t.Errorf("group %+v: a stack, or not sampled, not both or neither", o)
		}
	}
	// 2×20 leaked, 3 pidfds, the runtime's few, opened within the traced
	// seconds: each second (a window may straddle the start) walks 10.
	limit := 10 * (int(r.TracedSeconds) + 2)
	if sampled > limit || sampled+notSampled < 2*leaked+forked || (sampled+notSampled > limit && notSampled == 0) {
		t.Errorf("%d sampled, %d not sampled in %.1f s: want at most %d sampled, the rest not sampled", sampled, notSampled, r.TracedSeconds, limit)
	}
}

// TestOriginCProgram: a C program built with frame pointers names its
// functions, from its symbol table, through a system call of its own:
// raw_open ← leak_raw ← main, whole. Through the C library's open() the
// walk goes on only where the C library keeps frame pointers: the stack
// either reaches leak_libc or is marked cut short, never passed off as
// whole.
func TestOriginCProgram(t *testing.T) {
	zombietest.SkipSlow(t)
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc to build the C program")
	}
	bin := filepath.Join(t.TempDir(), "cleaker")
	if out, err := exec.Command(gcc, "-O0", "-fno-omit-frame-pointer", "-o", bin, "testdata/cleaker/leaker.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "/etc/hostname", "10")
	tr := runTraced(t, cmd)
	p := holding(t, cmd.Process.Pid, 3)
	r := join(t, tr, p, time.Second)
	// fork() is the C library's, calling its _Fork, neither with a frame
	// pointer: both unwound by their CFI, then the program's frames.
	if len(r.Zombies) != 1 || r.Zombies[0].Count != 3 || !r.Zombies[0].Whole || frameIn(r.Zombies[0].Stack, "fork_zombies") == nil || frameIn(r.Zombies[0].Stack, "main") == nil {
		t.Errorf("zombies: %+v, want 3 forked at _Fork ← fork ← fork_zombies ← main, whole", r.Zombies)
	}
	var raw, libc *origin.FDOrigin
	for i, o := range r.FDs {
		if len(o.Stack) > 0 && o.Stack[0].Function == "raw_open" {
			raw = &r.FDs[i]
		} else if len(o.Stack) > 0 && strings.Contains(o.Stack[0].Module, "libc") {
			libc = &r.FDs[i]
		}
	}
	if raw == nil || raw.Count != 10 || len(raw.Stack) < 3 || raw.Stack[1].Function != "leak_raw" || raw.Stack[2].Function != "main" || !raw.Whole {
		t.Errorf("through its own system call: %+v, want 10 files opened at raw_open ← leak_raw ← main, whole", raw)
	}
	// The C library is built without frame pointers: its open() is
	// unwound by its CFI to leak_libc, then by frame pointers.
	if libc == nil || libc.Count != 10 || len(libc.Stack) < 3 || !strings.Contains(libc.Stack[0].Function, "open") || libc.Stack[1].Function != "leak_libc" || libc.Stack[2].Function != "main" || !libc.Whole {
		t.Errorf("through open(): %+v, want 10 files opened at open (libc) ← leak_libc ← main, whole", libc)
	}
}

// trace starts tracing pid until the test ends; it skips the test where
// the kernel or the user cannot trace, saying why.
func trace(t *testing.T, pid int, opts origin.Options) *origin.Tracer {
	t.Helper()
	tr, err := origin.TraceWith(pid, opts)
	if errors.Is(err, origin.ErrUnavailable) {
		t.Skipf("this kernel or this user cannot trace: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// holding reads pid with its fd list once it holds zombies zombies (its
// children exit on their own time), 30 s at most.
func holding(t *testing.T, pid, zombies int) *model.Process {
	t.Helper()
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p, err := model.NewReader(fs).Process(t.Context(), pid, model.Options{FDList: true})
		if err != nil {
			t.Fatal(err)
		}
		if p.Zombies >= zombies {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d holds %d zombies after 30 s, want %d", pid, p.Zombies, zombies)
		}
	}
}

// join joins what p holds (read after tracing) with what tr recorded.
func join(t *testing.T, tr *origin.Tracer, p *model.Process, traced time.Duration) *origin.Report {
	t.Helper()
	rec, err := tr.Recorded(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	sym, err := origin.NewSymbolizer("/proc", p.PID)
	if err != nil {
		t.Fatal(err)
	}
	return origin.Join(p, rec, traced, sym.Resolve)
}

// runTraced starts cmd and traces it, then has it do its work (a line on
// its stdin) and waits for its "done": it holds what it opened while
// traced. Cleanup ends it (stdin closed) and reaps it.
func runTraced(t *testing.T, cmd *exec.Cmd) *origin.Tracer {
	t.Helper()
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	tr := trace(t, cmd.Process.Pid, origin.Options{})
	fmt.Fprintln(stdin, "go")
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "done\n" {
		t.Fatalf("%s said %q: %v", filepath.Base(cmd.Path), line, err)
	}
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
	// A frame pointer gone astray reads a "return address" into data (the
	// heap, a stack): it ends the stack too, never shows as a frame.
	data := new([64]byte)
	if more := sym.Resolve([]uint64{pc + 4, uint64(uintptr(unsafe.Pointer(data)))}); len(more) != 1 {
		t.Errorf("resolved %v: want one frame, the stack ending at the address of data", more)
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
	python := debianPython(t)
	cmd := exec.Command(python, "-c", "import sys; sys.stdin.readline(); f = open('/etc/hostname'); print('done', flush=True); sys.stdin.readline()")
	tr := runTraced(t, cmd)
	fds, _, err := tr.Records(cmd.Process.Pid)
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

// debianPython is /usr/bin/python3, as zombietest.Python runs: the
// distribution's interpreter, not a shim on PATH that execs another.
func debianPython(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no %s: %v", python, err)
	}
	return python
}

// opener is a python3 that, each time a line n comes, makes n
// descriptors, keeps them, and says their numbers.
type opener struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// openFiles opens n copies of /etc/hostname.
const openFiles = `import os, sys
held = []
for line in sys.stdin:
    fds = [os.open('/etc/hostname', os.O_RDONLY) for _ in range(int(line))]
    held += fds
    print(' '.join(map(str, fds)), flush=True)`

// receiveFiles opens n copies of /etc/hostname, sends them to itself
// over a Unix socket, closes them and keeps those received.
const receiveFiles = `import os, socket, sys
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
held = []
for line in sys.stdin:
    n = int(line)
    if n == 0:
        print(flush=True)
        continue
    fds = [os.open('/etc/hostname', os.O_RDONLY) for _ in range(n)]
    socket.send_fds(a, [b'x'], fds)
    _, got, _, _ = socket.recv_fds(b, 16, n)
    for fd in fds:
        os.close(fd)
    held += got
    print(' '.join(map(str, got)), flush=True)`

func startOpener(t *testing.T, script string) *opener {
	t.Helper()
	cmd := exec.Command(debianPython(t), "-c", script)
	o := &opener{cmd: cmd}
	o.stdin, _ = cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	o.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.stdin.Close(); cmd.Wait() })
	o.open(t, 0) // started: what it opens from now on is ours
	return o
}

// open has the opener open n files: their numbers.
func (o *opener) open(t *testing.T, n int) []int {
	t.Helper()
	fmt.Fprintln(o.stdin, n)
	line, err := o.out.ReadString('\n')
	if err != nil {
		t.Fatalf("the opener said %q: %v", line, err)
	}
	var fds []int
	for _, f := range strings.Fields(line) {
		fd, _ := strconv.Atoi(f)
		fds = append(fds, fd)
	}
	return fds
}

// TestTracerFollowsSeveral: one tracer follows two processes and keeps
// their records apart; one unfollowed is forgotten and no longer
// recorded; a fifth process is refused, not silently untraced.
func TestTracerFollowsSeveral(t *testing.T) {
	a, b := startOpener(t, openFiles), startOpener(t, openFiles)
	tr, err := origin.New("test", origin.Options{Processes: origin.MaxFollowed})
	if errors.Is(err, origin.ErrUnavailable) {
		t.Skipf("this kernel or this user cannot trace: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, o := range []*opener{a, b} {
		if err := tr.Follow(o.cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	want := map[*opener][]int{a: a.open(t, 5), b: b.open(t, 7)}
	for o, fds := range want {
		got, _, err := tr.Records(o.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			if _, ok := got[fd]; !ok {
				t.Errorf("pid %d opened fd %d while followed: no record of it in %v", o.cmd.Process.Pid, fd, got)
			}
		}
		// Started, python3 opens nothing of its own; and no record of
		// the other process's.
		if len(got) != len(fds) {
			t.Errorf("pid %d: %d records, want the %d it opened: %v", o.cmd.Process.Pid, len(got), len(fds), got)
		}
	}
	if err := tr.Unfollow(a.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	a.open(t, 3)
	if got, _, _ := tr.Records(a.cmd.Process.Pid); len(got) != 0 {
		t.Errorf("unfollowed, pid %d still has records: %v", a.cmd.Process.Pid, got)
	}
	if got, _, _ := tr.Records(b.cmd.Process.Pid); len(got) != 7 {
		t.Errorf("unfollowing another, pid %d has %d records, want 7", b.cmd.Process.Pid, len(got))
	}
	for pid := range origin.MaxFollowed - 1 {
		if err := tr.Follow(1_000_000 + pid); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Follow(2_000_000); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("following a fifth process: %v, want a refusal", err)
	}
}

// TestOriginRecordsReceivedDescriptors: descriptors that come in an
// SCM_RIGHTS message are recorded at the stack that received them (the
// C library's recvmsg, for python3), up to eight a message, never left
// as "origin unknown".
func TestOriginRecordsReceivedDescriptors(t *testing.T) {
	o := startOpener(t, receiveFiles)
	pid := o.cmd.Process.Pid
	tr := trace(t, pid, origin.Options{})
	got := o.open(t, 3)
	more := o.open(t, 12) // the first eight of one message are recorded
	fds, _, err := tr.Records(pid)
	if err != nil {
		t.Fatal(err)
	}
	sym, err := origin.NewSymbolizer("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	for i, fd := range append(got, more[:8]...) {
		rec, ok := fds[fd]
		if !ok {
			t.Errorf("received fd %d (%d of the received): no record", fd, i)
			continue
		}
		frames := sym.Resolve(tr.Stack(rec.StackID))
		if len(frames) == 0 || !strings.Contains(frames[0].Function, "recvmsg") {
			t.Errorf("received fd %d: stack %v, want it to begin in recvmsg", fd, frames)
		}
	}
	for _, fd := range more[8:] {
		if _, ok := fds[fd]; ok {
			t.Errorf("fd %d, the %dth of one message: recorded, want the eight first only", fd, slices.Index(more, fd)+1)
		}
	}
}
