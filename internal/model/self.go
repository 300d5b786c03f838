package model

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// MinFreeSlots is how many tasks zombiewatch needs free below its uid's
// RLIMIT_NPROC, once started (its own threads already counted), to finish
// a reading on one thread of its own. Measured as uid 65534 under prlimit
// --nproc: see docs/usage.md ("Near RLIMIT_NPROC").
const MinFreeSlots = 2

// fewSlots is the headroom under which the reading keeps to one thread of
// its own (GOMAXPROCS 1), trading speed for not dying.
const fewSlots = 32

// SelfHeadroom tells, for this process's real uid, how many tasks it runs
// and its soft RLIMIT_NPROC; limited is false when the limit does not bind
// (root, or unlimited), in which case nothing was counted.
func (r *Reader) SelfHeadroom(ctx context.Context) (tasks, limit int, limited bool) {
	uid := os.Getuid()
	var rl unix.Rlimit
	if uid == 0 || unix.Getrlimit(unix.RLIMIT_NPROC, &rl) != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<30 {
		return 0, 0, false
	}
	n, err := r.uidTasks(ctx, uid)
	if err != nil {
		return 0, 0, false
	}
	return n, int(rl.Cur), true
}

// ThreadBudget keeps this process alive near its own uid's RLIMIT_NPROC,
// the situation zombiewatch exists to diagnose: there the Go runtime dies
// with a trace when it cannot start a thread. With few slots left it keeps
// to one thread of its own; with too few, it says so in one line.
func (r *Reader) ThreadBudget(ctx context.Context) error {
	tasks, limit, limited := r.SelfHeadroom(ctx)
	switch {
	case !limited:
	case limit-tasks < MinFreeSlots:
		return fmt.Errorf("uid %d runs %d of the %d tasks its RLIMIT_NPROC allows (zombiewatch's own threads among them): too few left for the threads a reading needs; run it as root or as another user (it reads /proc as any uid), or raise ulimit -u",
			os.Getuid(), tasks, limit)
	case limit-tasks < fewSlots:
		runtime.GOMAXPROCS(1)
	}
	return nil
}

func selfPID() int { return os.Getpid() }
