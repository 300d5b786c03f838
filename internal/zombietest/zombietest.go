// Package zombietest starts helper processes for live tests: a parent that
// holds zombie children forked from several threads and descriptors of
// several kinds, on the real /proc.
//
// The helper is the test binary itself, re-executed: a test package calls
// Main from its TestMain. Main also makes the test process a child
// subreaper and reaps what is left when the tests end, so no zombie
// outlives the run even where PID 1 does not reap.
package zombietest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/cgroup"
	"github.com/zombiewatch/zombiewatch/internal/scenario"
)

// Spec is what a helper holds.
type Spec = scenario.Spec

// Helper is a running helper process.
type Helper struct {
	PID      int
	Children []int // its zombie children's pids
	cmd      *exec.Cmd
	stdin    *os.File
}

// Main runs the helper when this process is one, otherwise the tests.
func Main(m *testing.M) { os.Exit(Wrap(m).Run()) }

// Wrap gives m's Run the helper modes and the final reaping, for a
// TestMain that hands m to another wrapper (testscript.Main).
func Wrap(m interface{ Run() int }) interface{ Run() int } { return wrapped{m} }

type wrapped struct{ m interface{ Run() int } }

func (w wrapped) Run() int {
	scenario.Child()
	if os.Getenv(scenario.EnvMode) == "parent" {
		os.Exit(parent())
	}
	// Orphans of helpers that had to be killed come here, not to PID 1.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "zombietest: PR_SET_CHILD_SUBREAPER:", err)
	}
	code := w.m.Run()
	scenario.ReapAll()
	return code
}

// Start starts a helper holding spec and waits until every child is a
// zombie. Cleanup ends it and reaps its children.
func Start(t testing.TB, spec Spec) *Helper {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(spec)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), scenario.EnvMode+"=parent", scenario.EnvSpec+"="+string(b))
	cmd.Stderr = os.Stderr
	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r, stdout, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin, cmd.Stdout = stdin, stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	stdout.Close()
	h := &Helper{PID: cmd.Process.Pid, cmd: cmd, stdin: w}
	t.Cleanup(h.stop)

	// The helper writes its children's pids once all are zombies.
	r.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(r).ReadBytes('\n')
	r.Close()
	if err != nil {
		t.Fatalf("zombietest: helper %d did not get ready: %v", h.PID, err)
	}
	if err := json.Unmarshal(line, &h.Children); err != nil {
		t.Fatalf("zombietest: helper said %q: %v", line, err)
	}
	return h
}

// stop closes the helper's stdin, so it reaps its children and exits; if it
// does not within 10 s it is killed (its orphans then come to Main).
func (h *Helper) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}

// parent is the helper run by Start.
func parent() int {
	var spec Spec
	if err := json.Unmarshal([]byte(os.Getenv(scenario.EnvSpec)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "zombietest:", err)
		return 2
	}
	return scenario.Hold(spec)
}

// Buffer is a bytes.Buffer that may be written from several goroutines, as
// a process's stderr is: for logs a test reads while they are written.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// SelfCopy copies this test binary where any uid may run it (go test's
// build directory is root's alone), for tests that run a process as
// another user; cleanup removes it.
func SelfCopy(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "zombietest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(self))
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// ReapAll reaps every child of this process that has exited.
func ReapAll() { scenario.ReapAll() }

// SkipSlow skips a slow live test (a second or more: load, timed
// windows, real servers) under go test -short, saying so: -short is the
// first run in seconds, the full suite runs them all.
func SkipSlow(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("slow live test: skipped under -short (go test ./... runs it)")
	}
}

// FreeUID is a uid no process on the host runs as and no user has: a test
// that runs something as "another user" and counts that user's processes
// (RLIMIT_NPROC) is then alone under it, whatever else the machine runs
// (nobody, 65534, often has processes of other services). The same uid
// serves as the gid.
func FreeUID(t testing.TB) int {
	t.Helper()
	used := map[int]bool{}
	if entries, err := os.ReadDir("/proc"); err == nil {
		for _, e := range entries {
			if info, err := e.Info(); err == nil && e.IsDir() {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					used[int(st.Uid)] = true
				}
			}
		}
	}
	passwd, _ := os.ReadFile("/etc/passwd")
	for line := range strings.Lines(string(passwd)) {
		if f := strings.Split(line, ":"); len(f) > 2 {
			if uid, err := strconv.Atoi(f[2]); err == nil {
				used[uid] = true
			}
		}
	}
	// A different uid per test process, so parallel packages do not meet.
	start := 61000 + os.Getpid()%3000
	for uid := start; uid < start+1000; uid++ {
		if !used[uid] {
			return uid
		}
	}
	t.Fatal("no free uid in 61000-64999")
	return 0
}

// Nobody starts /usr/bin/python3 as a free uid (FreeUID) running script, which must
// print a line once it is ready; it skips the test, saying why, where that
// cannot be done (not root, no setpriv or python3). Cleanup kills and
// reaps it.
func Nobody(t testing.TB, script string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as uid 65534")
	}
	for _, tool := range []string{"setpriv", "/usr/bin/python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: %v", tool, err)
		}
	}
	uid := strconv.Itoa(FreeUID(t))
	cmd := exec.Command("setpriv", "--reuid="+uid, "--regid="+uid, "--clear-groups", "/usr/bin/python3", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // cleanup ends what it forked too
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait(); ReapAll() })
	awaitReady(t, out, "python3 as uid "+uid)
	return cmd
}

// awaitReady waits, 20 s at most, for the first line of out: who says
// it is ready.
func awaitReady(t testing.TB, out io.Reader, who string) {
	t.Helper()
	ready := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(out).ReadString('\n')
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%s did not get ready: %v", who, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not get ready within 20s", who)
	}
}

// NoPtrace is bin run with args as root without CAP_SYS_PTRACE (dropped
// from the bounding set): a container's root with the host's pid
// namespace, which may list another uid's fd directory but not read its
// links. It skips the test where setpriv is missing or this is not root.
func NoPtrace(t testing.TB, bin string, args ...string) *exec.Cmd {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop CAP_SYS_PTRACE from root")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skipf("setpriv not found: %v", err)
	}
	return exec.Command("setpriv", append([]string{"--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", bin}, args...)...)
}

// PidsCgroup makes a cgroup of the pids controller with pids.max max
// (cgroup.MakePids); it skips the test, saying why, where root cannot make
// one. Cleanup kills whatever is left in it and removes it. It returns the
// cgroup's directory and its path within the hierarchy.
func PidsCgroup(t testing.TB, max int) (dir, path string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a pids cgroup")
	}
	m, err := cgroup.MakePids("/sys/fs/cgroup", fmt.Sprintf("zombietest-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6), max)
	if err != nil {
		t.Skipf("cannot make a pids cgroup: %v", err)
	}
	t.Cleanup(func() {
		for range 100 {
			procs, _ := os.ReadFile(filepath.Join(m.Dir, "cgroup.procs"))
			if len(bytes.TrimSpace(procs)) == 0 {
				break
			}
			for _, f := range bytes.Fields(procs) {
				if pid, err := strconv.Atoi(string(f)); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			ReapAll()
			time.Sleep(20 * time.Millisecond)
		}
		if err := m.Remove(5 * time.Second); err != nil {
			t.Errorf("zombietest: %v", err)
		}
	})
	return m.Dir, m.Path
}

// Python runs /usr/bin/python3 (not a shim that forks helpers of its own)
// with script, which prints a line once it is ready, in a process group of
// its own, and returns once that line came. Cleanup kills the group (the
// children it forked too) and reaps. It skips the test where python3
// cannot start.
func Python(t testing.TB, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("python3: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		ReapAll()
	})
	awaitReady(t, out, "python3")
	return cmd
}
