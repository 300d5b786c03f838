package model_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/zombiewatch/zombiewatch/internal/fixture"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// Benchmarks: go test ./internal/model -run '^$' -bench . -benchmem
// ZW_BENCH_PID=N points the live ones at a prepared process (bench/run.sh
// builds one with 5,000 zombies and 15,000 fds); otherwise they start a
// helper with 1,000 zombies and 3,000 fds.

func TestMain(m *testing.M) {
	if os.Getenv("MODEL_TEST_READ_AS") != "" {
		os.Exit(readAs())
	}
	zombietest.Main(m)
}

func liveReader(t testing.TB) *model.Reader {
	t.Helper()
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return model.NewReader(fs, model.TCPStates(fs))
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
	s, err := liveReader(t).Process(context.Background(), h.PID, model.Options{FDTypes: true})
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
	if got := s.FDTypes[proc.FDSocket]; got != 10 {
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
		{"socket", s.FDTypes[proc.FDSocket], lsof["unix"] + lsof["IPv4"] + lsof["IPv6"] + lsof["sock"]},
		{"pipe", s.FDTypes[proc.FDPipe], lsof["FIFO"]},
		{"anon_inode", anon, lsof["a_inode"]},
		{"file", s.FDTypes[proc.FDFile], lsof["REG"] + lsof["DIR"]},
		{"device", s.FDTypes[proc.FDDevice], lsof["CHR"]},
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
	zombietest.SkipSlow(t)
	cmd := exec.Command("sh", "-c", "while :; do /bin/true & /bin/true & wait; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); zombietest.ReapAll() })
	r := liveReader(t)
	seen := 0
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		s, err := r.Process(context.Background(), cmd.Process.Pid, model.Options{FDTypes: true})
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
	cmd.Env = []string{"MODEL_TEST_READ_AS=1", "MODEL_TEST_PID=" + strconv.Itoa(h.PID)}
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
	pid, _ := strconv.Atoi(os.Getenv("MODEL_TEST_PID"))
	fs, err := proc.New("/proc")
	if err != nil {
		return 2
	}
	s, err := model.NewReader(fs, model.TCPStates(fs)).Process(context.Background(), pid, model.Options{FDTypes: true})
	var perm *model.PermissionError
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

// fixtureBoot is btime in every testdata/proc tree, so a zombie started at
// tick 500000 (5,000 s) is 5,000 s old at fixture.Now.
var fixtureBoot = fixture.Boot

var openFixture = fixture.Open

func intp(n int) *int { return &n }

func floatp(v float64) *float64 { return &v }

// unknownExits is the time evidence of a tree without sched files: none.
var unknownExits = &model.Reaping{StaleAgeSeconds: 2}

func TestProcessFixtures(t *testing.T) {
	ignore := cmpopts.IgnoreUnexported(model.Zombie{}, model.Process{})
	for _, tc := range []struct {
		tree string
		opt  model.Options
		want model.Process
	}{{
		tree: "zombies-threads", // zombies on two threads, one below a live child
		opt:  model.Options{FDTypes: true},
		want: model.Process{
			PID: 100, PPID: 1, Comm: "server", Cmdline: []string{"./server", "--reaper", "off"},
			State: "S", Threads: 3, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			Children: 4, Zombies: 3, DescendantZombies: 4,
			ZombieList: []model.Zombie{
				// Exit ages from sched: the runqueue clock reads three
				// weeks (self/sched) while stat's boot clock reads
				// 10,000 s; only differences on one clock count.
				{PID: 200, PPID: 100, Comm: "server", ExitCode: 0, Exit: "exit 0", WaitStatus: 0, AgeSeconds: 5000, ExitAgeSeconds: floatp(4000), ExitAgeFrom: "sched"},
				{PID: 201, PPID: 100, Comm: "server", ExitCode: 7, Exit: "exit 7", WaitStatus: 7 << 8, AgeSeconds: 4900, ExitAgeSeconds: floatp(1.5), ExitAgeFrom: "sched"},
				{PID: 202, PPID: 100, Comm: "sh", ExitCode: 137, Exit: "killed by SIGKILL", WaitStatus: 9, AgeSeconds: 4800, ExitAgeSeconds: floatp(600), ExitAgeFrom: "sched"},
				{PID: 300, PPID: 203, Comm: "job", ExitCode: 139, Exit: "killed by SIGSEGV (core dumped)", WaitStatus: 0x8b, AgeSeconds: 4000, ExitAgeSeconds: floatp(1.2), ExitAgeFrom: "sched"},
			},
			// 200 and 202 are stale; 201 exited 1.5 s ago.
			Reaping: &model.Reaping{ExitAgesKnown: true, OldestExitSeconds: floatp(4000), Stale: 2, StaleAgeSeconds: 2},
			FDs:     intp(3), FDTypes: map[string]int{"device": 3}, TCPStates: map[string]int{},
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(8), // 100 with 3 threads, 200, 201, 202, 203, 300
			Sigchld:      proc.SigchldDefault,
		},
	}, {
		tree: "vanished", // 201 listed but gone, 202 reused by a stranger
		want: model.Process{
			PID: 100, PPID: 1, Comm: "daemon", Cmdline: []string{"daemon"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			Children: 1, Zombies: 1, DescendantZombies: 1,
			ZombieList:  []model.Zombie{{PID: 200, PPID: 100, Comm: "daemon", Exit: "exit 0", AgeSeconds: 5000}},
			Reaping:     unknownExits,
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(3),
			Sigchld:      proc.SigchldCaught, SigchldBlocked: true, SigchldPending: true,
		},
	}, {
		tree: "no-children",
		want: model.Process{
			PID: 100, PPID: 1, Comm: "nginx", Cmdline: []string{"nginx: master process"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			ZombieList:  []model.Zombie{},
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(1),
			Sigchld:      proc.SigchldIgnored,
		},
	}, {
		tree: "fds",
		opt:  model.Options{FDTypes: true},
		want: model.Process{
			PID: 100, PPID: 1, Comm: "app", Cmdline: []string{"app"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			ZombieList: []model.Zombie{},
			FDs:        intp(18),
			FDTypes: map[string]int{
				"socket": 4, "pipe": 2, "file": 3, "device": 2, "other": 1,
				"anon_inode:eventfd": 1, "anon_inode:eventpoll": 1, "anon_inode:pidfd": 1,
				"anon_inode:timerfd": 1, "anon_inode:signalfd": 1, "anon_inode:inotify": 1,
			},
			// 1004 is not in net/tcp (a unix socket); 9999 is not this process's.
			TCPStates:   map[string]int{"LISTEN": 1, "ESTABLISHED": 1, "CLOSE_WAIT": 1},
			FDSoftLimit: 20, FDHardLimit: 4096, NprocSoftLimit: proc.Unlimited, NprocHardLimit: proc.Unlimited,
			UIDProcesses: intp(1),
			Sigchld:      proc.SigchldDefault,
		},
	}, {
		tree: "comm-parens", // comm "z) Z (x", child comm "a (b) c"
		opt:  model.Options{ZombieOwners: true},
		want: model.Process{
			PID: 100, PPID: 1, Comm: "z) Z (x", Cmdline: []string{"/opt/z) Z (x"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			Children: 1, Zombies: 1, DescendantZombies: 1,
			ZombieList: []model.Zombie{{PID: 200, PPID: 100, Comm: "a (b) c", ExitCode: 3, Exit: "exit 3", WaitStatus: 3 << 8,
				AgeSeconds: 5000, UID: intp(fixtureOwner(t, "comm-parens", 200)), User: fixtureUser(t, "comm-parens", 200)}},
			Reaping:     unknownExits,
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(2),
			Sigchld:      proc.SigchldCaught,
		},
	}, {
		tree: "container-init", // NSpid ends in 1; 200 started before its parent
		want: model.Process{
			PID: 100, PPID: 1, Comm: "sh", Cmdline: []string{"/bin/sh", "-c", "exec app"},
			State: "S", Threads: 1, UID: 0, User: "root", StartTime: fixtureBoot.Add(4000 * time.Second),
			NamespaceInit: true,
			Children:      2, Zombies: 2, AdoptedZombies: 1, DescendantZombies: 2,
			ZombieList: []model.Zombie{
				{PID: 200, PPID: 100, Comm: "app", Exit: "exit 0", AgeSeconds: 7000, Adopted: true, ExitAgeSeconds: floatp(3000), ExitAgeFrom: "sched"},
				{PID: 201, PPID: 100, Comm: "app", Exit: "exit 0", AgeSeconds: 5500, ExitAgeSeconds: floatp(120), ExitAgeFrom: "sched"},
			},
			Reaping:     &model.Reaping{ExitAgesKnown: true, OldestExitSeconds: floatp(3000), Stale: 2, StaleAgeSeconds: 2},
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: nil, // uid 0: not counted
			Sigchld:      proc.SigchldDefault,
		},
	}, {
		tree: "no-children-file", // no task/TID/children: ppid scan
		want: model.Process{
			PID: 100, PPID: 1, Comm: "server", Cmdline: []string{"server"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			Children: 2, Zombies: 1, DescendantZombies: 1,
			ZombieList:  []model.Zombie{{PID: 200, PPID: 100, Comm: "server", Exit: "exit 0", AgeSeconds: 5000}},
			Reaping:     unknownExits,
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(4),
			Sigchld:      proc.SigchldDefault,
		},
	}} {
		t.Run(tc.tree, func(t *testing.T) {
			got, err := openFixture(t, tc.tree).Process(context.Background(), 100, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			// The cause, sentence and ratios are the diagnosis's, tested there.
			got.Cause, got.Diagnosis, got.FDRatio, got.NprocRatio, got.Limits = "", "", 0, 0, nil
			if diff := gocmp.Diff(&tc.want, got, ignore); diff != "" {
				t.Errorf("Snapshot(100) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// fixtureOwner is the owner of a fixture process directory: a checkout
// gives it the uid of whoever cloned, as /proc gives a process's.
func fixtureOwner(t *testing.T, tree string, pid int) int {
	t.Helper()
	uid, err := openFixture(t, tree).FS.Owner(pid)
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func fixtureUser(t *testing.T, tree string, pid int) string {
	return openFixture(t, tree).Users.Name(fixtureOwner(t, tree, pid))
}

func TestProcessMissingPID(t *testing.T) {
	fs := openFixture(t, "vanished")
	for _, pid := range []int{201, 4242, 0, -1} {
		_, err := fs.Process(context.Background(), pid, model.Options{})
		if !errors.Is(err, model.ErrNoProcess) {
			t.Errorf("Process(%d) error = %v, want ErrNoProcess", pid, err)
		}
	}
}

func TestScanFixtures(t *testing.T) {
	for _, tc := range []struct {
		tree    string
		parents []parent
		fdTop   fdUser
		uid1000 model.UIDUsage
		total   [3]int // processes, threads, zombies
	}{{
		tree: "zombies-threads",
		parents: []parent{
			{PID: 100, PPID: 1, Comm: "server", UID: 1000, User: "alice", State: "S", Zombies: 3, OldestAgeSeconds: 5000, Sigchld: proc.SigchldDefault},
			{PID: 203, PPID: 100, Comm: "worker", UID: 1000, User: "alice", State: "S", Zombies: 1, OldestAgeSeconds: 4000, Sigchld: proc.SigchldDefault},
		},
		fdTop:   fdUser{PID: 1, Comm: "init", UID: 0, User: "root", FDs: 3, FDSoftLimit: 1024, FDRatio: 0.0029, FDTypes: map[string]int{"device": 3}, TCPStates: map[string]int{}},
		uid1000: model.UIDUsage{UID: 1000, User: "alice", Processes: 6, Tasks: 8, Zombies: 4, NprocSoftLimit: 96365, Ratio: 0.0001},
		total:   [3]int{7, 9, 4},
	}, {
		tree: "container-init",
		parents: []parent{
			{PID: 100, PPID: 1, Comm: "sh", UID: 0, User: "root", State: "S", Zombies: 2, AdoptedZombies: 1, OldestAgeSeconds: 7000, NamespaceInit: true, Sigchld: proc.SigchldDefault},
		},
		fdTop: fdUser{PID: 1, Comm: "init", UID: 0, User: "root", FDs: 3, FDSoftLimit: 1024, FDRatio: 0.0029, FDTypes: map[string]int{"device": 3}, TCPStates: map[string]int{}},
		total: [3]int{4, 4, 2},
	}, {
		tree:    "fds",
		parents: []parent{},
		fdTop: fdUser{PID: 100, Comm: "app", UID: 1000, User: "alice", FDs: 18, FDSoftLimit: 20, FDRatio: 0.9,
			FDTypes: map[string]int{"socket": 4, "pipe": 2, "file": 3, "device": 2, "other": 1,
				"anon_inode:eventfd": 1, "anon_inode:eventpoll": 1, "anon_inode:pidfd": 1,
				"anon_inode:timerfd": 1, "anon_inode:signalfd": 1, "anon_inode:inotify": 1},
			TCPStates: map[string]int{"LISTEN": 1, "ESTABLISHED": 1, "CLOSE_WAIT": 1}},
		uid1000: model.UIDUsage{UID: 1000, User: "alice", Processes: 1, Tasks: 1, NprocSoftLimit: proc.Unlimited},
		total:   [3]int{2, 2, 0},
	}} {
		t.Run(tc.tree, func(t *testing.T) {
			h, err := openFixture(t, tc.tree).Host(context.Background(), model.HostOptions{Parents: 5, FDUsers: 5, UIDs: 5, FDTypes: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := [3]int{h.Processes, h.Threads, h.Zombies}; got != tc.total {
				t.Errorf("processes, threads, zombies = %v, want %v", got, tc.total)
			}
			if diff := gocmp.Diff(tc.parents, parents(h)); diff != "" {
				t.Errorf("parents (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.fdTop, fdUsers(h)[0]); diff != "" {
				t.Errorf("first fd user (-want +got):\n%s", diff)
			}
			if tc.uid1000.UID != 0 {
				i := slices.IndexFunc(h.UIDs, func(u model.UIDUsage) bool { return u.UID == 1000 })
				if i < 0 {
					t.Fatalf("no uid 1000 in %+v", h.UIDs)
				}
				if diff := gocmp.Diff(tc.uid1000, h.UIDs[i]); diff != "" {
					t.Errorf("uid 1000 (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestScanTop(t *testing.T) {
	h, err := openFixture(t, "zombies-threads").Host(context.Background(), model.HostOptions{Parents: 1, FDUsers: 1, UIDs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Parents) != 1 || h.Parents[0].PID != 100 || len(h.FDUsers) != 1 || len(h.UIDs) != 1 {
		t.Errorf("--top 1: %d parents (first %d), %d fd users, %d uids; want 1 of each, pid 100 first",
			len(h.Parents), h.Parents[0].PID, len(h.FDUsers), len(h.UIDs))
	}
}

// TestScanLive: two parents holding different numbers of zombies appear
// with their counts and names, and a CLOSE_WAIT leak is counted.
func TestScanLive(t *testing.T) {
	a := zombietest.Start(t, zombietest.Spec{Children: 5, Threads: 2})
	b := zombietest.Start(t, zombietest.Spec{Children: 9, Threads: 2})
	c := zombietest.Start(t, zombietest.Spec{CloseWait: 7, NoFile: 40})
	h, err := liveReader(t).Host(context.Background(), model.HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held := map[int]parent{}
	for _, p := range parents(h) {
		held[p.PID] = p
	}
	for _, want := range []struct{ pid, zombies int }{{a.PID, 5}, {b.PID, 9}} {
		p, ok := held[want.pid]
		if !ok || p.Zombies != want.zombies || p.Comm != "model.test" {
			t.Errorf("parent %d: %+v (listed %v); want %d zombies under comm model.test", want.pid, p, ok, want.zombies)
		}
	}
	if h.Zombies < 14 {
		t.Errorf("host zombies %d, want at least the helpers' 14", h.Zombies)
	}

	// Other packages' tests run at the same time: look for the helper
	// rather than expect it first, and check the order.
	all, err := liveReader(t).Host(context.Background(), model.HostOptions{FDTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	users := fdUsers(all)
	i := slices.IndexFunc(users, func(u fdUser) bool { return u.PID == c.PID })
	if i < 0 {
		t.Fatalf("helper %d not among the fd users", c.PID)
	}
	if u := users[i]; u.FDSoftLimit != 40 || u.TCPStates["CLOSE_WAIT"] != 7 || u.TCPStates["LISTEN"] != 1 {
		t.Errorf("helper: %+v; want limit 40, 7 sockets in CLOSE_WAIT and 1 listening", u)
	}
	if !slices.IsSortedFunc(users, func(a, b fdUser) int { return cmp.Compare(b.FDRatio, a.FDRatio) }) {
		t.Errorf("fd users are not nearest-first")
	}
}

// parent is what the host view says of a parent holding zombies.
type parent struct {
	PID, PPID        int
	Comm             string
	UID              int
	User, State      string
	Zombies          int
	AdoptedZombies   int
	OldestAgeSeconds float64
	NamespaceInit    bool
	Sigchld          proc.Disposition
	SigchldBlocked   bool
}

func parents(h *model.Host) []parent {
	list := []parent{}
	for _, p := range h.Parents {
		list = append(list, parent{PID: p.PID, PPID: p.PPID, Comm: p.Comm, UID: p.UID, User: p.User, State: p.State,
			Zombies: p.Zombies, AdoptedZombies: p.AdoptedZombies, OldestAgeSeconds: p.OldestAge().Seconds(),
			NamespaceInit: p.NamespaceInit, Sigchld: p.Sigchld, SigchldBlocked: p.SigchldBlocked})
	}
	return list
}

// fdUser is what the host view says of a process's descriptors.
type fdUser struct {
	PID         int
	Comm        string
	UID         int
	User        string
	FDs         int
	FDSoftLimit proc.Limit
	FDRatio     float64
	FDTypes     map[string]int
	TCPStates   map[string]int
}

func fdUsers(h *model.Host) []fdUser {
	var list []fdUser
	for _, u := range h.FDUsers {
		list = append(list, fdUser{PID: u.PID, Comm: u.Comm, UID: u.UID, User: u.User, FDs: *u.FDs,
			FDSoftLimit: u.FDSoftLimit, FDRatio: u.FDRatio, FDTypes: u.FDTypes, TCPStates: u.TCPStates})
	}
	return list
}

func benchTarget(b *testing.B) int {
	if pid, err := strconv.Atoi(os.Getenv("ZW_BENCH_PID")); err == nil {
		return pid
	}
	h := zombietest.Start(b, zombietest.Spec{Children: 1000, Threads: 3, Pipes: 500, SocketPairs: 500, Files: 1000})
	return h.PID
}

func BenchmarkProcessFixture(b *testing.B) {
	r := openFixture(b, "zombies-threads")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Process(context.Background(), 100, model.Options{FDTypes: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProcessLive(b *testing.B) {
	pid := benchTarget(b)
	r := liveReader(b)
	for _, tc := range []struct {
		name string
		opt  model.Options
	}{{"count", model.Options{}}, {"kinds", model.Options{FDTypes: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Process(context.Background(), pid, tc.opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHostLive(b *testing.B) {
	r := liveReader(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Host(context.Background(), model.HostOptions{Parents: 10, FDUsers: 10, UIDs: 10}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestProcessAndHostAgree reads one live parent with --pid's reading and
// with the host scan, and compares every fact both report.
func TestProcessAndHostAgree(t *testing.T) {
	zombietest.SkipSlow(t)
	h := zombietest.Start(t, zombietest.Spec{Children: 7, Threads: 2, Pipes: 3, CloseWait: 2, NoFile: 64})
	// Like with like: both readings at one clock (start ages equal), and
	// its zombies dead for well over model.StaleAge, so the time between
	// the two reads cannot move the cause across it.
	readUntil(t, h.PID, func(p *model.Process) bool {
		return p.Reaping != nil && p.Reaping.OldestExitSeconds != nil && p.Reaping.Stale == p.Zombies &&
			p.ZombieList[len(p.ZombieList)-1].ExitAgeSeconds != nil && *p.ZombieList[len(p.ZombieList)-1].ExitAgeSeconds >= model.StaleAge.Seconds()+1
	})
	r := liveReader(t)
	clock := time.Now()
	r.Now = func() time.Time { return clock }
	one, err := r.Process(context.Background(), h.PID, model.Options{FDTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	host, err := r.Host(context.Background(), model.HostOptions{FDUsers: 1, FDTypes: true,
		Include: func(pid int, _ string) bool { return pid == h.PID }})
	if err != nil {
		t.Fatal(err)
	}
	var parent, user *model.Process
	for _, p := range host.Parents {
		if p.PID == h.PID {
			parent = p
		}
	}
	for _, p := range host.FDUsers {
		if p.PID == h.PID {
			user = p
		}
	}
	if parent == nil || user == nil {
		t.Fatalf("helper %d: among parents %v, among fd users %v; want both", h.PID, parent != nil, user != nil)
	}
	// (The state is not compared: the helper may run between the reads.)
	type shared struct {
		PID, PPID, UID, Zombies, Adopted int
		Comm, User                       string
		Oldest                           time.Duration
		Sigchld                          proc.Disposition
		Blocked, Init                    bool
		Cause                            string
	}
	of := func(p *model.Process) shared {
		return shared{p.PID, p.PPID, p.UID, p.Zombies, p.AdoptedZombies, p.Comm, p.User,
			p.OldestAge().Round(time.Second), p.Sigchld, p.SigchldBlocked, p.NamespaceInit, string(p.Cause)}
	}
	if diff := gocmp.Diff(of(one), of(parent)); diff != "" {
		t.Errorf("--pid and the host's parent disagree (-pid +host):\n%s", diff)
	}
	type fds struct {
		FDs        int
		Soft, Hard proc.Limit
		Ratio      float64
		Kinds      map[string]int
		TCP        map[string]int
	}
	ofFDs := func(p *model.Process) fds {
		return fds{*p.FDs, p.FDSoftLimit, p.FDHardLimit, p.FDRatio, p.FDTypes, p.TCPStates}
	}
	if diff := gocmp.Diff(ofFDs(one), ofFDs(user)); diff != "" {
		t.Errorf("--pid and the host's fd user disagree (-pid +host):\n%s", diff)
	}
	if one.Zombies != 7 || one.TCPStates["CLOSE_WAIT"] != 2 || one.FDSoftLimit != 64 {
		t.Errorf("helper read as %d zombies, %d CLOSE_WAIT, fd limit %s; want 7, 2, 64", one.Zombies, one.TCPStates["CLOSE_WAIT"], one.FDSoftLimit)
	}
}

// copyTree copies testdata/proc/TREE to a directory the test may change.
func copyTree(t *testing.T, tree string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(fixture.Dir(tree))); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readerOf(t *testing.T, dir string) *model.Reader {
	t.Helper()
	fs, err := proc.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := model.NewReader(fs, model.TCPStates(fs))
	r.Now = func() time.Time { return fixture.Now }
	return r
}

// TestPPIDCycle: a hostile tree whose child lists its own parent as its
// child must not spin: the walk keeps a visited set and ends.
func TestPPIDCycle(t *testing.T) {
	dir := copyTree(t, "zombies-threads")
	// 203 (a live child of 100) now lists 100 as its child, and 100's stat
	// names 203 as its parent.
	if err := os.WriteFile(filepath.Join(dir, "203/task/203/children"), []byte("100 300 "), 0o644); err != nil {
		t.Fatal(err)
	}
	stat, _ := os.ReadFile(filepath.Join(dir, "100/stat"))
	if err := os.WriteFile(filepath.Join(dir, "100/stat"), []byte(strings.Replace(string(stat), ") S 1 ", ") S 203 ", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := readerOf(t, dir).Process(ctx, 100, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Zombies != 3 || p.DescendantZombies != 4 {
		t.Errorf("cycle: %d zombies, %d below; want 3 and 4, each counted once", p.Zombies, p.DescendantZombies)
	}
}

// TestHostSkipsBadRecords: a pid directory whose status does not parse
// (a number as the kernel never writes it) is skipped and counted; the
// rest of the host is read.
func TestHostSkipsBadRecords(t *testing.T) {
	dir := copyTree(t, "zombies-threads")
	if err := os.WriteFile(filepath.Join(dir, "203/status"), []byte("Name:\tworker\nUid:\t-\nSigIgn:\t0\nSigCgt:\t0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "0100"), 0o755); err != nil { // not a canonical pid: not a process
		t.Fatal(err)
	}
	h, err := readerOf(t, dir).Host(context.Background(), model.HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Skipped != 1 || h.Processes != 6 {
		t.Errorf("skipped %d, processes %d; want 1 skipped (203's status) and the other 6 read", h.Skipped, h.Processes)
	}
}

// TestThreadIDIsItsProcess: a thread id (top -H, ps -L) reads its process.
func TestThreadIDIsItsProcess(t *testing.T) {
	h := zombietest.Start(t, zombietest.Spec{Children: 4, Threads: 2})
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(h.PID), "task"))
	if err != nil {
		t.Fatal(err)
	}
	tid := 0
	for _, task := range tasks {
		if n, _ := strconv.Atoi(task.Name()); n != h.PID {
			tid = n
			break
		}
	}
	if tid == 0 {
		t.Fatalf("helper %d has no thread besides its main one", h.PID)
	}
	p, err := liveReader(t).Process(context.Background(), tid, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != h.PID || p.ThreadID != tid || p.Zombies != 4 {
		t.Errorf("--pid %d (a thread of %d): read pid %d, thread_id %d, %d zombies; want %d, %d, 4", tid, h.PID, p.PID, p.ThreadID, p.Zombies, h.PID, tid)
	}
}

// TestZombiePID: the pid of a zombie says it is one, with its exit
// status, and names the parent that has not reaped it.
func TestZombiePID(t *testing.T) {
	h := zombietest.Start(t, zombietest.Spec{Children: 1, ExitCode: 5})
	p, err := liveReader(t).Process(context.Background(), h.Children[0], model.Options{FDTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != "Z" || p.Cause != "is_zombie" || p.FDs != nil || !strings.Contains(p.Diagnosis, "(exit 5)") ||
		!strings.Contains(p.Diagnosis, "zombiewatch --pid "+strconv.Itoa(h.PID)) {
		t.Errorf("zombie %d: state %s, cause %s, fds %v, diagnosis %q", p.PID, p.State, p.Cause, p.FDs, p.Diagnosis)
	}
}

// startPython runs python3 with script (which prints a line when ready)
// under prefix (e.g. unshare). Where prefix itself cannot run here (no
// pid namespaces), it skips, saying so; a helper that then fails fails
// the test.
func startPython(t *testing.T, prefix []string, script string) *exec.Cmd {
	t.Helper()
	if prefix == nil {
		return zombietest.Python(t, script)
	}
	if out, err := exec.Command(prefix[0], append(prefix[1:], "true")...).CombinedOutput(); err != nil {
		t.Skipf("%v cannot run here: %v %s", prefix, err, out)
	}
	args := append(append([]string{}, prefix...), "python3", "-c", script)
	cmd := exec.Command(args[0], args[1:]...)
	// A group of its own: cleanup ends the children it forked too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%v: %v", args[:len(prefix)+1], err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		zombietest.ReapAll()
	})
	line := make(chan string, 1)
	go func() {
		b := make([]byte, 64)
		n, _ := out.Read(b)
		line <- string(b[:n])
	}()
	select {
	case l := <-line:
		if l == "" {
			t.Fatalf("%v ended before it was ready", args[:len(prefix)+1])
		}
	case <-time.After(20 * time.Second):
		t.Fatal("python3 did not get ready")
	}
	return cmd
}

// stale: p holds a zombie dead for model.StaleAge or longer.
func stale(p *model.Process) bool { return p.Reaping != nil && p.Reaping.Stale > 0 }

// readUntil reads the live pid until ok holds (a generous deadline: a
// busy machine is slow, never wrong), and returns the last reading.
func readUntil(t *testing.T, pid int, ok func(*model.Process) bool) *model.Process {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := liveReader(t).Process(context.Background(), pid, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ok(p) || time.Now().After(deadline) {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestContainerInitNamed: an app run as PID 1 of its own pid namespace
// (unshare --pid, as a container runtime does) that leaves a child
// unreaped is told apart from the host's init, and named.
func TestContainerInitNamed(t *testing.T) {
	zombietest.SkipSlow(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a pid namespace")
	}
	cmd := startPython(t, []string{"unshare", "--pid", "--fork", "--kill-child"}, `
import os, time
if os.fork() == 0: os._exit(3)
time.sleep(0.2); print("ready", flush=True); time.sleep(120)`)
	// unshare forks python3, PID 1 of the new namespace.
	kids, _, err := liveReader(t).FS.Children(cmd.Process.Pid, nil)
	if err != nil || len(kids) != 1 {
		t.Fatalf("unshare's children %v, %v; want the one python3", kids, err)
	}
	p := readUntil(t, kids[0], stale)
	if !p.NamespaceInit || p.HostInit == nil || *p.HostInit || p.Cause != "init_not_reaping" ||
		!strings.Contains(p.Diagnosis, "PID 1 of its container") || !strings.Contains(p.Diagnosis, "the app (python3) is PID 1 itself") {
		t.Errorf("python3 as PID 1 of a pid namespace: init %v, host %v, cause %s, diagnosis %q", p.NamespaceInit, p.HostInit, p.Cause, p.Diagnosis)
	}
}

// TestWaitsForOneChild: a parent blocked in waitpid for one child while
// another sits a zombie is not told "it does not wait": the kernel says
// it waits (wchan do_wait), for the wrong child.
func TestWaitsForOneChild(t *testing.T) {
	zombietest.SkipSlow(t)
	cmd := startPython(t, nil, `
import os, time
if os.fork() == 0: os._exit(0)
b = os.fork()
if b == 0: time.sleep(120); os._exit(0)
time.sleep(0.2); print("ready", flush=True); os.waitpid(b, 0)`)
	// Until python3 reaches waitpid and the zombie is stale (dead for
	// model.StaleAge): only then is it known not to be reaped.
	p := readUntil(t, cmd.Process.Pid, func(p *model.Process) bool {
		return p.WaitingInWait != nil && *p.WaitingInWait && stale(p)
	})
	if p.Zombies != 1 || p.Cause != "waits_for_one_child" {
		t.Errorf("parent in waitpid(b) with a zombie: %d zombies, waiting %v, cause %s: %q", p.Zombies, p.WaitingInWait, p.Cause, p.Diagnosis)
	}
}

// TestMissingFilesAreNamed: a pid directory without limits, cmdline, fd
// or task/ is read for what it has; each missing file is named, never
// taken for "no such process".
func TestMissingFilesAreNamed(t *testing.T) {
	dir := copyTree(t, "zombies-threads")
	for _, f := range []string{"100/limits", "100/cmdline", "100/fd", "100/task"} {
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := readerOf(t, dir).Process(context.Background(), 100, model.Options{FDTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Zombies != 3 || p.FDs != nil || p.Cmdline != nil || len(p.Unread) != 4 {
		t.Errorf("zombies %d (from the ppid scan), fds %v, cmdline %v, unread %q; want 3, null, null and the 4 files named",
			p.Zombies, p.FDs, p.Cmdline, p.Unread)
	}
	// Without status the pid cannot be read, and says which file is missing.
	if err := os.Remove(filepath.Join(dir, "100/status")); err != nil {
		t.Fatal(err)
	}
	_, err = readerOf(t, dir).Process(context.Background(), 100, model.Options{})
	if err == nil || errors.Is(err, model.ErrNoProcess) || !strings.Contains(err.Error(), "100/status is missing") {
		t.Errorf("without status: %v; want the missing file named", err)
	}
}

// TestHostWithoutStatus: a tree with stat but no status files (some
// exporters' fixtures, trimmed copies) is still read whole.
func TestHostWithoutStatus(t *testing.T) {
	dir := copyTree(t, "zombies-threads")
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "status"))
	for _, m := range matches {
		os.Remove(m)
	}
	h, err := readerOf(t, dir).Host(context.Background(), model.HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Processes != 7 || h.Zombies != 4 || len(h.Parents) != 2 || h.Parents[0].Zombies != 3 {
		t.Errorf("without status: %d processes, %d zombies, %d parents; want 7, 4, 2 (the first holding 3)", h.Processes, h.Zombies, len(h.Parents))
	}
}

// TestKernelThread: kthreadd (pid 2) has no fd table and no user limits;
// it is said so, with fds null rather than 0.
func TestKernelThread(t *testing.T) {
	b, err := os.ReadFile("/proc/2/stat")
	if err != nil || !strings.Contains(string(b), "(kthreadd)") {
		t.Skip("no kthreadd at pid 2 in this pid namespace")
	}
	p, err := liveReader(t).Process(context.Background(), 2, model.Options{FDTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	if !p.KernelThread || p.FDs != nil || p.Cause != "kernel_thread" {
		t.Errorf("kthreadd: kernel thread %v, fds %v, cause %s (%q)", p.KernelThread, p.FDs, p.Cause, p.Diagnosis)
	}
	for _, l := range p.Limits {
		if strings.HasPrefix(l.Name, "RLIMIT_") {
			t.Errorf("kthreadd ranked against %s: a kernel thread meets no user limit", l.Name)
		}
	}
	// The host view's fd users leave kernel threads out: they have no fd
	// table to run out of.
	h, err := liveReader(t).Host(context.Background(), model.HostOptions{FDUsers: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range h.FDUsers {
		if u.PID == 2 {
			t.Errorf("kthreadd among the fd users: %+v", u)
		}
	}
}

// TestSelectionCountsEachUIDOnce: reading many processes of one uid counts
// that uid's tasks (every process's status) once, not once per process.
func TestSelectionCountsEachUIDOnce(t *testing.T) {
	r := openFixture(t, "zombies-threads")
	all, err := r.FS.PIDs()
	if err != nil {
		t.Fatal(err)
	}
	before := r.FS.StatusReads()
	ps, _, _ := r.Processes(context.Background(), []int{100, 203}, model.Options{}, func(int) bool { return true })
	if len(ps) != 2 || ps[0].UIDProcesses == nil || ps[1].UIDProcesses == nil || *ps[0].UIDProcesses != *ps[1].UIDProcesses {
		t.Fatalf("two processes of uid 1000: %d read, uid counts %v %v", len(ps), ps[0].UIDProcesses, ps[1].UIDProcesses)
	}
	// One status each for the two readings, and one count of every process.
	if n := r.FS.StatusReads() - before; n > int64(2+len(all)) {
		t.Errorf("%d status reads for 2 processes of one uid on a tree of %d: the uid's tasks were counted more than once", n, len(all))
	}
}

// TestReadsBoundedBeforeReading: a hostile tree's huge files (a 100 MB
// command line, a 40 MB children list, an 8 MB status, a 100 MB net/tcp)
// cost a reading no more than their bounds: what is read is bounded as it
// is read, not after.
func TestReadsBoundedBeforeReading(t *testing.T) {
	dir := copyTree(t, "fds")
	sparse := func(name string, size int64) {
		t.Helper()
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// A line of text first (so parsers get past it), then the rest as
		// a hole: the disk holds nothing, a read returns NULs.
		f.WriteString("a b c\n")
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	}
	sparse("100/cmdline", 100<<20)
	sparse("100/task/100/children", 40<<20)
	sparse("100/net/tcp", 100<<20)
	r := readerOf(t, dir)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := r.Process(context.Background(), 100, model.Options{FDTypes: true, FDList: true})
	runtime.ReadMemStats(&after)
	// Its children cannot be listed: the reading fails, in one line.
	if err == nil || !strings.Contains(err.Error(), "larger than") || strings.Contains(err.Error(), "\n") {
		t.Errorf("a 40 MB children list: %v; want a one-line error naming it", err)
	}
	// The bounds that apply sum to about 24 MiB (children 8, net/tcp 16,
	// the command line's head); the race detector and the runtime add
	// their share. Read whole, the files would cost 240 MB.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 40<<20 {
		t.Errorf("a reading of a tree with 240 MB of hostile files allocated %d MB; want the bounds' worth (under 40 MB)", alloc>>20)
	}
	// Without it, the reading is made and names what it could not read.
	os.Remove(filepath.Join(dir, "100/task/100/children"))
	os.WriteFile(filepath.Join(dir, "100/task/100/children"), nil, 0o644)
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := r.Process(context.Background(), 100, model.Options{FDTypes: true, FDList: true})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("a reading beside a 100 MB command line and net/tcp allocated %d MB; want under 8 MB", alloc>>20)
	}
	if len(p.Unread) == 0 {
		t.Errorf("unread %q: want the oversized files named", p.Unread)
	}
	for _, u := range p.Unread {
		if len(u) > 300 {
			t.Errorf("an unread note of %d bytes: want it bounded", len(u))
		}
	}
}
