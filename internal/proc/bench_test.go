package proc

import "testing"

// Benchmarks: go test ./internal/proc -run '^$' -bench . -benchmem (the
// readings built on these parsers: ./internal/model).

func BenchmarkParseStat(b *testing.B) {
	line := []byte(statFields("4242", "z) Z (x", "Z", "1792"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseStat(line); err != nil {
			b.Fatal(err)
		}
	}
}
