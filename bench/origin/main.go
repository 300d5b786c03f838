// Origin measures what --origin's tracer costs: the CPU time of a loop
// that opens and closes /dev/null as fast as it can and at 100,000 a
// second, and the rate of one that forks /bin/true and waits, untraced
// and traced, in interleaved rounds; the
// same open loop while the tracer follows another process (every
// process's system calls pass the tracepoint) and while an empty program
// is on the tracepoint (what the tracepoint costs by itself, the floor
// under the tracer's work); the kernel memory of the tracer's maps; and the time from starting a trace to its first report.
//
//	go run ./bench/origin [-rounds 5] [-for 2s]   (as root)
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/origin"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

func main() {
	rounds := flag.Int("rounds", 5, "interleaved rounds of each case")
	each := flag.Duration("for", 2*time.Second, "how long each loop runs")
	flag.Parse()
	if err := run(*rounds, *each); err != nil {
		fmt.Fprintln(os.Stderr, "bench/origin:", err)
		os.Exit(1)
	}
}

func run(rounds int, each time.Duration) error {
	// Another process to trace, for the cost to everyone else.
	other := exec.Command("sleep", "3600")
	if err := other.Start(); err != nil {
		return err
	}
	defer func() { other.Process.Kill(); other.Wait() }()

	self, another := trace(os.Getpid()), trace(other.Process.Pid)
	cases := []struct {
		name   string
		attach func() (io.Closer, error) // what runs in the kernel during the loop; nil for nothing
		loop   func(time.Duration) (float64, error)
	}{
		{"open+close at full speed, untraced: CPU ns each", nil, openClose},
		{"open+close at full speed, traced: CPU ns each", self, openClose},
		{"open+close at full speed, another process traced: CPU ns each", another, openClose},
		{"open+close at full speed, an empty program on sys_exit: CPU ns each", emptyProgram, openClose},
		{"open+close at 100,000/s, untraced: CPU ns each", nil, paced},
		{"open+close at 100,000/s, traced: CPU ns each", self, paced},
		{"open+close at 100,000/s, an empty program on sys_exit: CPU ns each", emptyProgram, paced},
		{"fork+exec+wait, untraced: per second", nil, forkWait},
		{"fork+exec+wait, traced: per second", self, forkWait},
	}
	rates := make([][]float64, len(cases))
	for range rounds {
		for i, c := range cases {
			var attached io.Closer
			if c.attach != nil {
				var err error
				if attached, err = c.attach(); err != nil {
					return err
				}
			}
			rate, err := c.loop(each)
			if attached != nil {
				attached.Close()
			}
			if err != nil {
				return err
			}
			rates[i] = append(rates[i], rate)
		}
	}
	fmt.Printf("%s, %d cores, %s; %d rounds of %s each, medians\n\n", time.Now().Format("2006-01-02"), numCPU(), kernel(), rounds, each)
	fmt.Println("| loop | measured | × untraced |")
	fmt.Println("|---|---:|---:|")
	for i, c := range cases {
		base := median(rates[0])
		switch {
		case strings.HasPrefix(c.name, "fork"):
			base = median(rates[7])
		case strings.Contains(c.name, "100,000"):
			base = median(rates[4])
		}
		fmt.Printf("| %s | %.0f | %.3f |\n", c.name, median(rates[i]), median(rates[i])/base)
	}
	return startAndMemory()
}

// trace attaches a tracer following pid.
func trace(pid int) func() (io.Closer, error) {
	return func() (io.Closer, error) { return origin.Trace(pid) }
}

// emptyProgram attaches a program that returns at once to the raw
// sys_exit tracepoint, as the tracer's is: what the tracepoint itself
// costs every system call, the floor under the tracer's own work.
func emptyProgram() (io.Closer, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "zwempty", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "sys_exit",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}, License: "GPL",
	})
	if err != nil {
		return nil, err
	}
	defer prog.Close()
	return link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
}

// openClose opens and closes /dev/null as fast as it can for d: the CPU
// time of the thread per open+close, in ns.
func openClose(d time.Duration) (float64, error) { return cpuPerOpen(d, 0) }

// paced opens and closes /dev/null 100,000 times a second for d: the CPU
// time of the thread per open+close, in ns (what the tracer adds to a
// process that opens at that rate and does other work besides; the
// budget of stack walks a second weighs more here than at full speed).
func paced(d time.Duration) (float64, error) { return cpuPerOpen(d, 10*time.Microsecond) }

// cpuPerOpen opens and closes /dev/null for d, one every pace (0: as
// fast as it can), on one locked thread: that thread's CPU time per
// open+close, in ns. CPU time, not a rate: what other processes of a
// busy machine take does not count.
func cpuPerOpen(d, pace time.Duration) (float64, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &before)
	n, start := 0, time.Now()
	for time.Since(start) < d {
		for range 1000 {
			fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			if err != nil {
				return 0, err
			}
			syscall.Close(fd)
		}
		n += 1000
		if pace > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(n) * pace)))
		}
	}
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &after)
	return float64(after.Nano()-before.Nano()) / float64(n), nil
}

// forkWait starts /bin/true and waits for it, for d: the rate.
func forkWait(d time.Duration) (float64, error) {
	n, start := 0, time.Now()
	for time.Since(start) < d {
		if err := exec.Command("/bin/true").Run(); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// startAndMemory measures the time from Trace to a first report (a
// reading joined and resolved) on this process holding 1,000 descriptors,
// and the kernel memory of the maps once they hold them.
func startAndMemory() error {
	start := time.Now()
	t, err := origin.Trace(os.Getpid())
	if err != nil {
		return err
	}
	defer t.Close()
	attached := time.Since(start)
	var held []int
	for range 1000 {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		held = append(held, fd)
	}
	defer func() {
		for _, fd := range held {
			syscall.Close(fd)
		}
	}()
	joinStart := time.Now()
	fs, err := proc.New("/proc")
	if err != nil {
		return err
	}
	p, err := model.NewReader(fs).Process(context.Background(), os.Getpid(), model.Options{FDList: true})
	if err != nil {
		return err
	}
	rec, err := t.Recorded(os.Getpid())
	if err != nil {
		return err
	}
	sym, err := origin.NewSymbolizer("/proc", os.Getpid())
	if err != nil {
		return err
	}
	r := origin.Join(p, rec, time.Second, sym.Resolve)
	joined := time.Since(joinStart)
	fmt.Printf("\nstarting the tracer (BTF read, maps made, programs loaded and attached): %s\n", attached.Round(time.Millisecond))
	fmt.Printf("the report once traced (a reading of %d fds, records, symbols, join: %d groups): %s\n", len(p.FDList), len(r.FDs), joined.Round(time.Millisecond))
	fmt.Printf("kernel memory of the maps holding %d records: %s\n", len(rec.FDs), mapMemory())
	return nil
}

// mapMemory sums the memlock of this process's BPF maps, from fdinfo.
func mapMemory() string {
	dirs, _ := filepath.Glob("/proc/self/fdinfo/*")
	var total int64
	var each []string
	for _, d := range dirs {
		f, err := os.Open(d)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		isMap, mem := false, int64(0)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":\t")
			switch k {
			case "map_type":
				isMap = true
			case "memlock":
				mem, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		f.Close()
		if isMap {
			total += mem
			each = append(each, fmt.Sprintf("%.1f MiB", float64(mem)/(1<<20)))
		}
	}
	return fmt.Sprintf("%.1f MiB (%s)", float64(total)/(1<<20), strings.Join(each, ", "))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}

func kernel() string {
	data, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(data))
}
