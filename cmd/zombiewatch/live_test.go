package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// TestLiveAgreesWithPS holds zombiewatch's JSON and --zombies beside ps
// and ls on a real parent with zombies on several threads.
func TestLiveAgreesWithPS(t *testing.T) {
	zombietest.SkipSlow(t)
	if _, err := exec.LookPath("ps"); err != nil {
		t.Skip("ps (procps) not installed: .ci/run installs it")
	}
	h := zombietest.Start(t, zombietest.Spec{Children: 12, Threads: 2, ExitCode: 3, Pipes: 2, SocketPairs: 1})
	pid := strconv.Itoa(h.PID)

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"--pid", pid, "--json"}, nil, &out, &errOut); err != nil {
		t.Fatalf("zombiewatch --pid %s --json: %v %s", pid, err, errOut.String())
	}
	var got struct {
		Zombies    int            `json:"zombies"`
		FDs        int            `json:"fds"`
		FDTypes    map[string]int `json:"fd_types"`
		ZombieList []struct {
			PID      int `json:"pid"`
			ExitCode int `json:"exit_code"`
		} `json:"zombie_list"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}

	// ps auxw shows each as "[name] <defunct>"; ps --ppid gives their pids.
	psOut, err := exec.Command("ps", "-o", "pid=,stat=,args=", "--ppid", pid).Output()
	if err != nil {
		t.Fatal(err)
	}
	var psZombies []int
	for line := range strings.Lines(string(psOut)) {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(f[1], "Z") && strings.HasSuffix(line, "<defunct>\n") {
			n, _ := strconv.Atoi(f[0])
			psZombies = append(psZombies, n)
		}
	}
	var ours []int
	for _, z := range got.ZombieList {
		ours = append(ours, z.PID)
		if z.ExitCode != 3 {
			t.Errorf("zombie %d exit code %d, want 3", z.PID, z.ExitCode)
		}
	}
	slices.Sort(ours)
	slices.Sort(psZombies)
	if got.Zombies != 12 || !slices.Equal(ours, psZombies) {
		t.Errorf("zombies %d %v; ps shows %v", got.Zombies, ours, psZombies)
	}

	fds, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
	if err != nil {
		t.Fatal(err)
	}
	if got.FDs != len(fds) || got.FDTypes["socket"] != 2 {
		t.Errorf("fds %d (sockets %d); ls /proc/%s/fd lists %d, the helper holds 2 sockets", got.FDs, got.FDTypes["socket"], pid, len(fds))
	}

	out.Reset()
	if err := run(context.Background(), []string{"--pid", pid, "--zombies"}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), "<defunct>\n"); lines != 12 {
		t.Errorf("--zombies listed %d <defunct> lines, want 12:\n%s", lines, out.String())
	}
}

// closeWaitScript holds a listener and one accepted connection whose peer
// has closed (CLOSE_WAIT), then sleeps.
const closeWaitScript = `
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8)
c = socket.create_connection(l.getsockname()); a, _ = l.accept(); c.close()
print("ready", flush=True); time.sleep(120)
`

// TestRefusedReadsAreNotZero plays root without CAP_SYS_PTRACE reading a
// process of another uid: the fd directory lists, every readlink is refused.
// The kinds and TCP states must be null, the refusal named with its fix,
// and the exit code 1 — never "CLOSE_WAIT 0" and exit 0.
func TestRefusedReadsAreNotZero(t *testing.T) {
	victim := zombietest.Nobody(t, closeWaitScript)
	pid := strconv.Itoa(victim.Process.Pid)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := zombietest.NoPtrace(t, self, "--pid", pid, "--json")
	cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("zombiewatch --pid %s without CAP_SYS_PTRACE: %v, want exit 1; stderr %s", pid, err, stderr.String())
	}
	var got struct {
		FDs       *int           `json:"fds"`
		FDTypes   map[string]int `json:"fd_types"`
		TCPStates map[string]int `json:"tcp_states"`
		Denied    []string       `json:"denied"`
		Diagnosis string         `json:"diagnosis"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if got.FDTypes != nil || got.TCPStates != nil {
		t.Errorf("refused readlinks read as kinds %v and TCP states %v; want both null", got.FDTypes, got.TCPStates)
	}
	if len(got.Denied) == 0 || !strings.Contains(got.Denied[0], "CAP_SYS_PTRACE") || got.FDs == nil {
		t.Errorf("denied %q, fds %v: want the refusal named with its fix, and the fd count (stat of the directory) kept", got.Denied, got.FDs)
	}
	if strings.Contains(got.Diagnosis, "CLOSE_WAIT") {
		t.Errorf("diagnosis %q speaks of CLOSE_WAIT it could not read", got.Diagnosis)
	}
	if !strings.Contains(stderr.String(), "permission denied") {
		t.Errorf("stderr %q: want the refused read named", stderr.String())
	}

	if !strings.Contains(got.Denied[0], "it runs as uid ") {
		t.Errorf("denied %q: want the true reason, the other uid", got.Denied[0])
	}

	// Host-wide, every count was read and only detail was refused: the
	// reading is usable, so it exits 0, naming the refusal on stderr and
	// in the JSON; --strict makes it exit 1.
	host := zombietest.NoPtrace(t, self, "--top", "0", "--json")
	host.Env = cmd.Env
	stdout.Reset()
	stderr.Reset()
	host.Stdout, host.Stderr = &stdout, &stderr
	if err := host.Run(); err != nil {
		t.Errorf("host-wide without CAP_SYS_PTRACE: %v, want exit 0; stderr %s", err, stderr.String())
	}
	var hostGot struct {
		Denied []string `json:"denied"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &hostGot); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if !slices.ContainsFunc(hostGot.Denied, func(d string) bool { return strings.Contains(d, "/proc/"+pid+"/fd") }) ||
		!strings.Contains(stderr.String(), "every count was read") {
		t.Errorf("host-wide: denied %q, stderr %q; want pid %s's refusal listed and named on stderr", hostGot.Denied, stderr.String(), pid)
	}
	strict := zombietest.NoPtrace(t, self, "--top", "0", "--json", "--strict")
	strict.Env = cmd.Env
	stderr.Reset()
	strict.Stderr = &stderr
	err = strict.Run()
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "(--strict)") {
		t.Errorf("host-wide --strict without CAP_SYS_PTRACE: %v, stderr %q; want exit 1 naming the refusal", err, stderr.String())
	}
}

// TestRefusalNamesTheCapability: root without CAP_SYS_PTRACE reading a
// root process that holds it is refused because the target holds a
// capability the reader lacks (the kernel's cap_issubset check), not
// because of its uid: the refusal must say so, and name the capability.
func TestRefusalNamesTheCapability(t *testing.T) {
	victim := zombietest.Python(t, `import time; print("ready", flush=True); time.sleep(120)`)
	pid := strconv.Itoa(victim.Process.Pid)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := zombietest.NoPtrace(t, self, "--pid", pid, "--json")
	cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("zombiewatch --pid %s without CAP_SYS_PTRACE: %v, want exit 1; stderr %s", pid, err, stderr.String())
	}
	want := "it holds capabilities this process lacks (cap_sys_ptrace): run with CAP_SYS_PTRACE"
	if !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "uid") {
		t.Errorf("stderr %q: want %q and no word of uids (both are root)", stderr.String(), want)
	}
}

// TestFDCountAgreesWithLs: 8 threads blocked in accept reserve 8
// descriptor slots that stat of the fd directory counts and ls does not.
// With the kinds read (the directory listed) fds is what ls lists, and
// the reserved slots are shown apart.
func TestFDCountAgreesWithLs(t *testing.T) {
	cmd := zombietest.Python(t, `
import socket, threading, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8)
for i in range(8): threading.Thread(target=l.accept, daemon=True).start()
time.sleep(0.3); print("ready", flush=True); time.sleep(120)
`)
	pid := strconv.Itoa(cmd.Process.Pid)
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--pid", pid, "--json"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got struct {
		FDs      int `json:"fds"`
		Reserved int `json:"fd_slots_reserved"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
	if err != nil {
		t.Fatal(err)
	}
	if got.FDs != len(entries) || got.Reserved != 8 {
		t.Errorf("fds %d, reserved %d; ls /proc/%s/fd lists %d, and 8 threads wait in accept", got.FDs, got.Reserved, pid, len(entries))
	}
}

// TestResetConnectionsAreCounted: connections whose peer reset them leave
// /proc/net/tcp while the server keeps their fds. They count as CLOSE (as
// lsof names them, from the socket's protocol attribute), and the
// diagnosis counts every connection copy the process keeps.
func TestResetConnectionsAreCounted(t *testing.T) {
	cmd := zombietest.Python(t, `
import socket, struct, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(16)
keep = []
for i in range(8):
    c = socket.create_connection(l.getsockname()); a, _ = l.accept(); keep.append(a)
    if i < 5:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
keep.append(socket.socket())  # never connected: in no table either, and no connection the peer ended
time.sleep(0.2); print("ready", flush=True); time.sleep(120)
`)
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--pid", strconv.Itoa(cmd.Process.Pid), "--json"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// The fd list names it too.
		var fds bytes.Buffer
		if err := run(context.Background(), []string{"--pid", strconv.Itoa(cmd.Process.Pid), "--fds"}, nil, &fds, io.Discard); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(fds.String(), "UNCONNECTED"); n < 1 {
			t.Errorf("--fds names no UNCONNECTED socket:\n%s", fds.String())
		}
	}()
	var got struct {
		TCPStates map[string]int `json:"tcp_states"`
		Diagnosis string         `json:"diagnosis"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.TCPStates["CLOSE"] != 5 || got.TCPStates["CLOSE_WAIT"] != 3 || got.TCPStates["LISTEN"] != 1 || got.TCPStates["UNCONNECTED"] != 1 {
		t.Errorf("tcp_states %v; want CLOSE 5 (reset), CLOSE_WAIT 3, LISTEN 1, UNCONNECTED 1", got.TCPStates)
	}
	if !strings.Contains(got.Diagnosis, "8 of its 10 sockets are connections the peer ended") || !strings.Contains(got.Diagnosis, "(3 in CLOSE_WAIT, 5 reset)") {
		t.Errorf("diagnosis %q: want all 8 kept connections counted", got.Diagnosis)
	}
}

// TestNearOwnNprocLimit runs zombiewatch as a free uid with a few task
// slots to spare under RLIMIT_NPROC (the situation it diagnoses): it must
// read, or refuse in one line, and never die with a runtime trace.
func TestNearOwnNprocLimit(t *testing.T) {
	zombietest.SkipSlow(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as uid 65534")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skipf("prlimit not found: %v", err)
	}
	h := zombietest.Start(t, zombietest.Spec{Children: 3})
	bin := zombietest.SelfCopy(t)
	for i := range 5 {
		uid := strconv.Itoa(zombietest.FreeUID(t)) // alone under its uid: RLIMIT_NPROC counts only this run's tasks
		cmd := exec.Command("prlimit", "--nproc=12:12", "setpriv", "--reuid="+uid, "--regid="+uid, "--clear-groups",
			bin, "--pid", strconv.Itoa(h.PID), "--json", "--fd-types=false")
		cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if strings.Contains(stderr.String(), "goroutine ") || strings.Contains(stderr.String(), "pthread_create") {
			t.Fatalf("run %d near RLIMIT_NPROC died with a runtime trace:\n%.600s", i, stderr.String())
		}
		switch {
		case err == nil:
			if !strings.Contains(stdout.String(), `"zombies":3`) {
				t.Errorf("run %d: %s; want the helper's 3 zombies", i, stdout.String())
			}
		case strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "RLIMIT_NPROC"):
			t.Errorf("run %d: %v, stderr %q; want a reading, or one line naming RLIMIT_NPROC", i, err, stderr.String())
		}
	}
}

// TestPidsCgroupLive: a parent whose zombies fill its cgroup's pids.max
// (as root, where RLIMIT_NPROC never binds): zombiewatch names the cgroup
// and its use, counts the forks already refused, and agrees with the
// cgroup's own files and with ps, in --pid and host-wide.
func TestPidsCgroupLive(t *testing.T) {
	zombietest.SkipSlow(t)
	dir, cg := zombietest.PidsCgroup(t, 10)
	cmd := exec.Command("sh", "-c", "echo $$ > "+dir+"/cgroup.procs && exec python3 -c '"+`
import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except BlockingIOError:
        break
    if pid == 0:
        os._exit(0)
    n += 1
try:
    os.fork()
except BlockingIOError:
    pass
print(n, flush=True); time.sleep(120)`+"'")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); zombietest.ReapAll() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the parent in the cgroup did not report: %v", err)
	}
	forked, _ := strconv.Atoi(strings.TrimSpace(line))
	pid := strconv.Itoa(cmd.Process.Pid)
	// Every child has exited (is a zombie) before the reading.
	for deadline := time.Now().Add(10 * time.Second); psZombieCount(t, pid) < forked && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}

	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--pid", pid, "--json", "--cgroup-root", "/sys/fs/cgroup"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Zombies int `json:"zombies"`
		Cgroup  struct {
			PidsCgroup  string `json:"pids_cgroup"`
			PidsCurrent *int   `json:"pids_current"`
			PidsMax     *int   `json:"pids_max"`
			PidsRefused *int   `json:"pids_refused"`
		} `json:"cgroup"`
		Limits []struct {
			Name string `json:"name"`
		} `json:"limits"`
		Diagnosis string `json:"diagnosis"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	events, _ := os.ReadFile(filepath.Join(dir, "pids.events"))
	current, _ := os.ReadFile(filepath.Join(dir, "pids.current"))
	c := got.Cgroup
	if c.PidsCgroup != cg || c.PidsMax == nil || *c.PidsMax != 10 || c.PidsCurrent == nil || strconv.Itoa(*c.PidsCurrent) != strings.TrimSpace(string(current)) {
		t.Errorf("cgroup %+v; the cgroup %s says pids.current %s, pids.max 10", c, cg, current)
	}
	if c.PidsRefused == nil || *c.PidsRefused < 1 || !strings.Contains(string(events), "max "+strconv.Itoa(*c.PidsRefused)) {
		t.Errorf("refused forks %v; pids.events says %q", c.PidsRefused, events)
	}
	if got.Zombies != forked || got.Zombies != psZombieCount(t, pid) {
		t.Errorf("zombies %d; the parent forked %d, ps counts %d", got.Zombies, forked, psZombieCount(t, pid))
	}
	if len(got.Limits) == 0 || got.Limits[0].Name != "pids.max" || !strings.Contains(got.Diagnosis, "10 of 10 pids") ||
		!strings.Contains(got.Diagnosis, "forks already refused") {
		t.Errorf("limits %+v, diagnosis %q: want pids.max first, its use and the refused forks", got.Limits, got.Diagnosis)
	}

	// Host-wide, the cgroup is listed with the zombies inside and its parent.
	stdout.Reset()
	// (Another uid's fd kinds may be refused here, PID 1's among them:
	// that is exit 1 with the reading printed.)
	if err := run(context.Background(), []string{"--json", "--cgroup-root", "/sys/fs/cgroup"}, nil, &stdout, io.Discard); err != nil && !strings.Contains(err.Error(), "refused") {
		t.Fatal(err)
	}
	var host struct {
		Cgroups []struct {
			Path        string `json:"path"`
			Zombies     int    `json:"zombies"`
			WorstParent int    `json:"worst_parent"`
			PidsMax     *int   `json:"pids_max"`
		} `json:"cgroups"`
		Kernel *struct {
			PIDMax int `json:"pid_max"`
		} `json:"kernel"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &host); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, h := range host.Cgroups {
		if h.Path == cg {
			found = h.Zombies == forked && strconv.Itoa(h.WorstParent) == pid && h.PidsMax != nil && *h.PidsMax == 10
		}
	}
	if !found || host.Kernel == nil || host.Kernel.PIDMax == 0 {
		t.Errorf("host-wide: cgroup %s with %d zombies under pid %s not listed right (%+v), kernel %+v", cg, forked, pid, host.Cgroups, host.Kernel)
	}
}

func psZombieCount(t *testing.T, ppid string) int {
	t.Helper()
	out, _ := exec.Command("ps", "-o", "stat=", "--ppid", ppid).Output()
	return strings.Count(string(out), "Z")
}

// TestNameAgreesWithPgrep: --name selects what pgrep selects.
func TestNameAgreesWithPgrep(t *testing.T) {
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("pgrep (procps) not installed: .ci/run installs it")
	}
	for range 3 {
		c := exec.Command("sleep", "60")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	out, err := exec.Command("pgrep", "-x", "sleep").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Other packages' tests may run sleeps of their own meanwhile: compare
	// the ones this test started, as both tools saw them.
	ours := func(pid int) bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		return len(f) > 1 && f[1] == strconv.Itoa(os.Getpid())
	}
	var want []int
	for _, f := range strings.Fields(string(out)) {
		if n, _ := strconv.Atoi(f); ours(n) {
			want = append(want, n)
		}
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--name", "^sleep$", "--json", "--fd-types=false"}, nil, &stdout, io.Discard); err != nil && !strings.Contains(err.Error(), "refused") {
		t.Fatal(err)
	}
	var got []struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	var pids []int
	for _, p := range got {
		if ours(p.PID) {
			pids = append(pids, p.PID)
		}
	}
	slices.Sort(want)
	if len(want) != 3 || !slices.Equal(pids, want) {
		t.Errorf("--name ^sleep$ read %v; pgrep -x sleep lists %v", pids, want)
	}
}

// TestFDsAgreeWithLsof: --fds lists what lsof -p lists, fd for fd (number
// and type), on a process holding files, a deleted file, pipes, TCP and
// UDP sockets (listening, CLOSE_WAIT), a unix socket and anon inodes; the
// 12 connections whose peer closed are one group.
func TestFDsAgreeWithLsof(t *testing.T) {
	if _, err := exec.LookPath("lsof"); err != nil {
		t.Skip("lsof not installed: .ci/run installs it")
	}
	cmd := zombietest.Python(t, `
import os, socket, tempfile, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(16)
keep = []
for i in range(12):
    c = socket.create_connection(l.getsockname()); a, _ = l.accept(); c.close(); keep.append(a)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
x = socket.socket(socket.AF_UNIX); x.bind("\0zwtest-fds-%d" % os.getpid())
f = tempfile.NamedTemporaryFile(delete=False); os.unlink(f.name)
g = open("/etc/hostname")
r, w = os.pipe()
e = os.eventfd(0)
print("ready", flush=True); time.sleep(60)`)
	pid := strconv.Itoa(cmd.Process.Pid)
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--pid", pid, "--fds", "--json"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got struct {
		FDList []struct {
			FD       int    `json:"fd"`
			Kind     string `json:"kind"`
			Deleted  bool   `json:"deleted"`
			Protocol string `json:"protocol"`
			TCPState string `json:"tcp_state"`
		} `json:"fd_list"`
		FDGroups []struct {
			TCPState string `json:"tcp_state"`
			Count    int    `json:"count"`
		} `json:"fd_groups"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	lsof, err := exec.Command("lsof", "-n", "-P", "-w", "-p", pid, "-F", "ft").Output()
	if err != nil {
		t.Fatal(err)
	}
	// lsof's TYPE for each numbered fd.
	want := map[int]string{}
	fd := -1
	for line := range strings.Lines(string(lsof)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "f"):
			n, err := strconv.Atoi(strings.TrimRight(line[1:], "rwu"))
			fd = -1
			if err == nil {
				fd = n
			}
		case strings.HasPrefix(line, "t") && fd >= 0:
			want[fd] = line[1:]
		}
	}
	types := map[string][]string{"socket": {"IPv4", "IPv6", "unix", "sock"}, "pipe": {"FIFO"}, "file": {"REG", "DIR"},
		"device": {"CHR"}, "anon_inode:eventfd": {"a_inode"}}
	if len(got.FDList) != len(want) {
		t.Errorf("--fds lists %d descriptors, lsof %d: %v", len(got.FDList), len(want), want)
	}
	deleted := false
	for _, e := range got.FDList {
		lt, ok := want[e.FD]
		if !ok || !slices.Contains(types[e.Kind], lt) {
			t.Errorf("fd %d: ours %s, lsof %q", e.FD, e.Kind, lt)
		}
		deleted = deleted || e.Deleted
	}
	if !deleted {
		t.Error("the deleted file is not marked deleted")
	}
	if len(got.FDGroups) == 0 || got.FDGroups[0].Count != 12 || got.FDGroups[0].TCPState != "CLOSE_WAIT" {
		t.Errorf("first group %+v; want the 12 connections in CLOSE_WAIT as one", got.FDGroups)
	}
}

// TestContainerTotalsIgnoreTop: a cgroup's ZOMBIES total counts every
// parent inside it, also one --top leaves out of the parents' list.
func TestContainerTotalsIgnoreTop(t *testing.T) {
	dir, cg := zombietest.PidsCgroup(t, 100)
	// Inside the cgroup: a parent with 3 zombies. Outside: one with 6, so
	// --top 1 lists only the outside one.
	inside := exec.Command("sh", "-c", "echo $$ > "+dir+"/cgroup.procs && exec python3 -c '"+`
import os, time
for _ in range(3):
    if os.fork() == 0:
        os._exit(0)
print("ready", flush=True); time.sleep(120)`+"'")
	out, err := inside.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := inside.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inside.Process.Kill(); inside.Wait(); zombietest.ReapAll() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("the parent in the cgroup did not report: %v", err)
	}
	outside := zombietest.Python(t, `
import os, time
for _ in range(6):
    if os.fork() == 0:
        os._exit(0)
print("ready", flush=True); time.sleep(120)`)
	for _, c := range []struct{ pid, n int }{{inside.Process.Pid, 3}, {outside.Process.Pid, 6}} {
		for deadline := time.Now().Add(20 * time.Second); psZombieCount(t, strconv.Itoa(c.pid)) < c.n; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d: fewer than %d zombies after 20s", c.pid, c.n)
			}
		}
	}
	var stdout bytes.Buffer
	// A host reading exits 1 when a read was refused (here: PID 1's fd
	// links, refused even to root): the totals are what is tested.
	if err := run(context.Background(), []string{"--top", "1", "--json"}, nil, &stdout, io.Discard); err != nil && !strings.Contains(err.Error(), "refused") {
		t.Fatal(err)
	}
	var got struct {
		Parents []struct {
			PID int `json:"pid"`
		} `json:"parents"`
		Cgroups []struct {
			Path        string `json:"path"`
			PidsCgroup  string `json:"pids_cgroup"`
			Zombies     int    `json:"zombies"`
			WorstParent int    `json:"worst_parent"`
		} `json:"cgroups"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	for _, p := range got.Parents {
		if p.PID == inside.Process.Pid {
			t.Skipf("pid %d made --top 1 (another parent on the host holds fewer zombies than it): the case does not arise", p.PID)
		}
	}
	for _, c := range got.Cgroups {
		if c.PidsCgroup == cg {
			if c.Zombies != 3 || c.WorstParent != inside.Process.Pid {
				t.Errorf("cgroup %s at --top 1: %d zombies, worst parent %d; want 3 held by %d", cg, c.Zombies, c.WorstParent, inside.Process.Pid)
			}
			return
		}
	}
	t.Errorf("cgroup %s not in the host view at --top 1: %s", cg, stdout.String())
}

// fakeServer is a process of uid 65534 that binds the bundled server's
// control name for its own pid (so it passes the peer check: it is that
// pid) and answers with reply, a JSON line.
const fakeServer = `
import json, os, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind("\0zombiewatch/server/%d/fake" % os.getpid())
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.settimeout(2)
        c.recv(4096)
        c.sendall((REPLY % {"pid": os.getpid()} + "\n").encode())
    except OSError:
        pass
    finally:
        c.close()
`

// TestFakeServerCannotWriteEscapes: whatever a fake bundled server answers
// (escapes in its reaper, address and error, negative counts), no raw
// control byte reaches the table, the JSON or ctl's output and errors;
// an invalid reply is no server at all.
func TestFakeServerCannotWriteEscapes(t *testing.T) {
	for name, reply := range map[string]string{
		"status": `'{"status": {"reaper": "\u001b]0;PWNED\u0007\u001b[2J", "close_conn": false, "hold": "0s", "pid": %(pid)d, "addr": "\u001b[31mred", "held_conns": -7, "max_children": -1}}'`,
		"error":  `'{"error": "\u001b]0;PWNED\u0007\u001b[2J"}'`,
	} {
		t.Run(name, func(t *testing.T) {
			cmd := zombietest.Nobody(t, "REPLY = r"+reply+"\n"+fakeServer)
			pid := strconv.Itoa(cmd.Process.Pid)
			for _, args := range [][]string{{"--pid", pid}, {"--pid", pid, "--json"}, {"ctl", "--pid", pid}, {"ctl", "--pid", pid, "reaper=loop"}} {
				var stdout, stderr bytes.Buffer
				err := run(context.Background(), args, nil, &stdout, &stderr)
				all := stdout.String() + stderr.String()
				if err != nil {
					all += err.Error()
				}
				if strings.ContainsAny(all, "\x1b\x07") {
					t.Errorf("zombiewatch %s: raw escape bytes reached the output: %q", strings.Join(args, " "), all)
				}
				if strings.Contains(all, "-7 connection") || strings.Contains(all, "max-children -1") {
					t.Errorf("zombiewatch %s: the fake server's numbers were believed: %q", strings.Join(args, " "), all)
				}
			}
		})
	}
}

// TestWildcardListenerGroups: 50 clients close their connections to a
// server listening on 0.0.0.0 that never closes its side: the CLOSE_WAIT
// sockets make one group (accepted on the listener, from the client's
// host), not 50 keyed by ephemeral ports.
func TestWildcardListenerGroups(t *testing.T) {
	cmd := zombietest.Python(t, `
import socket, time
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", 0)); l.listen(64)
keep = []
for i in range(50):
    c = socket.create_connection(("127.0.0.1", l.getsockname()[1])); a, _ = l.accept(); keep.append(a); c.close()
time.sleep(0.2); print("ready", flush=True); time.sleep(120)
`)
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--pid", strconv.Itoa(cmd.Process.Pid), "--fds", "--json"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var p struct {
		FDGroups []model.FDGroup `json:"fd_groups"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	var cw []model.FDGroup
	for _, g := range p.FDGroups {
		if g.TCPState == "CLOSE_WAIT" {
			cw = append(cw, g)
		}
	}
	if len(cw) != 1 || cw[0].Count != 50 || !strings.HasPrefix(cw[0].Target, "accepted on 0.0.0.0:") || cw[0].Remote != "127.0.0.1:*" {
		t.Errorf("CLOSE_WAIT groups %+v; want one of 50, accepted on 0.0.0.0:PORT from 127.0.0.1:*\n%s", cw, stdout.String())
	}
}

// TestProcRootOneAnswer: with --proc-root at a container's /proc (a pid
// namespace of its own), the host view and --pid 1 count the kernel's
// tasks against pid_max the same way: the kernel's own count, not the
// tasks the container's tree lists.
func TestProcRootOneAnswer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a pid namespace")
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("unshare: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); zombietest.ReapAll() })
	var root string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)); len(bytes.TrimSpace(kids)) > 0 {
			root = fmt.Sprintf("/proc/%s/root/proc", strings.Fields(string(kids))[0])
			// Once it has mounted its own proc, its pid 1 is sleep itself.
			if comm, err := os.ReadFile(root + "/1/comm"); err == nil && string(comm) == "sleep\n" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the namespace's /proc did not appear")
		}
	}
	var host, one bytes.Buffer
	if err := run(context.Background(), []string{"--proc-root", root, "--json"}, nil, &host, io.Discard); err != nil && !strings.Contains(err.Error(), "refused") {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"--proc-root", root, "--pid", "1", "--json"}, nil, &one, io.Discard); err != nil {
		t.Fatal(err)
	}
	var h struct {
		Processes int `json:"processes"`
		Kernel    struct {
			Pids int `json:"pids"`
		} `json:"kernel"`
	}
	var p struct {
		Kernel struct {
			Tasks int `json:"tasks"`
		} `json:"kernel"`
	}
	if err := json.Unmarshal(host.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(one.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	// The host changes between the two readings: close, not equal.
	if h.Processes > 5 || h.Kernel.Pids <= h.Processes || p.Kernel.Tasks <= h.Processes ||
		math.Abs(float64(h.Kernel.Pids-p.Kernel.Tasks)) > 0.2*float64(p.Kernel.Tasks)+20 {
		t.Errorf("container's tree: %d processes; kernel tasks %d in the host view, %d for --pid 1: want the kernel's count in both", h.Processes, h.Kernel.Pids, p.Kernel.Tasks)
	}
}

// silentServers is a process of another uid whose 20 children each bind a
// bundled server's control name for their own pid and never answer.
const silentServers = `
import os, socket, time
for i in range(20):
    if os.fork() == 0:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("\0zombiewatch/server/%d/silent" % os.getpid())
        s.listen(64)
        held = []
        while True:
            c, _ = s.accept()
            held.append(c)  # accepted, never answered
print("ready", flush=True)
time.sleep(120)
`

// TestSilentServersDoNotStallReadings: 20 processes that bind control
// names and never answer cost a reading one probe budget, not half a
// second each, and are named as the source failing for them.
func TestSilentServersDoNotStallReadings(t *testing.T) {
	zombietest.SkipSlow(t)
	hostReading := func() (time.Duration, string) {
		var stdout, stderr bytes.Buffer
		start := time.Now()
		err := run(context.Background(), []string{"--json", "--top", "0"}, nil, &stdout, &stderr)
		if err != nil && !strings.Contains(err.Error(), "refused") {
			t.Fatal(err)
		}
		return time.Since(start), stdout.String()
	}
	before, _ := hostReading()
	cmd := zombietest.Nobody(t, silentServers)
	// Wait until the 20 names are listed.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		unix, _ := os.ReadFile("/proc/net/unix")
		if strings.Count(string(unix), "/silent") >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 20 silent servers did not bind in 30s")
		}
	}
	took, _ := hostReading()
	// One after another they would cost 20 x 250 ms = 5 s more: together,
	// one budget (allow a few for a busy machine's scheduling).
	if took > before+4*250*time.Millisecond {
		t.Errorf("host reading with 20 silent control sockets took %s (%s without): the probes are not bounded together", took, before)
	}
	// --pid on one of them: the source failed for it, named; no server.
	kids, _, err := liveModelFS(t).Children(cmd.Process.Pid, nil)
	if err != nil || len(kids) == 0 {
		t.Fatalf("the silent servers: %v %v", kids, err)
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--pid", strconv.Itoa(kids[0]), "--json"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Server *struct{} `json:"server"`
		Unread []string  `json:"unread"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Server != nil || len(got.Unread) == 0 || !strings.Contains(strings.Join(got.Unread, " "), "server:") {
		t.Errorf("a silent server: server %v, unread %q; want no server and the source's failure named", got.Server, got.Unread)
	}
}

func liveModelFS(t *testing.T) *proc.FS {
	t.Helper()
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestUnixNamesCannotForgeRows: a socket whose abstract name holds
// newlines (the kernel prints it raw in /proc/net/unix) cannot break a
// process's fd list or give its TCP socket a fake UNIX path: the names
// come from sock_diag.
func TestUnixNamesCannotForgeRows(t *testing.T) {
	holder := zombietest.Python(t, `
import socket, time
u = socket.socket(socket.AF_UNIX); u.bind("\0zw-test-named-%d" % id(u)); u.listen(1)
tcp = socket.socket(); tcp.bind(("127.0.0.1", 0)); tcp.listen(1)
print("ready", flush=True); time.sleep(120)`)
	// The TCP socket's inode, to forge a row for.
	var tcpIno string
	entries, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", holder.Process.Pid))
	for _, e := range entries {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", holder.Process.Pid, e.Name()))
		if ino, ok := strings.CutPrefix(target, "socket:["); ok {
			tcpIno = strings.TrimSuffix(ino, "]") // the last socket opened: the TCP one
		}
	}
	if tcpIno == "" {
		t.Fatal("no socket among the holder's fds")
	}
	zombietest.Nobody(t, fmt.Sprintf(`
import socket, time
f = socket.socket(socket.AF_UNIX)
f.bind(b"\0x\n0000000000000000: 00000002 00000000 00010000 0001 01 %s /run/FAKE-X")
f.listen(1)
print("ready", flush=True); time.sleep(120)`, tcpIno))
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--pid", strconv.Itoa(holder.Process.Pid), "--fds", "--json"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got struct {
		FDList []model.FDEntry `json:"fd_list"`
		Unread []string        `json:"unread"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	named, tcp := false, false
	for _, e := range got.FDList {
		if strings.Contains(e.Local, "FAKE") {
			t.Errorf("fd %d reads as %s %s: a forged row", e.FD, e.Protocol, e.Local)
		}
		named = named || (e.Protocol == "UNIX" && strings.HasPrefix(e.Local, "@zw-test-named-"))
		tcp = tcp || (e.Protocol == "TCP" && e.TCPState == "LISTEN")
	}
	if !named || !tcp || len(got.Unread) > 0 {
		t.Errorf("fd list %+v (unread %q): want the named UNIX socket and the TCP listener", got.FDList, got.Unread)
	}
}

// TestPathBeyondPathMax: descriptors open on a path longer than PATH_MAX
// (their links cannot be read: ENAMETOOLONG) are counted and named, so a
// leak to such a path shows.
func TestPathBeyondPathMax(t *testing.T) {
	base, err := os.MkdirTemp("", "zwlong")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	cmd := zombietest.Python(t, fmt.Sprintf(`
import os, time
os.chdir(%q)
for i in range(25):  # 25 x 200 bytes: beyond PATH_MAX (4096)
    os.mkdir("d" * 200); os.chdir("d" * 200)
keep = [os.open("f", os.O_CREAT | os.O_RDONLY) for _ in range(30)]
print("ready", flush=True); time.sleep(120)`, base))
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--pid", strconv.Itoa(cmd.Process.Pid), "--fds", "--json"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	var got struct {
		FDs     *int            `json:"fds"`
		FDTypes map[string]int  `json:"fd_types"`
		FDList  []model.FDEntry `json:"fd_list"`
		Unread  []string        `json:"unread"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, n := range got.FDTypes {
		sum += n
	}
	unresolved := 0
	for _, e := range got.FDList {
		if e.Kind == "unresolved" {
			unresolved++
		}
	}
	if got.FDs == nil || sum != *got.FDs || len(got.FDList) != *got.FDs || unresolved < 30 || got.FDTypes["unresolved"] < 30 ||
		!strings.Contains(strings.Join(got.Unread, " "), "could not be resolved") {
		t.Errorf("30 fds beyond PATH_MAX: fds %v, kinds %v (sum %d), %d listed (%d unresolved), unread %q; want every fd counted and the unresolved named",
			got.FDs, got.FDTypes, sum, len(got.FDList), unresolved, got.Unread)
	}
}
