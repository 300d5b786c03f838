package proc

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fixtureBoot is btime in every testdata/proc tree; fixtureNow is 10,000 s
// later, so a zombie started at tick 500000 (5,000 s) is 5,000 s old.
var (
	fixtureBoot = time.Unix(1764140000, 0)
	fixtureNow  = fixtureBoot.Add(10000 * time.Second)
)

// openFixture opens testdata/proc/NAME with a fixed clock and user names.
func openFixture(t testing.TB, name string) *FS {
	t.Helper()
	fs, err := New(filepath.Join("..", "..", "testdata", "proc", name))
	if err != nil {
		t.Fatal(err)
	}
	fs.Now = func() time.Time { return fixtureNow }
	fs.LookupUser = func(uid int) string { return map[int]string{0: "root", 1000: "alice"}[uid] }
	return fs
}

func intp(n int) *int { return &n }

func TestSnapshotFixtures(t *testing.T) {
	ignore := cmpopts.IgnoreUnexported(Zombie{})
	for _, tc := range []struct {
		tree string
		opt  Options
		want Snapshot
	}{{
		tree: "zombies-threads", // zombies on two threads, one below a live child
		opt:  Options{FDTypes: true},
		want: Snapshot{
			PID: 100, PPID: 1, Comm: "server", Cmdline: []string{"./server", "--reaper", "off"},
			State: "S", Threads: 3, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			Children: 4, Zombies: 3, DescendantZombies: 4,
			ZombieList: []Zombie{
				{PID: 200, PPID: 100, Comm: "server", ExitCode: 0, Exit: "exit 0", WaitStatus: 0, AgeSeconds: 5000},
				{PID: 201, PPID: 100, Comm: "server", ExitCode: 7, Exit: "exit 7", WaitStatus: 7 << 8, AgeSeconds: 4900},
				{PID: 202, PPID: 100, Comm: "sh", ExitCode: 137, Exit: "killed by SIGKILL", WaitStatus: 9, AgeSeconds: 4800},
				{PID: 300, PPID: 203, Comm: "job", ExitCode: 139, Exit: "killed by SIGSEGV (core dumped)", WaitStatus: 0x8b, AgeSeconds: 4000},
			},
			FDs: intp(3), FDTypes: map[string]int{"device": 3}, TCPStates: map[string]int{},
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(8), // 100 with 3 threads, 200, 201, 202, 203, 300
			Sigchld:      SigchldDefault,
		},
	}, {
		tree: "vanished", // 201 listed but gone, 202 reused by a stranger
		want: Snapshot{
			PID: 100, PPID: 1, Comm: "daemon", Cmdline: []string{"daemon"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			Children: 1, Zombies: 1, DescendantZombies: 1,
			ZombieList:  []Zombie{{PID: 200, PPID: 100, Comm: "daemon", Exit: "exit 0", AgeSeconds: 5000}},
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(3),
			Sigchld:      SigchldCaught, SigchldBlocked: true, SigchldPending: true,
		},
	}, {
		tree: "no-children",
		want: Snapshot{
			PID: 100, PPID: 1, Comm: "nginx", Cmdline: []string{"nginx: master process"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			ZombieList:  []Zombie{},
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(1),
			Sigchld:      SigchldIgnored,
		},
	}, {
		tree: "fds",
		opt:  Options{FDTypes: true},
		want: Snapshot{
			PID: 100, PPID: 1, Comm: "app", Cmdline: []string{"app"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			ZombieList: []Zombie{},
			FDs:        intp(18),
			FDTypes: map[string]int{
				"socket": 4, "pipe": 2, "file": 3, "device": 2, "other": 1,
				"anon_inode:eventfd": 1, "anon_inode:eventpoll": 1, "anon_inode:pidfd": 1,
				"anon_inode:timerfd": 1, "anon_inode:signalfd": 1, "anon_inode:inotify": 1,
			},
			// 1004 is not in net/tcp (a unix socket); 9999 is not this process's.
			TCPStates:   map[string]int{"LISTEN": 1, "ESTABLISHED": 1, "CLOSE_WAIT": 1},
			FDSoftLimit: 20, FDHardLimit: 4096, NprocSoftLimit: Unlimited, NprocHardLimit: Unlimited,
			UIDProcesses: intp(1),
			Sigchld:      SigchldDefault,
		},
	}, {
		tree: "comm-parens", // comm "z) Z (x", child comm "a (b) c"
		opt:  Options{ZombieOwners: true},
		want: Snapshot{
			PID: 100, PPID: 1, Comm: "z) Z (x", Cmdline: []string{"/opt/z) Z (x"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			Children: 1, Zombies: 1, DescendantZombies: 1,
			ZombieList: []Zombie{{PID: 200, PPID: 100, Comm: "a (b) c", ExitCode: 3, Exit: "exit 3", WaitStatus: 3 << 8,
				AgeSeconds: 5000, UID: intp(fixtureOwner(t, "comm-parens", 200)), User: fixtureUser(t, "comm-parens", 200)}},
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(2),
			Sigchld:      SigchldCaught,
		},
	}, {
		tree: "container-init", // NSpid ends in 1; 200 started before its parent
		want: Snapshot{
			PID: 100, PPID: 1, Comm: "sh", Cmdline: []string{"/bin/sh", "-c", "exec app"},
			State: "S", Threads: 1, UID: 0, User: "root", StartTime: fixtureBoot.Add(4000 * time.Second),
			NamespaceInit: true,
			Children:      2, Zombies: 2, AdoptedZombies: 1, DescendantZombies: 2,
			ZombieList: []Zombie{
				{PID: 200, PPID: 100, Comm: "app", Exit: "exit 0", AgeSeconds: 7000, Adopted: true},
				{PID: 201, PPID: 100, Comm: "app", Exit: "exit 0", AgeSeconds: 5500},
			},
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: nil, // uid 0: not counted
			Sigchld:      SigchldDefault,
		},
	}, {
		tree: "no-children-file", // no task/TID/children: ppid scan
		want: Snapshot{
			PID: 100, PPID: 1, Comm: "server", Cmdline: []string{"server"},
			State: "S", Threads: 1, UID: 1000, User: "alice", StartTime: fixtureBoot.Add(1000 * time.Second),
			Children: 2, Zombies: 1, DescendantZombies: 1,
			ZombieList:  []Zombie{{PID: 200, PPID: 100, Comm: "server", Exit: "exit 0", AgeSeconds: 5000}},
			FDs:         intp(3),
			FDSoftLimit: 1024, FDHardLimit: 524288, NprocSoftLimit: 96365, NprocHardLimit: 96365,
			UIDProcesses: intp(4),
			Sigchld:      SigchldDefault,
		},
	}} {
		t.Run(tc.tree, func(t *testing.T) {
			got, err := openFixture(t, tc.tree).Snapshot(100, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.want, got, ignore); diff != "" {
				t.Errorf("Snapshot(100) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// fixtureOwner is the owner of a fixture process directory: a checkout
// gives it the uid of whoever cloned, as /proc gives a process's.
func fixtureOwner(t *testing.T, tree string, pid int) int {
	t.Helper()
	fs := openFixture(t, tree)
	z, err := fs.zombie(stat{PID: pid}, fixtureNow, Options{ZombieOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	return *z.UID
}

func fixtureUser(t *testing.T, tree string, pid int) string {
	return openFixture(t, tree).userName(fixtureOwner(t, tree, pid))
}

func TestSnapshotMissingPID(t *testing.T) {
	fs := openFixture(t, "vanished")
	for _, pid := range []int{201, 4242, 0, -1} {
		_, err := fs.Snapshot(pid, Options{})
		if !errors.Is(err, ErrNoProcess) {
			t.Errorf("Snapshot(%d) error = %v, want ErrNoProcess", pid, err)
		}
	}
}
