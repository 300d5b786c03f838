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
		// Time evidence that nobody reaps them: all dead for minutes.
		e.OldestExit, e.OldestExitKnown, e.StaleAge = 120*time.Second, true, 2*time.Second
		if e.Stale == 0 {
			e.Stale = e.Zombies
		}
		return e
	}
	// young: the same parent, its zombies dead for less than StaleAge.
	young := func(e Evidence) Evidence {
		e = zombies(e)
		e.OldestExit, e.Stale = 300*time.Millisecond, 0
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
			"pid 812 holds 140 zombies, the oldest exited 2m00s ago; all exited 2.0 s ago or more and are still there; it does not catch SIGCHLD and is not blocked in wait: nothing in it waits for these children: add a reaper"},
		{"caught", zombies(Evidence{Sigchld: Caught}), CoalescedWait, "it catches SIGCHLD but has not waited for these"},
		{"blocked", zombies(Evidence{Sigchld: Caught, SigchldBlocked: true}), SigchldBlocked, "it blocks SIGCHLD"},
		{"ignored", zombies(Evidence{Sigchld: Ignored}), IgnoredTooLate, "it ignores SIGCHLD"},
		{"stopped", zombies(Evidence{State: "T"}), Stopped, "it is stopped (state T) and cannot reap while stopped: kill -CONT 812; whether it reaps once it runs cannot be told while it is stopped"},
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
		{"stopped with young zombies: no guess about the future", young(Evidence{State: "T", Sigchld: Caught}), Stopped,
			"whether it reaps once it runs cannot be told"},
		{"waits for one", zombies(Evidence{Sigchld: Default, WaitingInWait: true, AdoptedZombies: 2}), WaitsForOne,
			"all exited 2.0 s ago or more and are still there; it is blocked in wait right now, yet these stay: it waits for one particular child (waitpid(pid), or a child of its own process group) while the others are left: wait for any child, waitpid(-1, WNOHANG), until none is left (at least 2 of these are orphans it adopted as a subreaper, which it must wait for too)"},
		{"subreaper", zombies(Evidence{Zombies: 2, AdoptedZombies: 2, Sigchld: Caught}), SubreaperNotReaping, "they are orphans it adopted as a subreaper"},
		{"one", zombies(Evidence{Zombies: 1}), NoReaper, "pid 812 holds 1 zombie, the oldest exited 2m00s ago; it exited 2.0 s ago or more and is still there"},
		// Whether it reaps is told by time, not by SigCgt.
		{"young, not caught: no accusation", young(Evidence{Sigchld: Default}), TooYoung,
			"pid 812 holds 140 zombies, the oldest exited 0.3 s ago; all exited less than 2.0 s ago: too young to tell whether it reaps them"},
		{"observed, nothing reaped, still young", young(Evidence{Sigchld: Default, Observed: time.Second}), TooYoung,
			"all exited less than 2.0 s ago, and none was reaped in the 1.0 s observed: too young to tell"},
		{"a lazy reaper", young(Evidence{Sigchld: Default, Observed: 600 * time.Millisecond, Reaped: 5, ReapDelay: 500 * time.Millisecond, ReapDelayKnown: true}), ReapsLate,
			"it reaps, late: it reaped 5 in the 0.6 s observed, each within 0.5 s of its exit, without leaving any for 2.0 s"},
		{"a lazy init", young(Evidence{PID: 1, NamespaceInit: true, Init: HostInit, Comm: "init", Observed: time.Second, Reaped: 1}), ReapsLate,
			"it reaps, late"},
		{"observed not reaping", zombies(Evidence{Sigchld: Default, Observed: 2 * time.Second}), NoReaper,
			"all exited 2.0 s ago or more and none was reaped in the 2.0 s observed; it does not catch SIGCHLD"},
		{"reaps some, caught", zombies(Evidence{Sigchld: Caught, Observed: 2 * time.Second, Reaped: 3, Stale: 10}), CoalescedWait,
			"it reaped 3 in the 2.0 s observed, yet 10 exited 2.0 s ago or more are still there: it waits once per SIGCHLD"},
		{"reaps some, not caught", zombies(Evidence{Sigchld: Default, Observed: 2 * time.Second, Reaped: 3, Stale: 10}), ReapsSome,
			"it waits for some children and not these"},
		{"no time evidence", func() Evidence { e := young(Evidence{}); e.OldestExitKnown = false; return e }(), NotJudged,
			"their exit times unknown (the oldest started 3m05s ago); whether it reaps is not known"},
		{"server reaper off, even young", young(Evidence{Server: "off"}), BundledReaperOff, "reaper off"},
		{"server reaper off", zombies(Evidence{Sigchld: Caught, Server: "off"}), BundledReaperOff,
			"it is the bundled server with its reaper off, so nobody waits for a finished child: zombiewatch ctl --pid 812 reaper=loop"},
		{"server reaper wait", zombies(Evidence{Sigchld: Caught, Server: "wait"}), BundledCoalescedWait,
			"waiting once per SIGCHLD, and signals coalesce"},
		{"close wait", Evidence{PID: 5, FDs: 60, Sockets: 56, CloseWait: 55}, None,
			"pid 5 holds no zombies; 55 of its 56 sockets are in CLOSE_WAIT"},
		{"reset copies", Evidence{PID: 5, FDs: 60, Sockets: 56, CloseWait: 5, Reset: 50}, None,
			"pid 5 holds no zombies; 55 of its 56 sockets are connections the peer ended and this process never closed (5 in CLOSE_WAIT, 50 reset)"},
		{"one socket", Evidence{PID: 5, FDs: 4, Sockets: 1, CloseWait: 1}, None, "pid 5 holds no zombies; its one socket is in CLOSE_WAIT"},
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
