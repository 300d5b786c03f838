package events

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func TestMain(m *testing.M) { zombietest.Main(m) }

func start(t *testing.T) *Source {
	t.Helper()
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := Start(ctx, fs)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("the process connector is refused here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// python runs a parent written in python (zombietest.Python).
func python(t *testing.T, script string) *exec.Cmd { return zombietest.Python(t, script) }

// waitFor polls the parent's stats until ok, or 20 s pass.
func waitFor(t *testing.T, s *Source, pid int, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := s.Parent(pid)
		if ok(st) || time.Now().After(deadline) {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lateReaper forks children and reaps each 300 ms after it has seen it
// exit (a zombie in its stat): every exit-to-reap latency is 300 ms or
// more, however slowly a busy machine runs the child.
const lateReaper = `
import os, time
print("go", flush=True)
for i in range(5):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    while open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.001)
    time.sleep(0.3)
    os.waitpid(pid, 0)
time.sleep(60)`

// TestLateReaper: a parent that reaps each child 300 ms after it exits
// shows that latency, though a poll would rarely catch a zombie.
func TestLateReaper(t *testing.T) {
	zombietest.SkipSlow(t)
	s := start(t)
	cmd := python(t, lateReaper)
	st := waitFor(t, s, cmd.Process.Pid, func(st Stats) bool { return st.Reaped >= 5 })
	if st.Exits != 5 || st.Reaped != 5 || st.P50 == nil {
		t.Fatalf("late reaper: %+v; want 5 exits and 5 reaps", st)
	}
	// At least the 300 ms it waits after seeing each exit (less 10 ms of
	// clock granularity); a busy machine only adds.
	if *st.P50 < 290*time.Millisecond {
		t.Errorf("p50 exit-to-reap %s; the parent waits 300 ms after each exit", *st.P50)
	}
}

// TestNeverReaps: exits are counted, reaps are not, the zombies pending.
func TestNeverReaps(t *testing.T) {
	s := start(t)
	s.TakeTouched() // from now on
	cmd := python(t, `
import os, time
for i in range(3):
    if os.fork() == 0:
        os._exit(0)
print("go", flush=True)
time.sleep(60)`)
	st := waitFor(t, s, cmd.Process.Pid, func(st Stats) bool { return st.Exits >= 3 })
	time.Sleep(100 * time.Millisecond) // a few checks of the pending pids
	st = s.Parent(cmd.Process.Pid)
	if st.Exits != 3 || st.Reaped != 0 || st.Pending != 3 || st.P50 != nil {
		t.Errorf("a parent that never reaps: %+v; want 3 exits, 0 reaped, 3 pending", st)
	}
	// The exited pids are handed to a scan once: its zombies are its
	// children that the events touched.
	pids, all := s.TakeTouched()
	kids := 0
	for _, pid := range pids {
		if stat, _, err := s.fs.ReadStat(pid, nil); err == nil && stat.PPID == cmd.Process.Pid && stat.State == 'Z' {
			kids++
		}
	}
	if kids != 3 || all {
		t.Errorf("touched pids %v (all %v): %d of them the parent's zombies, want 3", pids, all, kids)
	}
	if again, _ := s.TakeTouched(); slices.ContainsFunc(again, func(pid int) bool { return slices.Contains(pids, pid) }) {
		t.Errorf("touched pids handed out twice: %v", again)
	}
}

// TestPromptReaper: a parent that waits at once shows milliseconds.
func TestPromptReaper(t *testing.T) {
	s := start(t)
	cmd := python(t, `
import os, time
print("go", flush=True)
for i in range(20):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
time.sleep(60)`)
	st := waitFor(t, s, cmd.Process.Pid, func(st Stats) bool { return st.Reaped >= 20 })
	// Told apart from the late reaper, whose every latency is 300 ms or
	// more: the prompt one's median is below that, busy machine or not
	// (its latency is the wake-up of a parent already in waitpid).
	if st.Reaped != 20 || st.P50 == nil || *st.P50 >= 300*time.Millisecond {
		t.Errorf("a prompt reaper: %+v (p50 %v, lost %d); want 20 reaps, the median below the late reaper's 300 ms", st, st.P50, s.Lost())
	}
}
