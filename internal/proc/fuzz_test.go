package proc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The parsers read files any process (or, under --proc-root, anyone) can
// shape: whatever the bytes, they return a record or an error, never
// panic, and what they return is canonical.

func FuzzParseStat(f *testing.F) {
	f.Add(statFields("4242", "z) Z (x", "Z", "1792"))
	f.Add(statFields("1", "init", "S", "0"))
	f.Add("100 (a) Z 1 2")
	f.Add("0100 (a) S 0100 " + strings.Repeat("0 ", 60))
	f.Add("18446744073709551716 (x) S 1 " + strings.Repeat("1 ", 50))
	f.Add("1()0A 0     0           0  10000000000000000000") // found by the fuzzer: a start 3 billion years after boot
	f.Fuzz(func(t *testing.T, data string) {
		s, err := ParseStat([]byte(data))
		if err != nil {
			return
		}
		if s.PID <= 0 || s.PPID < 0 || s.Threads < 0 || s.StartTime > maxTicks {
			t.Errorf("ParseStat(%q) = %+v: out of range", data, s)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	f.Add("Name:\tx\nState:\tS (sleeping)\nTgid:\t7\nPPid:\t77\nUid:\t1000\t0\t0\t0\nNSpid:\t4711\t1\nThreads:\t5\n" +
		"SigPnd:\t0000000000000000\nShdPnd:\t0000000000010000\nSigBlk:\t0000000000010000\n" +
		"SigIgn:\t0000000000000000\nSigCgt:\t0000000000014002\n")
	f.Add("Uid:\t-\nSigIgn:\t0\nSigCgt:\t0\n")
	f.Add("Uid:\nSigIgn:\tzz\n")
	f.Fuzz(func(t *testing.T, data string) {
		s, err := ParseStatus([]byte(data))
		if err != nil {
			return
		}
		if s.UID < 0 || s.PPID < 0 || s.Threads < 0 {
			t.Errorf("ParseStatus(%q) = %+v: out of range", data, s)
		}
	})
}

func FuzzParseLimits(f *testing.F) {
	f.Add("Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max processes             unlimited            unlimited            processes \n" +
		"Max open files            1024                 524288               files     \n")
	f.Add("Max open files -1 -1 files\nMax processes 1 1 processes\n")
	f.Fuzz(func(t *testing.T, data string) {
		ParseLimits([]byte(data)) // a record or an error, never a panic
	})
}

func FuzzBtime(f *testing.F) {
	f.Add("cpu  1 2 3\nbtime 1764140000\n")
	f.Add("btime -1\n")
	f.Fuzz(func(t *testing.T, data string) {
		if n, err := btime([]byte(data)); err == nil && n < 0 {
			t.Errorf("btime(%q) = %d", data, n)
		}
	})
}

func FuzzChildren(f *testing.F) {
	f.Add("201 202 ")
	f.Add("0100 100")
	f.Add("18446744073709551716")
	f.Add("-1 +2 0x10")
	f.Fuzz(func(t *testing.T, data string) {
		kids, err := appendChildren(nil, []byte(data))
		if err != nil {
			return
		}
		for _, k := range kids {
			if k <= 0 || k > 1<<22 {
				t.Errorf("appendChildren(%q) gave pid %d", data, k)
			}
		}
	})
}

// FuzzNetTCP: whatever a tree's net/tcp holds, reading its tables gives
// sockets or an error naming the file, never a panic.
func FuzzNetTCP(f *testing.F) {
	f.Add("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0\n")
	f.Add("garbage\nline\n")
	f.Add("header\n   0: zz:zz 00000000:0000 0A\n")
	f.Fuzz(func(t *testing.T, data string) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "100", "net"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "100", "net", "tcp"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		fs := &FS{root: dir}
		if _, err := fs.InetFromFiles(100); err != nil && !strings.Contains(err.Error(), "net/tcp") {
			t.Errorf("error %q does not name the file", err)
		}
	})
}
