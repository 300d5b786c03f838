package model_test

import (
	"context"
	"math"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// Whether a parent reaps is judged from time, on real programs: the lazy
// reapers people run (Python's ForkingMixIn, poll loops, inits) are never
// told "does not wait"; a true non-reaper still is, with its evidence.

// observeOnce reads pid and, when the reading leaves it open, observes
// its zombies for up to window, as zombiewatch --pid does.
func observeOnce(t *testing.T, pid int, window time.Duration) *model.Process {
	t.Helper()
	r := liveReader(t)
	p, err := r.Process(context.Background(), pid, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.Observe(context.Background(), p, window, model.ObserveStep)
	return p
}

// judgedWithZombies reads and observes pid until a reading finds zombies
// (a lazy reaper holds them part of the time: wait for that, with a
// generous deadline), and returns that reading.
func judgedWithZombies(t *testing.T, pid int, window time.Duration) *model.Process {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		p := observeOnce(t, pid, window)
		if p.Zombies > 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d held no zombie at any reading for 60s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func requireSched(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/self/sched"); err != nil {
		t.Skipf("no /proc/self/sched (CONFIG_SCHED_DEBUG off): exit ages unknown here: %v", err)
	}
}

// pollReaper forks children that exit at once and reaps them with
// waitpid(WNOHANG) once a second, without a SIGCHLD handler: the
// maintenance loop of a prefork server, an init's poll.
const pollReaper = `
import os, time
print("ready", flush=True)
while True:
    for _ in range(3):
        if os.fork() == 0:
            os._exit(0)
    time.sleep(1)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
`

func TestPollLoopReaperReapsLate(t *testing.T) {
	zombietest.SkipSlow(t)
	requireSched(t)
	cmd := zombietest.Python(t, pollReaper)
	p := judgedWithZombies(t, cmd.Process.Pid, 3*time.Second)
	rp := p.Reaping
	if p.Cause != diagnose.ReapsLate || rp == nil || rp.Reaped == 0 || rp.ReapDelayMaxSeconds == nil {
		t.Fatalf("a reaper polling once a second: cause %s, reaping %+v: %q", p.Cause, rp, p.Diagnosis)
	}
	// It reaps about a second after the exits: the delay seen is at most
	// the loop and the observation's step (a busy machine may add more).
	if d := *rp.ReapDelayMaxSeconds; d <= 0 || d > 10 {
		t.Errorf("reap delay %.2fs, want about 1s", d)
	}
	if strings.Contains(p.Diagnosis, "does not") {
		t.Errorf("diagnosis accuses a reaper: %q", p.Diagnosis)
	}
}

func TestForkingTCPServerReapsLate(t *testing.T) {
	zombietest.SkipSlow(t)
	requireSched(t)
	cmd := zombietest.Python(t, `
import socketserver
class H(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"ok")
srv = socketserver.ForkingTCPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`)
	port := listeningPort(t, cmd.Process.Pid)
	// Requests at a bounded pace from this process: every one leaves a
	// child that exits and waits for ForkingMixIn's next collect_children
	// (after the next request, or the 0.5 s poll).
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			if c, err := net.DialTimeout("tcp", port, 2*time.Second); err == nil {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				c.Read(make([]byte, 2))
				c.Close()
			}
		}
	}()
	defer func() { close(stop); <-done }()
	p := judgedWithZombies(t, cmd.Process.Pid, 3*time.Second)
	if p.Cause != diagnose.ReapsLate {
		t.Errorf("socketserver.ForkingTCPServer under requests: cause %s, reaping %+v: %q", p.Cause, p.Reaping, p.Diagnosis)
	}
}

// listeningPort is 127.0.0.1:PORT of the TCP socket pid listens on.
func listeningPort(t *testing.T, pid int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		p, err := liveReader(t).Process(context.Background(), pid, model.Options{FDList: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.FDList {
			if e.TCPState == "LISTEN" && strings.HasPrefix(e.Local, "127.0.0.1:") {
				return e.Local
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("pid %d listens on no 127.0.0.1 port", pid)
	return ""
}

func TestStoppedReaperGetsNoGuess(t *testing.T) {
	zombietest.SkipSlow(t)
	requireSched(t)
	cmd := zombietest.Python(t, pollReaper)
	pid := cmd.Process.Pid
	judgedWithZombies(t, pid, 0) // it holds zombies now
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Wait until it is stopped with zombies (it may have reaped them just
	// before the signal: it forks more only when running, so resume it
	// and try again).
	var p *model.Process
	deadline := time.Now().Add(60 * time.Second)
	for {
		p = observeOnce(t, pid, 2*time.Second)
		if (p.State == "T" || p.State == "t") && p.Zombies > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never stopped with zombies: state %s, %d zombies", p.State, p.Zombies)
		}
		syscall.Kill(pid, syscall.SIGCONT)
		time.Sleep(300 * time.Millisecond)
		syscall.Kill(pid, syscall.SIGSTOP)
		time.Sleep(20 * time.Millisecond)
	}
	if p.Cause != diagnose.Stopped || strings.Contains(p.Diagnosis, "once it runs:") || !strings.Contains(p.Diagnosis, "kill -CONT") {
		t.Errorf("stopped: cause %s: %q", p.Cause, p.Diagnosis)
	}
	time.Sleep(model.StaleAge) // its zombies go stale while it is stopped
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Resumed, it reaps in its loop: observed, never "does not wait".
	q := observeOnce(t, pid, 4*time.Second)
	if q.Cause != diagnose.ReapsLate && q.Cause != diagnose.None {
		t.Errorf("resumed: cause %s, reaping %+v: %q", q.Cause, q.Reaping, q.Diagnosis)
	}
}

func TestSubreaperInitReapsLate(t *testing.T) {
	zombietest.SkipSlow(t)
	requireSched(t)
	// An init-like subreaper: children that fork a grandchild and exit, so
	// the grandchild is an orphan it adopts; it reaps every second.
	cmd := zombietest.Python(t, `
import ctypes, os, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
print("ready", flush=True)
while True:
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(0.05)
            os._exit(0)
        os._exit(0)
    time.sleep(1)
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
`)
	p := judgedWithZombies(t, cmd.Process.Pid, 3*time.Second)
	if p.Cause != diagnose.ReapsLate {
		t.Errorf("a subreaper reaping every second: cause %s, reaping %+v: %q", p.Cause, p.Reaping, p.Diagnosis)
	}
}

func TestTrueNonReaperIsStillCalledOne(t *testing.T) {
	zombietest.SkipSlow(t)
	requireSched(t)
	cmd := zombietest.Python(t, `
import os, time
kids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    kids.append(pid)
# Ready once all three have exited (waitid WNOWAIT leaves them zombies):
# on a busy machine a child may not have run yet when we are read.
for pid in kids:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
print("ready", flush=True)
time.sleep(600)
`)
	pid := cmd.Process.Pid
	// Young, and observed: nothing reaped, and by the end they are stale.
	p := observeOnce(t, pid, 3*time.Second)
	if p.Cause != diagnose.NoReaper || !strings.Contains(p.Diagnosis, "none was reaped in the") {
		t.Errorf("observed non-reaper: cause %s, reaping %+v: %q", p.Cause, p.Reaping, p.Diagnosis)
	}
	// Stale at one reading, observed or not: called one, with the evidence.
	p = readUntil(t, pid, func(p *model.Process) bool { return p.Reaping != nil && p.Reaping.Stale == 3 })
	if p.Cause != diagnose.NoReaper || !strings.Contains(p.Diagnosis, "all exited 2.0 s ago or more") {
		t.Errorf("non-reaper with stale zombies: cause %s: %q", p.Cause, p.Diagnosis)
	}
}

// TestExitAgeIsTheExit: a zombie's exit age is the time since it exited,
// to within 0.3 s, not since it started.
func TestExitAgeIsTheExit(t *testing.T) {
	zombietest.SkipSlow(t)
	requireSched(t)
	// A child that lives 1.5 s, then exits: its start age and exit age
	// differ by that much.
	cmd := exec.Command("sleep", "1.5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Wait() }()
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var exited time.Time
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _, err := fs.ReadStat(cmd.Process.Pid, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == 'Z' {
			exited = time.Now() // within a millisecond's poll of its exit
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sleep 1.5 did not exit")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(2*time.Second - time.Since(exited))
	p, err := liveReader(t).Process(context.Background(), os.Getpid(), model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range p.ZombieList {
		if z.PID != cmd.Process.Pid {
			continue
		}
		want := time.Since(exited).Seconds()
		if z.ExitAgeSeconds == nil || z.ExitAgeFrom != "sched" || math.Abs(*z.ExitAgeSeconds-want) > 0.3 {
			t.Errorf("exit age %v (from %q), want %.2f ± 0.3", z.ExitAgeSeconds, z.ExitAgeFrom, want)
		}
		if z.AgeSeconds < want+1.2 {
			t.Errorf("start age %.2f: want at least the 1.5 s it lived more than its exit age %.2f", z.AgeSeconds, want)
		}
		return
	}
	t.Fatalf("zombie %d not among this process's: %+v", cmd.Process.Pid, p.ZombieList)
}
