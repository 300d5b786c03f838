package watch_test

import (
	"context"
	"errors"
	"github.com/zombiewatch/zombiewatch/internal/watch"
	"os"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/events"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// TestWatchAgreesWithItsReaps: watching a parent that reaps once a second
// (no SIGCHLD handler), the watch's cause agrees with the reaps it counts
// itself: never "not reaping" beside reaps, and "reaps late" once seen.
func TestWatchAgreesWithItsReaps(t *testing.T) {
	zombietest.SkipSlow(t)
	if _, err := os.Stat("/proc/self/sched"); err != nil {
		t.Skipf("no /proc/self/sched: exit ages unknown here: %v", err)
	}
	cmd := zombietest.Python(t, `
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
`)
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, withEvents := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		s := &watch.Sampler{Reader: model.NewReader(fs), PID: cmd.Process.Pid}
		if withEvents {
			src, err := events.Start(ctx, fs)
			if errors.Is(err, events.ErrUnavailable) {
				cancel()
				t.Logf("process events unavailable (%v): watched by re-reads only", err)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			s.Events = src
		}
		late := 0
		// Samples every 250 ms until the watch has seen reaps and said so,
		// at most 60 s (a busy machine is slow, not wrong).
		deadline := time.Now().Add(60 * time.Second)
		for late < 3 && time.Now().Before(deadline) {
			sample, err := s.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			switch sample.Cause {
			case diagnose.ReapsLate:
				late++
			case diagnose.None, diagnose.TooYoung:
			default:
				t.Errorf("events %v, sample %d: cause %s beside its own reaps (reaped %v, zombies_reaped %v, reaping %+v): %q",
					withEvents, sample.Seq, sample.Cause, sample.Reaped, sample.ZombiesReaped, sample.Reaping, sample.Diagnosis)
			}
			time.Sleep(250 * time.Millisecond)
		}
		cancel()
		if late < 3 {
			t.Errorf("events %v: the watch never said it reaps late in 60 s", withEvents)
		}
	}
}
