package proc

import (
	"os"
	"strconv"
	"testing"

	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// Benchmarks: go test ./internal/proc -run '^$' -bench . -benchmem
// ZW_BENCH_PID=N points the live ones at a prepared process (bench/run.sh
// builds one with 5,000 zombies and 15,000 fds); otherwise they start a
// helper with 1,000 zombies and 3,000 fds.

func benchTarget(b *testing.B) int {
	if pid, err := strconv.Atoi(os.Getenv("ZW_BENCH_PID")); err == nil {
		return pid
	}
	h := zombietest.Start(b, zombietest.Spec{Children: 1000, Threads: 3, Pipes: 500, SocketPairs: 500, Files: 1000})
	return h.PID
}

func BenchmarkParseStat(b *testing.B) {
	line := []byte(statFields("4242", "z) Z (x", "Z", "1792"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseStat(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSnapshotFixture(b *testing.B) {
	fs := openFixture(b, "zombies-threads")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.Snapshot(100, Options{FDTypes: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSnapshotLive(b *testing.B) {
	pid := benchTarget(b)
	fs := liveFS(b)
	for _, tc := range []struct {
		name string
		opt  Options
	}{{"count", Options{}}, {"kinds", Options{FDTypes: true}}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := fs.Snapshot(pid, tc.opt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkScanLive(b *testing.B) {
	fs := liveFS(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fs.Scan(ScanOptions{Parents: 10, FDUsers: 10, UIDs: 10}); err != nil {
			b.Fatal(err)
		}
	}
}
