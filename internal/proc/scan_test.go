package proc

import (
	"cmp"
	"slices"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func TestScanFixtures(t *testing.T) {
	ignore := cmpopts.IgnoreUnexported(Parent{})
	for _, tc := range []struct {
		tree    string
		parents []Parent
		fdTop   FDUser
		uid1000 UIDUsage
		total   [3]int // processes, threads, zombies
	}{{
		tree: "zombies-threads",
		parents: []Parent{
			{PID: 100, PPID: 1, Comm: "server", UID: 1000, User: "alice", State: "S", Zombies: 3, OldestAgeSeconds: 5000, Sigchld: SigchldDefault},
			{PID: 203, PPID: 100, Comm: "worker", UID: 1000, User: "alice", State: "S", Zombies: 1, OldestAgeSeconds: 4000, Sigchld: SigchldDefault},
		},
		fdTop:   FDUser{PID: 1, Comm: "init", UID: 0, User: "root", FDs: 3, FDSoftLimit: 1024, FDRatio: 0.0029, FDTypes: map[string]int{"device": 3}},
		uid1000: UIDUsage{UID: 1000, User: "alice", Processes: 6, Tasks: 8, Zombies: 4, NprocSoftLimit: 96365, Ratio: 0.0001},
		total:   [3]int{7, 9, 4},
	}, {
		tree: "container-init",
		parents: []Parent{
			{PID: 100, PPID: 1, Comm: "sh", UID: 0, User: "root", State: "S", Zombies: 2, AdoptedZombies: 1, OldestAgeSeconds: 7000, NamespaceInit: true, Sigchld: SigchldDefault},
		},
		fdTop: FDUser{PID: 1, Comm: "init", UID: 0, User: "root", FDs: 3, FDSoftLimit: 1024, FDRatio: 0.0029, FDTypes: map[string]int{"device": 3}},
		total: [3]int{4, 4, 2},
	}, {
		tree:    "fds",
		parents: []Parent{},
		fdTop: FDUser{PID: 100, Comm: "app", UID: 1000, User: "alice", FDs: 18, FDSoftLimit: 20, FDRatio: 0.9,
			FDTypes: map[string]int{"socket": 4, "pipe": 2, "file": 3, "device": 2, "other": 1,
				"anon_inode:eventfd": 1, "anon_inode:eventpoll": 1, "anon_inode:pidfd": 1,
				"anon_inode:timerfd": 1, "anon_inode:signalfd": 1, "anon_inode:inotify": 1},
			TCPStates: map[string]int{"LISTEN": 1, "ESTABLISHED": 1, "CLOSE_WAIT": 1}},
		uid1000: UIDUsage{UID: 1000, User: "alice", Processes: 1, Tasks: 1, NprocSoftLimit: Unlimited},
		total:   [3]int{2, 2, 0},
	}} {
		t.Run(tc.tree, func(t *testing.T) {
			h, err := openFixture(t, tc.tree).Scan(ScanOptions{Parents: 5, FDUsers: 5, UIDs: 5, FDTypes: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := [3]int{h.Processes, h.Threads, h.Zombies}; got != tc.total {
				t.Errorf("processes, threads, zombies = %v, want %v", got, tc.total)
			}
			if h.Parents == nil {
				h.Parents = []Parent{}
			}
			if diff := gocmp.Diff(tc.parents, h.Parents, ignore); diff != "" {
				t.Errorf("parents (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.fdTop, h.FDUsers[0]); diff != "" {
				t.Errorf("first fd user (-want +got):\n%s", diff)
			}
			if tc.uid1000.UID != 0 {
				i := slices.IndexFunc(h.UIDs, func(u UIDUsage) bool { return u.UID == 1000 })
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
	h, err := openFixture(t, "zombies-threads").Scan(ScanOptions{Parents: 1, FDUsers: 1, UIDs: 1})
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
	h, err := liveFS(t).Scan(ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	held := map[int]Parent{}
	for _, p := range h.Parents {
		held[p.PID] = p
	}
	for _, want := range []struct{ pid, zombies int }{{a.PID, 5}, {b.PID, 9}} {
		p, ok := held[want.pid]
		if !ok || p.Zombies != want.zombies || p.Comm != "proc.test" {
			t.Errorf("parent %d: %+v (listed %v); want %d zombies under comm proc.test", want.pid, p, ok, want.zombies)
		}
	}
	if h.Zombies < 14 {
		t.Errorf("host zombies %d, want at least the helpers' 14", h.Zombies)
	}

	// Other packages' tests run at the same time: look for the helper
	// rather than expect it first, and check the order.
	all, err := liveFS(t).Scan(ScanOptions{FDTypes: true})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(all.FDUsers, func(u FDUser) bool { return u.PID == c.PID })
	if i < 0 {
		t.Fatalf("helper %d not among the fd users", c.PID)
	}
	if u := all.FDUsers[i]; u.FDSoftLimit != 40 || u.TCPStates["CLOSE_WAIT"] != 7 || u.TCPStates["LISTEN"] != 1 {
		t.Errorf("helper: %+v; want limit 40, 7 sockets in CLOSE_WAIT and 1 listening", u)
	}
	if !slices.IsSortedFunc(all.FDUsers, func(a, b FDUser) int { return cmp.Compare(b.FDRatio, a.FDRatio) }) {
		t.Errorf("fd users are not nearest-first")
	}
}
