// Events measures the process-events source: its CPU while the host runs
// a given number of exits a second (a python3 forker, each child reaped at
// once), and what a burst does (exits seen, events lost).
//
//	go run ./bench/events                 # 1,000 exits/s for 10 s, then a burst of 10,000
//	go run ./bench/events --rate 2000 --seconds 5 --burst 0
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/events"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

const forker = `
import os, sys, time
rate, seconds, burst = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def child():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
end = time.monotonic() + seconds
n = 0
start = time.monotonic()
while time.monotonic() < end:
    child(); n += 1
    ahead = start + n / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)
print(n, flush=True)
sys.stdin.readline()
t = time.monotonic()
for i in range(burst):
    child()
print(burst, time.monotonic() - t, flush=True)
`

func cpu() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	rate := flag.Int("rate", 1000, "exits a second")
	seconds := flag.Float64("seconds", 10, "how long")
	burst := flag.Int("burst", 10000, "forks as fast as they go, after")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "events:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	fs, err := proc.New("/proc")
	if err != nil {
		fmt.Fprintln(os.Stderr, "events:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src, err := events.Start(ctx, fs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "events:", err)
		os.Exit(1)
	}
	cmd := exec.Command("/usr/bin/python3", "-c", forker, fmt.Sprint(*rate), fmt.Sprint(*seconds), fmt.Sprint(*burst))
	out, _ := cmd.StdoutPipe()
	in, _ := cmd.StdinPipe()
	cpu0, t0 := cpu(), time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "events:", err)
		os.Exit(1)
	}
	var n int
	fmt.Fscan(out, &n)
	cpu1, t1 := cpu(), time.Now()
	time.Sleep(500 * time.Millisecond) // the last reaps noticed
	seen := src.Parent(cmd.Process.Pid)
	fmt.Fprintln(in) // now the burst
	var b int
	var bs float64
	fmt.Fscan(out, &b, &bs)
	cmd.Wait()
	time.Sleep(500 * time.Millisecond) // the last reaps noticed
	all := src.Parent(cmd.Process.Pid)
	wall := t1.Sub(t0).Seconds()
	fmt.Printf("%d exits in %.1f s (%.0f/s): the events source used %.1f%% of one core; exits seen %d, reaped %d\n",
		n, wall, float64(n)/wall, 100*(cpu1-cpu0).Seconds()/wall, seen.Exits, seen.Reaped)
	if b > 0 {
		fmt.Printf("a burst of %d forks in %.2f s: exits seen %d of %d, reaped %d, events lost (ENOBUFS) %d\n",
			b, bs, all.Exits-seen.Exits, b, all.Reaped-seen.Reaped, src.Lost())
	}
}
