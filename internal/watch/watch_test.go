package watch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/zombiewatch/zombiewatch/internal/render"
	"github.com/zombiewatch/zombiewatch/internal/watch"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/zombiewatch/zombiewatch/internal/fixture"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// growing is a copy of a fixture tree that a test changes between samples.
type growing struct {
	t    *testing.T
	dir  string
	now  time.Time
	fs   *model.Reader
	next int // next zombie pid
}

func newGrowing(t *testing.T) *growing {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(fixture.Dir("zombies-threads"))); err != nil {
		t.Fatal(err)
	}
	g := &growing{t: t, dir: dir, now: fixture.Now, next: 400}
	fs, err := proc.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := model.NewReader(fs, model.TCPStates(fs))
	r.Now = func() time.Time { return g.now }
	r.Users = &model.Users{Lookup: func(uid int) string { return "alice" }}
	g.fs = r
	return g
}

func (g *growing) write(path, text string) {
	g.t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(g.dir, path)), 0o755); err != nil {
		g.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(g.dir, path), []byte(text), 0o644); err != nil {
		g.t.Fatal(err)
	}
}

// grow adds one zombie child of pid 100 (on thread 102) and two open
// sockets, and moves the clock on by one second.
func (g *growing) grow() {
	g.t.Helper()
	pid := g.next
	g.next++
	g.write(fmt.Sprintf("%d/stat", pid), fmt.Sprintf("%d (server) Z 100 %d %d 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 900000 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n", pid, pid, pid))
	g.write(fmt.Sprintf("%d/status", pid), fmt.Sprintf("Name:\tserver\nState:\tZ (zombie)\nTgid:\t%d\nPPid:\t100\nUid:\t1000\t1000\t1000\t1000\nThreads:\t1\nSigPnd:\t0\nShdPnd:\t0\nSigBlk:\t0\nSigIgn:\t0\nSigCgt:\t0\n", pid))
	kids, err := os.ReadFile(filepath.Join(g.dir, "100/task/102/children"))
	if err != nil {
		g.t.Fatal(err)
	}
	g.write("100/task/102/children", string(kids)+fmt.Sprintf("%d ", pid))
	for i := range 2 {
		link := filepath.Join(g.dir, "100/fd", fmt.Sprint(100+2*pid+i))
		if err := os.Symlink(fmt.Sprintf("socket:[%d]", 5000+2*pid+i), link); err != nil {
			g.t.Fatal(err)
		}
	}
	g.now = g.now.Add(time.Second)
}

// runK runs the sampler for exactly k samples, growing the tree between
// samples (never while one is read), and hands each sample to emit.
func runK(t *testing.T, g *growing, k int, emit func(*watch.Sample) error) error {
	t.Helper()
	s := &watch.Sampler{Reader: g.fs, PID: 100, Opt: model.Options{FDTypes: true}, Window: 5, SlowEvery: 1}
	ticks := make(chan time.Time)
	taken := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- watch.Run(context.Background(), s, ticks, k, func(sample *watch.Sample) error {
			defer func() { taken <- struct{}{} }()
			return emit(sample)
		})
	}()
	for i := range k {
		select {
		case <-taken:
		case err := <-errc:
			return err
		}
		if i == k-1 {
			break
		}
		g.grow()
		ticks <- g.now
	}
	return <-errc
}

func TestWatchGrowingFixture(t *testing.T) {
	g := newGrowing(t)
	var samples []*watch.Sample
	var lines, jsonl bytes.Buffer
	ln := &render.Lines{W: &lines}
	jsonLines := &render.JSONLines{W: &jsonl}
	err := runK(t, g, 5, func(s *watch.Sample) error {
		samples = append(samples, s)
		if err := ln.Emit(s); err != nil {
			return err
		}
		return jsonLines.Emit(s)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 5 {
		t.Fatalf("%d samples, want exactly 5", len(samples))
	}
	type row struct {
		Seq, Zombies, ZDelta, FDs, FDDelta int
		ZPerMin, FDPerMin                  float64
		FDLimitIn                          float64
	}
	var got []row
	for _, s := range samples {
		r := row{s.Seq, s.Zombies, s.ZombiesDelta, *s.FDs, s.FDsDelta, s.ZombiesPerMin, s.FDsPerMin, -1}
		if s.FDLimitIn != nil {
			r.FDLimitIn = *s.FDLimitIn
		}
		got = append(got, r)
	}
	// One zombie and two fds a second: 60 and 120 a minute; the fd limit
	// 1024 is (1024-fds)/2 seconds away. The window is 5 samples. Each
	// zombie is one more task of uid 1000, so RLIMIT_NPROC comes closer too.
	want := []row{
		{1, 3, 0, 3, 0, 0, 0, -1},
		// No projection before the window holds 5 samples over 3 s.
		{2, 4, 1, 5, 2, 60, 120, -1},
		{3, 5, 1, 7, 2, 60, 120, -1},
		{4, 6, 1, 9, 2, 60, 120, -1},
		{5, 7, 1, 11, 2, 60, 120, 506.5},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
	fixture.Golden(t, "watch.lines", lines.Bytes())
	if last := samples[4]; last.Limit != "RLIMIT_NOFILE" || last.LimitIn == nil || *last.LimitIn != 506.5 {
		t.Errorf("nearest limit %q in %v s; want RLIMIT_NOFILE in 506.5 s (RLIMIT_NPROC is a day away)", last.Limit, last.LimitIn)
	}

	// Every JSON line has the one-shot keys and the watch keys.
	jl := strings.Split(strings.TrimSpace(jsonl.String()), "\n")
	if len(jl) != 5 {
		t.Fatalf("%d JSON lines, want 5", len(jl))
	}
	fixture.Golden(t, "watch.jsonl", []byte(jl[4]+"\n"))
	for _, key := range []string{`"pid":100`, `"zombies":7`, `"fd_types":{`, `"zombie_list":null`, `"sample":5`, `"zombies_per_min":60`,
		`"fd_limit_in_seconds":506.5`, `"nproc_limit_in_seconds":96353`, `"zombies_appeared":[{"pid":403,`, `"zombies_reaped":[]`} {
		if !strings.Contains(jl[4], key) {
			t.Errorf("last JSON line lacks %s:\n%s", key, jl[4])
		}
	}
	// The first sample carries the whole list; the others only changes.
	if !strings.Contains(jl[0], `"zombie_list":[{"pid":200,`) || len(jl[4]) > len(jl[0])+200 {
		t.Errorf("first JSON line: want the whole zombie_list:\n%s", jl[0])
	}
}

func TestWatchTargetEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(g *growing)
		want   string
		reuse  bool
	}{
		{"gone", func(g *growing) { os.RemoveAll(filepath.Join(g.dir, "100")) },
			"pid 100 is gone: it exited and was reaped", false},
		{"zombie", func(g *growing) {
			g.write("100/stat", "100 (server) Z 1 100 100 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100000 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 1792\n")
		}, "pid 100 exited (exit 7) and is a zombie until its parent, pid 1, waits for it", false},
		{"pid reused", func(g *growing) {
			g.write("100/stat", "100 (stranger) S 1 100 100 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777777 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n")
		}, "pid 100 now names another process (stranger, started", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGrowing(t)
			s := &watch.Sampler{Reader: g.fs, PID: 100}
			if _, err := s.Next(context.Background()); err != nil {
				t.Fatal(err)
			}
			tc.change(g)
			_, err := s.Next(context.Background())
			var ended *watch.Ended
			switch {
			case err == nil:
				t.Fatal("second sample succeeded; want the end told")
			case !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %q, want %q", err, tc.want)
			case tc.reuse != errors.Is(err, model.ErrPIDReused):
				t.Errorf("error %v: ErrPIDReused %v, want %v", err, errors.Is(err, model.ErrPIDReused), tc.reuse)
			case !tc.reuse && !errors.As(err, &ended):
				t.Errorf("error %v: want *Ended", err)
			}
		})
	}
}

// TestWatchDoesNotGrow: 10,000 samples leave the heap and the fds where
// 1,000 samples left them (the history and the caches are bounded).
func TestWatchDoesNotGrow(t *testing.T) {
	zombietest.SkipSlow(t)
	g := newGrowing(t)
	s := &watch.Sampler{Reader: g.fs, PID: 100, Opt: model.Options{FDTypes: true}}
	staysFlat(t, func(int) {
		g.now = g.now.Add(time.Second)
		if _, err := s.Next(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWatchSlowReadsEveryFewSamples: the uid's tasks are read on the first
// sample and every SlowEvery after; the fd kinds too, and whenever the fd
// count changed. Between, the last values are carried and say which
// sample they come from.
func TestWatchSlowReadsEveryFewSamples(t *testing.T) {
	g := newGrowing(t)
	s := &watch.Sampler{Reader: g.fs, PID: 100, Opt: model.Options{FDTypes: true}, SlowEvery: 3}
	type row struct{ Seq, FDTypesFrom, TasksFrom, Tasks, Sockets int }
	var got []row
	for i := range 7 {
		sample, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, row{sample.Seq, sample.FDTypesFrom, sample.UIDProcessesFrom, *sample.UIDProcesses, sample.FDTypes["socket"]})
		if i < 4 {
			g.grow() // a zombie (a task of uid 1000) and two sockets
		} else {
			g.now = g.now.Add(time.Second) // nothing changes
		}
	}
	want := []row{
		// Between full counts (samples 1, 4, 7) the uid's count moves with
		// the target's children: each new zombie is a task of uid 1000.
		{1, 1, 1, 8, 0}, {2, 2, 1, 9, 2}, {3, 3, 1, 10, 4}, {4, 4, 4, 11, 6}, {5, 5, 4, 12, 8},
		{6, 5, 4, 12, 8}, // fds unchanged: kinds carried from sample 5
		{7, 7, 7, 12, 8}, // every 3rd sample: both read again, and the estimate was right
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
}

// TestWatchProjectsNprocBetweenCounts: with the full count every 30
// samples, a parent piling up zombies (tasks of its uid) still gets a
// projection to RLIMIT_NPROC from the second sample on.
func TestWatchProjectsNprocBetweenCounts(t *testing.T) {
	g := newGrowing(t)
	s := &watch.Sampler{Reader: g.fs, PID: 100, SlowEvery: 30}
	var last *watch.Sample
	for range 6 { // a projection needs 5 samples over 3 s
		sample, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last = sample
		g.grow()
	}
	if last.NprocLimitIn == nil || !last.UIDProcessesEstimated || *last.UIDProcesses != 13 {
		t.Errorf("sample 6: uid_processes %d (estimated %v), nproc projection %v; want 13, estimated, and a projection",
			*last.UIDProcesses, last.UIDProcessesEstimated, last.NprocLimitIn)
	}
}

// TestHostWatchDoesNotGrow: the host watch keeps a bounded history per
// process and cgroup and forgets those gone: 10,000 samples (the tree
// growing every 100) leave its heap and fds where they were at 1,000.
func TestHostWatchDoesNotGrow(t *testing.T) {
	zombietest.SkipSlow(t)
	g := newGrowing(t)
	s := &watch.HostSampler{Reader: g.fs}
	staysFlat(t, func(i int) {
		g.now = g.now.Add(time.Second)
		if i%100 == 0 && i <= 1000 {
			g.grow()
		}
		sample, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if i == 1000 && len(sample.Growing) == 0 {
			t.Fatal("nothing grows on the growing fixture")
		}
	})
}

// staysFlat takes 10,000 samples with sample(1...10000) and checks that
// the heap and fds after the last are where they were after the 1,000th.
func staysFlat(t *testing.T, sample func(i int)) {
	t.Helper()
	var heap1k uint64
	var fds1k int
	for i := 1; i <= 10000; i++ {
		sample(i)
		if i == 1000 {
			heap1k, fds1k = heapAndFDs(t)
		}
	}
	heap, fds := heapAndFDs(t)
	t.Logf("after 1,000 samples: heap %d KiB, %d fds; after 10,000: heap %d KiB, %d fds", heap1k>>10, fds1k, heap>>10, fds)
	if fds != fds1k {
		t.Errorf("fds %d after 1,000 samples, %d after 10,000", fds1k, fds)
	}
	if heap > heap1k+512<<10 {
		t.Errorf("heap grew from %d KiB to %d KiB between 1,000 and 10,000 samples", heap1k>>10, heap>>10)
	}
}

// heapAndFDs is this process's heap in use after a collection, and its
// open fds.
func heapAndFDs(t *testing.T) (heap uint64, fds int) {
	t.Helper()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return m.HeapInuse, len(entries)
}

// TestHostSamplerRates: on the growing fixture, pid 100 stands still for 4
// samples, then gains a zombie and two fds a second for 6: the host
// sampler ranks it with 60 zombies and 120 fds a minute over its window
// of 5 samples, its growth dated from the last sample at its lowest, and
// stops ranking it once the window holds no growth.
func TestHostSamplerRates(t *testing.T) {
	g := newGrowing(t)
	s := &watch.HostSampler{Reader: g.fs, Window: 5}
	var times []time.Time
	var lines, jsonl bytes.Buffer
	hostLines := &render.HostLines{W: &lines}
	next := func() *watch.HostSample {
		t.Helper()
		sample, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, sample.Time)
		// The lines and JSON lines the docs show (docs/usage.md).
		if len(times) <= 8 {
			if err := hostLines.Emit(sample); err != nil {
				t.Fatal(err)
			}
			if len(times) == 8 {
				if err := (render.HostJSONLines{W: &jsonl}).Emit(sample); err != nil {
					t.Fatal(err)
				}
			}
		}
		return sample
	}
	find := func(sample *watch.HostSample) *watch.Growing {
		for i := range sample.Growing {
			if sample.Growing[i].PID == 100 {
				return &sample.Growing[i]
			}
		}
		return nil
	}
	for range 4 {
		g.now = g.now.Add(time.Second)
		if p := find(next()); p != nil {
			t.Fatalf("ranked while standing still: %+v", p)
		}
	}
	var p *watch.Growing
	for i := range 6 {
		g.grow() // also moves the clock on a second
		p = find(next())
		if i == 1 && (p == nil || !p.Since.Equal(times[3])) {
			t.Errorf("two samples into the growth: %+v; want it ranked since the 4th sample (%s)", p, times[3].Format("15:04:05"))
		}
	}
	if p == nil || p.ZombiesPerMin != 60 || p.FDsPerMin != 120 || p.TasksPerMin != 60 {
		t.Fatalf("after 6 s of growth: %+v; want 60 zombies, 120 fds and 60 tasks a minute", p)
	}
	if !p.Since.Equal(times[5]) {
		t.Errorf("since %s; the window of 5 samples begins at sample 6 (%s)", p.Since.Format("15:04:05"), times[5].Format("15:04:05"))
	}
	fixture.Golden(t, "host-watch.lines", lines.Bytes())
	fixture.Golden(t, "host-watch.jsonl", jsonl.Bytes())
	for range 5 {
		g.now = g.now.Add(time.Second)
		p = find(next())
	}
	if p != nil {
		t.Errorf("still ranked after 5 samples standing still: %+v", p)
	}
}

// TestWatchRateIgnoresABurst: a process that opens 400 fds at once at
// start, then 2 a second: the rate is 120/min, not the burst spread over
// the window, and the projection follows the steady rate.
func TestWatchRateIgnoresABurst(t *testing.T) {
	g := newGrowing(t)
	s := &watch.Sampler{Reader: g.fs, PID: 100}
	var last *watch.Sample
	for i := range 10 {
		sample, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		last = sample
		if i == 0 {
			for j := range 400 { // the burst, between the first two samples
				if err := os.Symlink("/dev/null", filepath.Join(g.dir, "100/fd", fmt.Sprint(5000+j))); err != nil {
					t.Fatal(err)
				}
			}
		}
		g.grow()
	}
	if last.FDsPerMin != 120 || last.FDLimitIn == nil {
		t.Fatalf("after a burst of 400 and 2 a second: %.1f fds/min, limit in %v; want 120/min and a projection", last.FDsPerMin, last.FDLimitIn)
	}
	if want := float64(int(last.FDSoftLimit)-*last.FDs) / 2; *last.FDLimitIn != want {
		t.Errorf("RLIMIT_NOFILE in %.1f s; want %.1f at 2 a second", *last.FDLimitIn, want)
	}
}
