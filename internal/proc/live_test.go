package proc

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func TestMain(m *testing.M) {
	if os.Getenv("PROC_TEST_READ_AS") != "" {
		os.Exit(readAs())
	}
	zombietest.Main(m)
}

func liveFS(t testing.TB) *FS {
	t.Helper()
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// psZombies counts the Z-state children of ppid as ps sees them.
func psZombies(t testing.TB, ppid int) int {
	t.Helper()
	out, err := exec.Command("ps", "-o", "stat=", "--ppid", strconv.Itoa(ppid)).Output()
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && exitErr.ExitCode() == 1) { // 1: no process matched
		t.Fatalf("ps --ppid %d: %v", ppid, err)
	}
	n := 0
	for _, line := range strings.Fields(string(out)) {
		if strings.HasPrefix(line, "Z") {
			n++
		}
	}
	return n
}

// lsofTypes counts pid's numbered descriptors by lsof's TYPE column.
func lsofTypes(t testing.TB, pid int) map[string]int {
	t.Helper()
	out, err := exec.Command("lsof", "-n", "-P", "-w", "-p", strconv.Itoa(pid), "-F", "ft").Output()
	if err != nil {
		t.Fatalf("lsof -p %d: %v", pid, err)
	}
	types := map[string]int{}
	numbered := false
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "f"):
			_, err := strconv.Atoi(line[1:])
			numbered = err == nil // cwd, rtd, txt, mem are not descriptors
		case strings.HasPrefix(line, "t") && numbered:
			types[line[1:]]++
		}
	}
	return types
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed (.ci/run installs it): %v", name, err)
	}
}

func TestLiveZombiesAndFDs(t *testing.T) {
	requireTool(t, "ps")
	requireTool(t, "lsof")
	const children = 30
	h := zombietest.Start(t, zombietest.Spec{
		Children: children, Threads: 3, ExitCode: 7,
		Files: 4, Pipes: 3, SocketPairs: 5, Eventfds: 2,
	})
	fs := liveFS(t)
	s, err := fs.Snapshot(h.PID, Options{FDTypes: true})
	if err != nil {
		t.Fatal(err)
	}

	// The children really sit on more than one thread's children file.
	threadsWithChildren := 0
	tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(h.PID), "task"))
	for _, task := range tasks {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(h.PID), "task", task.Name(), "children"))
		if len(bytes.TrimSpace(b)) > 0 {
			threadsWithChildren++
		}
	}
	if threadsWithChildren < 2 {
		t.Fatalf("helper's children sit on %d thread(s); the test needs at least 2", threadsWithChildren)
	}

	if s.Zombies != children || s.Children != children || s.DescendantZombies != children {
		t.Errorf("zombies %d, children %d, descendant zombies %d; want %d of each", s.Zombies, s.Children, s.DescendantZombies, children)
	}
	if ps := psZombies(t, h.PID); s.Zombies != ps {
		t.Errorf("zombies %d, ps -o stat= --ppid says %d", s.Zombies, ps)
	}
	for _, z := range s.ZombieList {
		if z.ExitCode != 7 || z.Exit != "exit 7" || z.PPID != h.PID {
			t.Errorf("zombie %+v: want exit 7 under ppid %d", z, h.PID)
		}
		if z.AgeSeconds < 0 || z.AgeSeconds > 60 {
			t.Errorf("zombie %d age %.2fs: want between 0 and 60", z.PID, z.AgeSeconds)
		}
	}

	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(h.PID), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	if s.FDs == nil || *s.FDs != len(entries) {
		t.Errorf("fds %v, ls /proc/%d/fd lists %d", s.FDs, h.PID, len(entries))
	}
	if got := s.FDTypes[FDSocket]; got != 10 {
		t.Errorf("sockets %d, want the helper's 10", got)
	}
	// Each kind agrees with lsof's TYPE column.
	lsof := lsofTypes(t, h.PID)
	anon := 0
	for k, n := range s.FDTypes {
		if strings.HasPrefix(k, "anon_inode:") {
			anon += n
		}
	}
	for _, c := range []struct {
		kind       string
		ours, lsof int
	}{
		{"socket", s.FDTypes[FDSocket], lsof["unix"] + lsof["IPv4"] + lsof["IPv6"] + lsof["sock"]},
		{"pipe", s.FDTypes[FDPipe], lsof["FIFO"]},
		{"anon_inode", anon, lsof["a_inode"]},
		{"file", s.FDTypes[FDFile], lsof["REG"] + lsof["DIR"]},
		{"device", s.FDTypes[FDDevice], lsof["CHR"]},
	} {
		if c.ours != c.lsof {
			t.Errorf("%s fds: ours %d, lsof %d (lsof types %v, ours %v)", c.kind, c.ours, c.lsof, lsof, s.FDTypes)
		}
	}
	if s.FDTypes["anon_inode:eventfd"] < 2 {
		t.Errorf("eventfds %d, want at least the helper's 2", s.FDTypes["anon_inode:eventfd"])
	}
}

// TestLiveChildrenVanish reads a parent whose children exit and are reaped
// all the time: every read must succeed and count only real children.
func TestLiveChildrenVanish(t *testing.T) {
	cmd := exec.Command("sh", "-c", "while :; do /bin/true & /bin/true & wait; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); zombietest.ReapAll() })
	fs := liveFS(t)
	seen := 0
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		s, err := fs.Snapshot(cmd.Process.Pid, Options{FDTypes: true})
		if err != nil {
			t.Fatalf("read %d of a churning parent: %v", i, err)
		}
		if s.Children > 2 || s.Zombies > s.Children {
			t.Fatalf("read %d: %d children, %d zombies; the shell has at most 2", i, s.Children, s.Zombies)
		}
		seen += s.Children
	}
	if seen == 0 {
		t.Error("never saw a child of the churning shell: the test did not exercise the race")
	}
}

// TestLivePermissionDenied reads a root-owned process as nobody. The kernel
// gives anyone the fd count (stat of the fd directory, Linux >= 6.2) but
// not the listing: the kinds must be refused with the fix named, never
// shown as zero, and everything else still read.
func TestLivePermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a reader as nobody")
	}
	h := zombietest.Start(t, zombietest.Spec{Children: 3})
	// The reader is this test binary, copied where nobody may run it.
	bin := zombietest.SelfCopy(t)

	cmd := exec.Command(bin)
	cmd.Env = []string{"PROC_TEST_READ_AS=1", "PROC_TEST_PID=" + strconv.Itoa(h.PID)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("reader as nobody: %v, %s", err, out)
	}
	var got struct {
		Zombies int
		FDs     *int
		FDTypes map[string]int
		Denied  []string
		Err     string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("reader said %q: %v", out, err)
	}
	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(h.PID), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	if got.FDs == nil || *got.FDs != len(entries) {
		t.Errorf("fd count read as nobody %v, ls as root lists %d", got.FDs, len(entries))
	}
	if got.FDTypes != nil {
		t.Errorf("nobody read fd kinds %v of a root process; want none", got.FDTypes)
	}
	if !strings.Contains(got.Err, "permission denied") || !strings.Contains(got.Err, "CAP_SYS_PTRACE") {
		t.Errorf("error %q: want permission denied and the fix", got.Err)
	}
	if len(got.Denied) != 1 || got.Denied[0] != got.Err {
		t.Errorf("denied %q: want the one refused read, %q", got.Denied, got.Err)
	}
	if got.Zombies != 3 {
		t.Errorf("zombies read as nobody %d, want 3", got.Zombies)
	}
}

// readAs is the reader TestLivePermissionDenied runs as nobody.
func readAs() int {
	pid, _ := strconv.Atoi(os.Getenv("PROC_TEST_PID"))
	fs, err := New("/proc")
	if err != nil {
		return 2
	}
	s, err := fs.Snapshot(pid, Options{FDTypes: true})
	var perm *PermissionError
	out := map[string]any{"Err": ""}
	if err != nil {
		out["Err"] = err.Error()
	}
	if s != nil && errors.As(err, &perm) {
		out["Zombies"], out["FDs"], out["FDTypes"], out["Denied"] = s.Zombies, s.FDs, s.FDTypes, s.Denied
	}
	json.NewEncoder(os.Stdout).Encode(out)
	return 0
}

// TestLiveBootTime: the btime line read by hand agrees with procfs's
// parse of the whole /proc/stat.
func TestLiveBootTime(t *testing.T) {
	fs := liveFS(t)
	got, err := fs.bootTime()
	if err != nil {
		t.Fatal(err)
	}
	st, err := fs.fs.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(int64(st.BootTime), 0); !got.Equal(want) {
		t.Errorf("boot time %v, procfs says %v", got, want)
	}
}
