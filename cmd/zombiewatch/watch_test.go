package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/load"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// TestCtlAsDocumented: zombiewatch ctl switches a running server and
// prints its settings and counters as docs/server.md shows them.
func TestCtlAsDocumented(t *testing.T) {
	pid, _ := startServer(t, "--reaper", "off", "--close-conn=false")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"ctl", "--pid", strconv.Itoa(pid), "reaper=loop", "close-conn=on"}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "reaper=loop close-conn=on") {
		t.Errorf("ctl printed %q; want the new settings", out.String())
	}
	checkCaptured(t, "docs/server.md", "ctl", out.String())
}

// startServer runs "zombiewatch server" (this test binary) on a free
// loopback port; cleanup stops it with SIGTERM and reaps it.
func startServer(t *testing.T, args ...string) (pid int, addr string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, append([]string{"server", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		zombietest.ReapAll()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := control.Call(cmd.Process.Pid, control.Request{}, time.Second)
		if err == nil {
			return cmd.Process.Pid, st.Addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not answer on its control socket: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// trickle sends the server 4 requests every 100 ms until ctx ends.
func trickle(ctx context.Context, addr string) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for ctx.Err() == nil {
		load.Run(ctx, load.Config{Addr: addr, Clients: 1, Conns: 4, Timeout: 5 * time.Second})
		<-tick.C
	}
}

// medianSlopePerMin is the Theil-Sen rate per minute of vals over times,
// as the watch computes it: the median slope between every two samples.
func medianSlopePerMin(times []time.Time, vals []int) float64 {
	var slopes []float64
	for i := range times {
		for j := i + 1; j < len(times); j++ {
			if dt := times[j].Sub(times[i]).Minutes(); dt > 0 {
				slopes = append(slopes, float64(vals[j]-vals[i])/dt)
			}
		}
	}
	slices.Sort(slopes)
	n := len(slopes)
	if n%2 == 1 {
		return slopes[n/2]
	}
	return (slopes[n/2-1] + slopes[n/2]) / 2
}

// TestWatchLive watches a server whose zombies and fds grow under load.
// It judges what it can know whatever the machine's speed (the race
// detector slows everything): the rates are the counts' change over the
// samples' own times, each request adds one child and one fd, and the
// projection follows from the rate.
func TestWatchLive(t *testing.T) {
	zombietest.SkipSlow(t)
	pid, addr := startServer(t, "--reaper", "off", "--close-conn=false")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go trickle(ctx, addr)
	var out bytes.Buffer
	// 8 samples 500 ms apart: a window long enough (3 s) to project.
	err := run(ctx, []string{"--pid", fmt.Sprint(pid), "--watch", "--interval", "500ms", "--count", "8", "--json", "--fd-types=false"}, nil, &out, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d JSON lines for --count 8:\n%s", len(lines), out.String())
	}
	type sample struct {
		Sample        int       `json:"sample"`
		Time          time.Time `json:"time"`
		Children      int       `json:"children"`
		Zombies       int       `json:"zombies"`
		FDs           int       `json:"fds"`
		FDSoft        int       `json:"fd_soft_limit"`
		ZombiesPerMin float64   `json:"zombies_per_min"`
		FDsPerMin     float64   `json:"fds_per_min"`
		FDLimitIn     *float64  `json:"fd_limit_in_seconds"`
		Server        *struct {
			Reaper string `json:"reaper"`
		} `json:"server"`
	}
	samples := make([]sample, len(lines))
	for i, l := range lines {
		if err := json.Unmarshal([]byte(l), &samples[i]); err != nil {
			t.Fatal(err)
		}
	}
	first, last := samples[0], samples[7]
	var times []time.Time
	var fdsOf, zombiesOf []int
	for _, s := range samples {
		times, fdsOf, zombiesOf = append(times, s.Time), append(fdsOf, s.FDs), append(zombiesOf, s.Zombies)
	}
	t.Logf("after %d samples: %d zombies, %.0f/min; fds %d, %.0f/min", last.Sample, last.Zombies, last.ZombiesPerMin, last.FDs, last.FDsPerMin)
	if last.Sample != 8 || last.Server == nil || last.Server.Reaper != "off" {
		t.Errorf("sample %d, server %+v: want sample 8 of a server with reaper off", last.Sample, last.Server)
	}
	df, dz := last.FDs-first.FDs, last.Zombies-first.Zombies
	if df < 1 {
		t.Fatalf("fds %d -> %d over 8 samples: the load made no request the watch could see", first.FDs, last.FDs)
	}
	// The rates are the median slope between every two samples of the
	// window (all 8), per minute of the samples' own clock.
	for _, c := range []struct {
		what      string
		got, want float64
	}{{"fds", last.FDsPerMin, medianSlopePerMin(times, fdsOf)}, {"zombies", last.ZombiesPerMin, medianSlopePerMin(times, zombiesOf)}} {
		if diff := c.got - c.want; diff < -1 || diff > 1 {
			t.Errorf("%s %.1f/min; the samples say %.1f/min", c.what, c.got, c.want)
		}
	}
	// Each request adds one child (alive, or a zombie once it is done)
	// and one fd. A sample may also catch a few fds in passing: an accept
	// not yet forked, fork's pipe, the previous sample's control socket.
	if dc := last.Children - first.Children; dc < df-5 || dc > df+5 {
		t.Errorf("children +%d, fds +%d between the first and last sample: want one of each per request", dc, df)
	}
	if dz > df+5 {
		t.Errorf("zombies +%d outran the requests (fds +%d)", dz, df)
	}
	if last.FDLimitIn == nil {
		t.Fatal("fd_limit_in_seconds is null while fds grow")
	}
	want := float64(last.FDSoft-last.FDs) / (last.FDsPerMin / 60)
	if got := *last.FDLimitIn; got < want*0.95 || got > want*1.05 {
		t.Errorf("fd limit in %.0f s; (soft limit - fds) / rate says %.0f s", got, want)
	}
}

// startTmux runs this binary as zombiewatch with args (a format with the
// rest) in a detached tmux session "w" of width x height, on a server of
// its own, ended at cleanup; it returns a tmux command runner.
func startTmux(t *testing.T, name string, width, height int, args string) func(args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: .ci/run installs it")
	}
	self, _ := os.Executable()
	sock := fmt.Sprintf("%s%d", name, os.Getpid())
	tmux := func(args ...string) string {
		out, err := exec.Command("tmux", append([]string{"-L", sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v %s", args, err, out)
		}
		return string(out)
	}
	tmux("new-session", "-d", "-s", "w", "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), "env ZW_TEST_MAIN=1 "+self+" "+args)
	t.Cleanup(func() { exec.Command("tmux", "-L", sock, "kill-server").Run() })
	return tmux
}

// TestWatchKeysInTmux drives the watcher on a terminal: r cycles the
// server's reaper, c toggles close-conn, q quits; the screen shows each.
func TestWatchKeysInTmux(t *testing.T) {
	zombietest.SkipSlow(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: .ci/run installs it")
	}
	pid, addr := startServer(t, "--reaper", "off")
	if res := load.Run(context.Background(), load.Config{Addr: addr, Clients: 1, Conns: 12, Timeout: 5 * time.Second}); res.OK() != 12 {
		t.Fatalf("load: %v", res)
	}
	tmux := startTmux(t, "zwtest", 160, 50, fmt.Sprintf("--pid %d --watch --interval 200ms", pid))
	screen := func(want ...string) string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			text := tmux("capture-pane", "-p", "-t", "w")
			// Columns widen with their content: compare with runs of
			// spaces as one.
			squeeze := func(s string) string {
				return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == ' ' }), " ")
			}
			missing := ""
			for _, w := range want {
				if !strings.Contains(squeeze(text), squeeze(w)) {
					missing = w
				}
			}
			if missing == "" {
				return text
			}
			if time.Now().After(deadline) {
				t.Fatalf("screen lacks %q:\n%s", missing, text)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	screen("keys: r reaper (now off)  c close-conn (now on)  q quit", "zombies    12", fmt.Sprintf("pid %d holds 12 zombies", pid))

	tmux("send-keys", "-t", "w", "r")
	screen("keys: r reaper (now wait)", "switched: reaper=wait close-conn=on", "zombies 0", "server reaper=wait")
	tmux("send-keys", "-t", "w", "c")
	screen("c close-conn (now off)", "close-conn=off, ")
	if st, err := control.Call(pid, control.Request{}, time.Second); err != nil || st.Reaper != control.ReaperWait || st.CloseConn {
		t.Errorf("server after r and c: %+v, %v; want reaper=wait close-conn=off", st, err)
	}

	tmux("send-keys", "-t", "w", "q")
	deadline := time.Now().Add(5 * time.Second)
	sock := fmt.Sprintf("zwtest%d", os.Getpid()) // startTmux's server
	for exec.Command("tmux", "-L", sock, "has-session", "-t", "w").Run() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not quit on q")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatchTargetDiesLive: a watched process that is killed ends the
// watch within an interval, with its exit status (it is a zombie of this
// test until cleanup reaps it).
func TestWatchTargetDiesLive(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := &zombietest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"--pid", fmt.Sprint(cmd.Process.Pid), "--watch", "--interval", "100ms"}, nil, out, os.Stderr)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), fmt.Sprint(cmd.Process.Pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("no sample of pid %d: %q", cmd.Process.Pid, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	killed := time.Now()
	cmd.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch ended with %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch still running 5 s after its target died")
	}
	want := fmt.Sprintf("pid %d exited (killed by SIGKILL) and is a zombie until its parent, pid %d, waits for it", cmd.Process.Pid, os.Getpid())
	if !strings.Contains(out.String(), want) {
		t.Errorf("watch output lacks %q:\n%s", want, out.String())
	}
	t.Logf("watch ended %s after the kill", time.Since(killed).Round(time.Millisecond))
}

// TestWatchFits80x24: on an 80x24 terminal the screen keeps its title and
// key help, cuts long lines (at a word, with "…") and wraps none; after a
// resize to 120x40 the chart has room again.
func TestWatchFits80x24(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: .ci/run installs it")
	}
	pid, addr := startServer(t, "--reaper", "off", "--close-conn=false")
	if res := load.Run(context.Background(), load.Config{Addr: addr, Clients: 1, Conns: 5, Timeout: 5 * time.Second}); res.OK() != 5 {
		t.Fatalf("load: %v", res)
	}
	tmux := startTmux(t, "zwfit", 80, 24, fmt.Sprintf("--pid %d --watch --interval 100ms", pid))
	waitScreen := func(ok func(lines []string) bool) []string {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			lines := strings.Split(strings.TrimRight(tmux("capture-pane", "-p", "-J", "-t", "w"), "\n"), "\n")
			if ok(lines) || time.Now().After(deadline) {
				return lines
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	lines := waitScreen(func(l []string) bool { return len(l) > 5 && strings.Contains(strings.Join(l, "\n"), "keys: ") })
	text := strings.Join(lines, "\n")
	if !strings.HasPrefix(lines[0], "zombiewatch: pid ") || !strings.Contains(lines[1], "keys: ") {
		t.Fatalf("title and key help not on top at 80x24:\n%s", text)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("a line of %d columns at 80x24: %q", n, l)
		}
	}
	if len(lines) > 24 || !strings.Contains(text, "…") || strings.Contains(text, "┤") {
		t.Errorf("at 80x24: %d lines, long lines cut %v, chart shown %v (no room for it):\n%s", len(lines), strings.Contains(text, "…"), strings.Contains(text, "┤"), text)
	}
	tmux("resize-window", "-t", "w", "-x", "120", "-y", "40")
	lines = waitScreen(func(l []string) bool { return strings.Contains(strings.Join(l, "\n"), "┤") })
	if !strings.Contains(strings.Join(lines, "\n"), "┤") {
		t.Errorf("after a resize to 120x40 the chart did not come back:\n%s", strings.Join(lines, "\n"))
	}
	tmux("send-keys", "-t", "w", "q")
}

// TestHostWatchRanksTheLeak: a process leaking fds toward its limit ranks
// first in the host-wide watch, its rate the change of its count over the
// samples' own times, and RLIMIT_NOFILE named as the limit it meets.
func TestHostWatchRanksTheLeak(t *testing.T) {
	zombietest.SkipSlow(t)
	cmd := zombietest.Python(t, `
import os, resource, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
keep = []
print("ready", flush=True)
start = time.monotonic()
while len(keep) < 3000:
    # 100 a second, caught up against the clock: the rate is known
    # however the scheduler runs this process.
    while len(keep) < int((time.monotonic() - start) * 100):
        keep.append(os.open("/dev/null", os.O_RDONLY))
    time.sleep(0.01)
time.sleep(120)`)
	type growing struct {
		PID            int      `json:"pid"`
		FDs            int      `json:"fds"`
		FDsPerMin      float64  `json:"fds_per_min"`
		Limit          string   `json:"limit"`
		LimitInSeconds *float64 `json:"limit_in_seconds"`
		Groups         []struct {
			Target string `json:"target"`
			Delta  int    `json:"delta"`
		} `json:"fd_groups_growing"`
	}
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--watch", "--interval", "250ms", "--count", "6", "--json"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var last struct {
		Sample        int       `json:"sample"`
		WindowSeconds float64   `json:"window_seconds"`
		Growing       []growing `json:"growing"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Sample != 6 || len(last.Growing) == 0 {
		t.Fatalf("sample %d, growing %+v", last.Sample, last.Growing)
	}
	// Other packages' tests run at the same time and may leak faster
	// toward a nearer limit: the leak must be listed, and whatever ranks
	// above it must be nearer its limit.
	i := slices.IndexFunc(last.Growing, func(g growing) bool {
		return g.PID == cmd.Process.Pid
	})
	if i < 0 {
		t.Fatalf("the leaking pid %d is not among the growing: %+v", cmd.Process.Pid, last.Growing)
	}
	g := last.Growing[i]
	if g.Limit != "RLIMIT_NOFILE" || g.LimitInSeconds == nil || g.FDsPerMin <= 0 {
		t.Fatalf("%+v; want pid %d leaking fds toward RLIMIT_NOFILE", g, cmd.Process.Pid)
	}
	for _, above := range last.Growing[:i] {
		if above.LimitInSeconds == nil || *above.LimitInSeconds > *g.LimitInSeconds {
			t.Errorf("pid %d ranks above the leak (limit in %v s) though farther from a limit than its %.0f s", above.PID, above.LimitInSeconds, *g.LimitInSeconds)
		}
	}
	// 6,000 a minute; the samples' reads are spread over a pass, so
	// within a fifth over a window of five 250 ms intervals.
	if g.FDsPerMin < 4800 || g.FDsPerMin > 7200 {
		t.Errorf("fds per minute %.0f; the leak opens 6000", g.FDsPerMin)
	}
	// The group that grows is named: the leaked descriptors' file.
	if len(g.Groups) == 0 || g.Groups[0].Target != "/dev/null" || g.Groups[0].Delta <= 0 {
		t.Errorf("fd groups growing %+v; want /dev/null first", g.Groups)
	}
	want := float64(4096-g.FDs) / (g.FDsPerMin / 60)
	if got := *g.LimitInSeconds; got < want*0.95-1 || got > want*1.05+1 {
		t.Errorf("limit in %.1f s; (4096 - %d fds) / %.0f per min says %.1f s", got, g.FDs, g.FDsPerMin, want)
	}
}

// TestWatchShowsLateReaping: a parent that reaps each child 300 ms after
// it exits holds at most one zombie at any instant, which a poll finds
// harmless; the process events show the 300 ms.
func TestWatchShowsLateReaping(t *testing.T) {
	zombietest.SkipSlow(t)
	cmd := zombietest.Python(t, `
import os, time
print("go", flush=True)
for i in range(200):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    time.sleep(0.3)
    os.waitpid(pid, 0)
time.sleep(60)`)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"--pid", strconv.Itoa(cmd.Process.Pid), "--watch", "--interval", "400ms", "--count", "6", "--json"}, nil, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), "no exit-to-reap latencies") {
		t.Skipf("process events refused here: %s", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var last struct {
		Zombies int      `json:"zombies"`
		Events  bool     `json:"events"`
		Reaped  *int64   `json:"reaped"`
		P50     *float64 `json:"reap_latency_p50_seconds"`
		Window  float64  `json:"reap_latency_window_seconds"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if !last.Events || last.P50 == nil || *last.P50 < 0.29 || *last.P50 > 2 || last.Window != 60 || last.Zombies > 1 {
		t.Errorf("last sample: events %v, p50 %s s over %v s, %d zombies; want the 0.3 s late reaping shown while a poll sees at most 1 zombie",
			last.Events, fmtPtr(last.P50), last.Window, last.Zombies)
	}
}

func fmtPtr(f *float64) string {
	if f == nil {
		return "null"
	}
	return strconv.FormatFloat(*f, 'f', 3, 64)
}

// TestHostWatchFindsSlowReaper: a parent that reaps each child 1.2 s late
// holds at most one zombie, grows nothing, and is still listed: its
// exit-to-reap p99, from the process events, is over a second.
func TestHostWatchFindsSlowReaper(t *testing.T) {
	zombietest.SkipSlow(t)
	cmd := zombietest.Python(t, `
import os, time
print("go", flush=True)
while True:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    time.sleep(1.2)
    os.waitpid(pid, 0)`)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"--watch", "--interval", "500ms", "--count", "8", "--json"}, nil, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, fmt.Sprintf(`"pid":%d,`, cmd.Process.Pid)) || !strings.Contains(last, `"reap_latency_p99_seconds":1.`) {
		if strings.Contains(stderr.String(), "no exit-to-reap latencies") {
			t.Skipf("process events refused here: %s", stderr.String())
		}
		t.Errorf("the slow reaper %d is not listed with its p99 over a second:\n%s", cmd.Process.Pid, last)
	}
}

// TestWatchWithoutEvents: in a pid namespace of its own (a container
// without hostPID) the kernel refuses the process events: the watch polls,
// says why in one line, and its samples say events: false.
func TestWatchWithoutEvents(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a pid namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skipf("unshare not found: %v", err)
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		t.Skipf("a pid namespace cannot be made here: %v %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Inside, this binary is PID 1 of the namespace and watches itself.
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", self, "--pid", "1", "--watch", "--count", "2",
		"--interval", "50ms", "--json", "--fd-types=false")
	cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the watch in its own pid namespace: %v %s", err, stderr.String())
	}
	if n := strings.Count(stderr.String(), "\n"); n != 1 || !strings.Contains(stderr.String(), "no exit-to-reap latencies, polling only") {
		t.Errorf("stderr %q: want one line saying why there are no latencies", stderr.String())
	}
	if strings.Count(stdout.String(), `"events":false`) != 2 || strings.Contains(stdout.String(), `"reap_latency`) {
		t.Errorf("samples: %s; want events false and no latency keys", stdout.String())
	}
}

// TestWatchNamesGrowingFDGroups: the bundled server keeping its copy of
// every connection (close-conn off) leaks sockets in CLOSE_WAIT; the watch
// names that group as the one that grows.
func TestWatchNamesGrowingFDGroups(t *testing.T) {
	zombietest.SkipSlow(t)
	pid, addr := startServer(t, "--reaper", "loop", "--close-conn=false")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go trickle(ctx, addr)
	// The watch runs until a sample names the group first (on a busy
	// machine the trickle may be slow to get going), for at most 80
	// samples; each sample's groups are checked as it is written.
	type group struct {
		Kind     string `json:"kind"`
		Target   string `json:"target"`
		TCPState string `json:"tcp_state"`
		Remote   string `json:"remote"`
		Delta    int    `json:"delta"`
		Count    int    `json:"count"`
	}
	want := func(g group) bool {
		return g.TCPState == "CLOSE_WAIT" && g.Target == "accepted on "+addr && g.Remote == "127.0.0.1:*" && g.Delta > 0 && g.Count >= g.Delta
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--pid", fmt.Sprint(pid), "--watch", "--interval", "250ms", "--count", "80", "--json"}, nil, pw, os.Stderr)
		pw.Close()
	}()
	var seen []group
	found := false
	sc := bufio.NewScanner(pr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var sample struct {
			Groups []group `json:"fd_groups_growing"`
		}
		if err := json.Unmarshal(sc.Bytes(), &sample); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if len(sample.Groups) > 0 {
			seen = sample.Groups
			if want(sample.Groups[0]) {
				found = true
				cancel()
			}
		}
	}
	if err := <-done; err != nil && !found {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("no sample of 80 named the connections accepted on %s in CLOSE_WAIT first; the last growing groups %+v", addr, seen)
	}
}

// TestHostWatchRanksTheContainer: in a pids cgroup of its own (pids.max
// 400), a parent forks children it never reaps, 40 a second, and another
// process opens 20 fds a second; the host watch lists that cgroup with its
// pids, zombies and fds growing and the time left to pids.max.
func TestHostWatchRanksTheContainer(t *testing.T) {
	zombietest.SkipSlow(t)
	dir, cg := zombietest.PidsCgroup(t, 400)
	// Two processes: the fds leak in one that does not fork (a child
	// caught alive between fork and exit holds a copy of every fd of its
	// parent, which the cgroup's sum would count).
	cmd := exec.Command("sh", "-c", "echo $$ > "+dir+"/cgroup.procs && { python3 -c '"+`
import os, time
start, keep = time.monotonic(), []
while len(keep) < 2000:
    while len(keep) < int((time.monotonic() - start) * 20):
        keep.append(os.open("/dev/null", os.O_RDONLY))
    time.sleep(0.01)
time.sleep(120)`+"' & } && exec python3 -c '"+`
import os, time
print("ready", flush=True)
start, n = time.monotonic(), 0
while n < 300:
    while n < int((time.monotonic() - start) * 40):
        if os.fork() == 0:
            os._exit(0)
        n += 1
    time.sleep(0.01)
time.sleep(120)`+"'")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait(); zombietest.ReapAll() })
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		t.Fatalf("the parent in the cgroup did not start: %v", err)
	}
	type container struct {
		Cgroup         string   `json:"cgroup"`
		Pids           int      `json:"pids"`
		PidsMax        *int     `json:"pids_max"`
		PidsPerMin     float64  `json:"pids_per_min"`
		FDs            int      `json:"fds"`
		FDsPerMin      float64  `json:"fds_per_min"`
		Zombies        int      `json:"zombies"`
		ZombiesPerMin  float64  `json:"zombies_per_min"`
		WorstParent    int      `json:"worst_parent"`
		LimitInSeconds *float64 `json:"limit_in_seconds"`
	}
	// 12 samples 500 ms apart: a window (5.5 s) long enough that the
	// python processes' pace, which a busy machine makes uneven, averages
	// out.
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--watch", "--interval", "500ms", "--count", "12", "--json", "--cgroup-root", "/sys/fs/cgroup"}, nil, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	type sample struct {
		Time       time.Time   `json:"time"`
		Containers []container `json:"containers"`
	}
	var seen []sample // the samples listing the cgroup, each with only it
	for _, l := range lines {
		var s sample
		if err := json.Unmarshal([]byte(l), &s); err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(s.Containers, func(c container) bool { return c.Cgroup == cg }); i >= 0 {
			s.Containers = s.Containers[i : i+1]
			seen = append(seen, s)
		}
	}
	if len(seen) < 2 {
		t.Fatalf("cgroup %s among the growing containers in %d samples of 12: %s", cg, len(seen), lines[len(lines)-1])
	}
	first, lastS := seen[0], seen[len(seen)-1]
	c := lastS.Containers[0]
	// The rates are the samples' own: the change of the sums between the
	// window's first and last samples over their times (the window holds
	// every sample here). Then against what the processes do, with the
	// tolerance a busy machine's uneven pace over 5 s allows.
	if len(seen) == len(lines) {
		minutes := lastS.Time.Sub(first.Time).Minutes()
		for _, r := range []struct {
			what      string
			got, want float64
		}{{"pids", c.PidsPerMin, float64(c.Pids-first.Containers[0].Pids) / minutes}, {"fds", c.FDsPerMin, float64(c.FDs-first.Containers[0].FDs) / minutes}} {
			if math.Abs(r.got-r.want) > 1 {
				t.Errorf("%s %.1f/min; the samples' own counts and times say %.1f/min", r.what, r.got, r.want)
			}
		}
	}
	if c.PidsMax == nil || *c.PidsMax != 400 || c.PidsPerMin < 0.6*2400 || c.PidsPerMin > 1.6*2400 || c.ZombiesPerMin <= 0 {
		t.Errorf("%+v; want pids.max 400 and pids and zombies growing at about 2400 a minute", c)
	}
	if c.FDsPerMin < 0.6*1200 || c.FDsPerMin > 1.6*1200 {
		t.Errorf("fds per minute %.0f; the parent opens 1200", c.FDsPerMin)
	}
	if c.WorstParent != cmd.Process.Pid || c.Zombies == 0 {
		t.Errorf("worst parent %d with %d zombies; want pid %d", c.WorstParent, c.Zombies, cmd.Process.Pid)
	}
	if c.LimitInSeconds == nil {
		t.Fatalf("no time to pids.max: %+v", c)
	}
	want := float64(400-c.Pids) / (c.PidsPerMin / 60)
	if got := *c.LimitInSeconds; got < want*0.95-1 || got > want*1.05+1 {
		t.Errorf("pids.max in %.1f s; (400 - %d) / %.0f per min says %.1f s", got, c.Pids, c.PidsPerMin, want)
	}
}

// TestHostWatchInTmux: the host-wide screen at 80x24 with a process leaking
// fds: every line fits, the leak is listed; after a resize the screen
// follows; o opens the selected process's own watch and q comes back.
func TestHostWatchInTmux(t *testing.T) {
	zombietest.SkipSlow(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed: .ci/run installs it")
	}
	cmd := zombietest.Python(t, `
import os, time
keep = []
print("ready", flush=True)
while len(keep) < 3000:
    keep.append(os.open("/dev/null", os.O_RDONLY)); time.sleep(0.01)
time.sleep(120)`)
	leak := fmt.Sprint(cmd.Process.Pid)
	tmux := startTmux(t, "zwhost", 80, 24, "--watch --interval 200ms")
	waitScreen := func(what string, ok func(text string) bool) []string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			text := strings.TrimRight(tmux("capture-pane", "-p", "-t", "w"), "\n")
			if ok(text) {
				return strings.Split(text, "\n")
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not on the screen:\n%s", what, text)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	lines := waitScreen("the leak listed", func(s string) bool { return strings.Contains(s, " "+leak+" ") })
	if !strings.HasPrefix(lines[0], "zombiewatch: host") || !strings.Contains(lines[1], "keys: ") || len(lines) > 24 {
		t.Errorf("title and keys on top, at most 24 lines:\n%s", strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("a line of %d columns at 80x24: %q", n, l)
		}
	}
	tmux("resize-window", "-t", "w", "-x", "60", "-y", "12")
	lines = waitScreen("the screen at 60x12", func(s string) bool {
		l := strings.Split(s, "\n")
		return len(l) <= 12 && strings.HasPrefix(l[0], "zombiewatch: host") && strings.HasSuffix(l[0], "…")
	})
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 60 {
			t.Errorf("a line of %d columns at 60x12: %q", n, l)
		}
	}
	// Open the selected process (the first row), then come back.
	tmux("resize-window", "-t", "w", "-x", "100", "-y", "30")
	waitScreen("the screen at 100x30", func(s string) bool { return strings.Contains(s, "> ") })
	tmux("send-keys", "-t", "w", "o")
	waitScreen("the selected process's watch", func(s string) bool { return strings.HasPrefix(s, "zombiewatch: pid ") })
	tmux("send-keys", "-t", "w", "q")
	waitScreen("the host screen again", func(s string) bool { return strings.HasPrefix(s, "zombiewatch: host") })
	tmux("send-keys", "-t", "w", "q")
}
