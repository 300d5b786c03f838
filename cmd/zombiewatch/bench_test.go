package main

import (
	"context"
	"io"
	"os"
	"testing"
)

// BenchmarkPIDJSON is zombiewatch --pid P --json, in process, on the
// process ZW_BENCH_PID names (bench/run.sh prepares one).
func BenchmarkPIDJSON(b *testing.B) {
	pid := os.Getenv("ZW_BENCH_PID")
	if pid == "" {
		b.Skip("ZW_BENCH_PID not set: bench/run.sh prepares a parent with 5,000 zombies")
	}
	for _, args := range [][]string{{"--fd-types=false"}, {}} {
		b.Run("args="+join(args), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := run(context.Background(), append([]string{"--pid", pid, "--json"}, args...), nil, io.Discard, io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func join(args []string) string {
	s := ""
	for _, a := range args {
		s += a
	}
	return s
}
