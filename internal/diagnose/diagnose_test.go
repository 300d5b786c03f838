package diagnose

import (
	"strings"
	"testing"
	"time"
)

func TestDiagnose(t *testing.T) {
	zombies := func(e Evidence) Evidence {
		e.PID = 812
		if e.State == "" {
			e.State = "S"
		}
		if e.Zombies == 0 {
			e.Zombies = 140
		}
		e.DescendantZombies = e.Zombies
		e.OldestAge = 185 * time.Second
		return e
	}
	for _, tc := range []struct {
		name  string
		e     Evidence
		cause Cause
		want  string
	}{
		{"none", Evidence{PID: 5}, None, "pid 5 holds no zombies"},
		{"descendants only", Evidence{PID: 5, DescendantZombies: 2, DescendantHolder: 7}, DescendantsOnly,
			"pid 5 holds no zombies itself; its descendants hold 2 (the oldest under pid 7: zombiewatch --pid 7)"},
		{"default", zombies(Evidence{Sigchld: Default}), NoReaper,
			"pid 812 holds 140 zombies, the oldest 3m05s old; it does not catch SIGCHLD and does not wait for these children: add a reaper or ignore SIGCHLD"},
		{"caught", zombies(Evidence{Sigchld: Caught}), CoalescedWait, "it catches SIGCHLD but does not wait for every child"},
		{"blocked", zombies(Evidence{Sigchld: Caught, SigchldBlocked: true}), SigchldBlocked, "it blocks SIGCHLD"},
		{"ignored", zombies(Evidence{Sigchld: Ignored}), IgnoredTooLate, "it ignores SIGCHLD"},
		{"stopped", zombies(Evidence{State: "T"}), Stopped, "it is stopped (state T) and cannot reap until it runs: kill -CONT 812"},
		{"container init, a shell", zombies(Evidence{NamespaceInit: true, Init: ContainerInit, Comm: "sh", AdoptedZombies: 3}), InitNotReaping,
			"it is PID 1 of its container and inherits every orphan (at least 3 of these it adopted), but does not reap them: a shell (sh) as PID 1 waits only for the jobs it started"},
		{"container init, the app", zombies(Evidence{NamespaceInit: true, Init: ContainerInit, Comm: "node"}), InitNotReaping,
			"the app (node) is PID 1 itself and never waits for orphans it did not fork"},
		{"container init, tini", zombies(Evidence{NamespaceInit: true, Init: ContainerInit, Comm: "tini"}), InitNotReaping,
			"tini needs -s, or TINI_SUBREAPER, when it is not PID 1"},
		{"unknown namespace", zombies(Evidence{NamespaceInit: true, Init: UnknownInit, Comm: "sh"}), InitNotReaping,
			"so host or container is not known"},
		{"host init", zombies(Evidence{PID: 1, NamespaceInit: true, Init: HostInit, Comm: "systemd"}), HostInitNotReaping,
			"it is the host's own init (systemd), which inherits every orphan on the host and should reap them"},
		{"stopped, and no reaper once it runs", zombies(Evidence{State: "T", Sigchld: Default}), Stopped,
			"kill -CONT 812; and once it runs: it does not catch SIGCHLD"},
		{"waits for one", zombies(Evidence{Sigchld: Default, WaitingInWait: true, AdoptedZombies: 2}), WaitsForOne,
			"it is blocked in wait right now, yet these stay: it waits for one particular child (waitpid(pid), or a child of its own process group) while the others are left: wait for any child, waitpid(-1, WNOHANG), until none is left (at least 2 of these are orphans it adopted as a subreaper, which it must wait for too)"},
		{"subreaper", zombies(Evidence{Zombies: 2, AdoptedZombies: 2, Sigchld: Caught}), SubreaperNotReaping, "they are orphans it adopted as a subreaper"},
		{"one", zombies(Evidence{Zombies: 1}), NoReaper, "pid 812 holds 1 zombie, the oldest"},
		{"server reaper off", zombies(Evidence{Sigchld: Caught, Server: ReaperOff}), BundledReaperOff,
			"it is the bundled server with its reaper off, so nobody waits for a finished child: zombiewatch ctl --pid 812 reaper=loop"},
		{"server reaper wait", zombies(Evidence{Sigchld: Caught, Server: ReaperWait}), BundledCoalescedWait,
			"waiting once per SIGCHLD, and signals coalesce"},
		{"close wait", Evidence{PID: 5, FDs: 60, Sockets: 56, CloseWait: 55}, None,
			"pid 5 holds no zombies; 55 of its 56 sockets are in CLOSE_WAIT"},
		{"reset copies", Evidence{PID: 5, FDs: 60, Sockets: 56, CloseWait: 5, Reset: 50}, None,
			"pid 5 holds no zombies; 55 of its 56 sockets are connections the peer ended and this process never closed (5 in CLOSE_WAIT, 50 reset, in CLOSE)"},
		{"fd limit", Evidence{PID: 5, FDs: 900, FDRatio: 0.9, FDSoftLimit: "1000"}, None,
			"its fds are at 90.0% of the soft limit (900 of 1000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Diagnose(tc.e)
			if !strings.Contains(got.Sentence, tc.want) || got.Cause != tc.cause {
				t.Errorf("Diagnose = %q (%s), want it to contain %q (%s)", got.Sentence, got.Cause, tc.want, tc.cause)
			}
		})
	}
}
