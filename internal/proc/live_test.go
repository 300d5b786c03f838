package proc

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func liveFS(t testing.TB) *FS {
	t.Helper()
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestLiveBootTime: the boot time is btime to the microsecond, not to the
// second (btime is truncated): within a second after it, and a process
// started now has a start time of now to within a clock tick and the
// time fork takes.
func TestLiveBootTime(t *testing.T) {
	fs := liveFS(t)
	got, err := fs.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	st, err := fs.fs.Stat()
	if err != nil {
		t.Fatal(err)
	}
	btime := time.Unix(int64(st.BootTime), 0)
	if d := got.Sub(btime); d < -50*time.Millisecond || d > time.Second+50*time.Millisecond {
		t.Errorf("boot time %v, btime %v: want within the second after btime", got, btime)
	}
	before := time.Now()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	s, _, err := fs.ReadStat(cmd.Process.Pid, nil)
	if err != nil {
		t.Fatal(err)
	}
	start, err := fs.StartTime(s.StartTime)
	if err != nil {
		t.Fatal(err)
	}
	// Start ticks are 10 ms; allow one either side.
	if start.Before(before.Add(-20*time.Millisecond)) || start.After(after.Add(20*time.Millisecond)) {
		t.Errorf("a process started between %v and %v reads start %v", before.Format("15:04:05.000"), after.Format("15:04:05.000"), start.Format("15:04:05.000"))
	}
}

// TestLiveIsLive: this process's /proc is the live host; a copied tree is not.
func TestLiveIsLive(t *testing.T) {
	if !liveFS(t).Live() {
		t.Errorf("/proc: Live() = false, want true")
	}
	fs, err := New("../../testdata/proc/fds")
	if err != nil {
		t.Fatal(err)
	}
	if fs.Live() || fs.Real() {
		t.Errorf("a fixture tree: Live() %v, Real() %v; want false, false", fs.Live(), fs.Real())
	}
	_ = os.Getpid
	_ = time.Second
}
