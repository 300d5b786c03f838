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

// TestLateReaper: a parent that reaps each child 300 ms after it exits
// shows that latency, though a poll would rarely catch a zombie.
func TestLateReaper(t *testing.T) {
	s := start(t)
	cmd := python(t, `
import os, time
print("go", flush=True)
for i in range(5):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    time.sleep(0.3)
    os.waitpid(pid, 0)
time.sleep(60)`)
	st := waitFor(t, s, cmd.Process.Pid, func(st Stats) bool { return st.Reaped >= 5 })
	if st.Exits != 5 || st.Reaped != 5 || st.P50 == nil {
		t.Fatalf("late reaper: %+v; want 5 exits and 5 reaps", st)
	}
	if *st.P50 < 290*time.Millisecond || *st.P50 > 500*time.Millisecond {
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
	if st.Reaped != 20 || st.P99 == nil || *st.P99 > 200*time.Millisecond {
		t.Errorf("a prompt reaper: %+v (p99 %v, lost %d); want 20 reaps within milliseconds", st, st.P99, s.Lost())

	}
}
