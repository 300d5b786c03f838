package proc

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// statFields builds a stat line with comm and 50 fields after it, field
// 52 (the exit code) last.
func statFields(pid, comm, state string, exit string) string {
	f := make([]string, 50)
	for i := range f {
		f[i] = "0"
	}
	f[0], f[1], f[17], f[19], f[49] = state, "77", "4", "123456", exit
	return pid + " (" + comm + ") " + strings.Join(f, " ") + "\n"
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       Stat
	}{
		{"plain", statFields("42", "server", "S", "0"),
			Stat{PID: 42, Comm: "server", State: 'S', PPID: 77, Threads: 4, StartTime: 123456}},
		{"comm with parentheses and spaces", statFields("42", "z) Z (x", "Z", "1792"),
			Stat{PID: 42, Comm: "z) Z (x", State: 'Z', PPID: 77, Threads: 4, StartTime: 123456, ExitCode: 1792}},
		{"comm ending in a parenthesis", statFields("7", ") )", "Z", "9"),
			Stat{PID: 7, Comm: ") )", State: 'Z', PPID: 77, Threads: 4, StartTime: 123456, ExitCode: 9}},
		{"empty comm", statFields("7", "", "R", "0"),
			Stat{PID: 7, Comm: "", State: 'R', PPID: 77, Threads: 4, StartTime: 123456}},
		// procfs's fixture tree has a stat followed by more text: the
		// record ends at its newline.
		{"more after the newline", statFields("42", "server", "S", "0") + "\nextra (text) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n",
			Stat{PID: 42, Comm: "server", State: 'S', PPID: 77, Threads: 4, StartTime: 123456}},
		{"comm with a newline", statFields("42", "a\nb)", "S", "0"),
			Stat{PID: 42, Comm: "a\nb)", State: 'S', PPID: 77, Threads: 4, StartTime: 123456}},
		// Before Linux 3.5 the line stops at field 44: no exit code.
		{"old kernel", "9 (a) Z 1 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0",
			Stat{PID: 9, Comm: "a", State: 'Z', PPID: 1, Threads: 1, StartTime: 555}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tc.line))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parseStat mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseStatMalformed(t *testing.T) {
	for _, line := range []string{
		"",
		"42 server S 1",
		"42 (server)",
		"42 (server) SS 1 2 3",
		"x (server) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
		"42 (server) S 1 2 3",             // stops before the start time
		statFields("42", "a", "S", "12x"), // bad exit code
	} {
		if s, err := ParseStat([]byte(line)); err == nil {
			t.Errorf("ParseStat(%q) = %+v, want an error", line, s)
		}
	}
}

func TestParseStatus(t *testing.T) {
	data := "Name:\tx\nState:\tS (sleeping)\nPPid:\t77\nUid:\t1000\t0\t0\t0\nNSpid:\t4711\t1\nThreads:\t5\n" +
		"SigPnd:\t0000000000000000\nShdPnd:\t0000000000010000\nSigBlk:\t0000000000010000\n" +
		"SigIgn:\t0000000000000000\nSigCgt:\t0000000000014002\n"
	got, err := ParseStatus([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := Status{Name: "x", State: 'S', PPID: 77, UID: 1000, NSpid: []int{4711, 1}, Threads: 5, ShdPnd: 0x10000, SigBlk: 0x10000, SigCgt: 0x14002}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseStatus mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Sigchld{Disposition: SigchldCaught, Blocked: true, Pending: true}, got.Sigchld()); diff != "" {
		t.Errorf("sigchld mismatch (-want +got):\n%s", diff)
	}
	// SIG_IGN wins over a stale handler bit: the kernel checks it first.
	if d := (Status{SigIgn: sigchldBit, SigCgt: sigchldBit}).Sigchld().Disposition; d != SigchldIgnored {
		t.Errorf("ignored and caught: disposition %q, want ignored", d)
	}
	if _, err := ParseStatus([]byte("Name:\tx\nSigCgt:\tzz\n")); err == nil {
		t.Error("parseStatus accepted a malformed SigCgt")
	}
}

func TestParseLimits(t *testing.T) {
	data := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max processes             unlimited            unlimited            processes \n" +
		"Max open files            1024                 524288               files     \n"
	got, err := ParseLimits([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{NofileSoft: 1024, NofileHard: 524288, NprocSoft: Unlimited, NprocHard: Unlimited}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseLimits mismatch (-want +got):\n%s", diff)
	}
	if _, err := ParseLimits([]byte("Limit  Soft\nMax open files 1024 x files\n")); err == nil {
		t.Error("parseLimits accepted a file without the processes row")
	}
}

func TestFDKind(t *testing.T) {
	for target, want := range map[string]string{
		"socket:[123]":             FDSocket,
		"pipe:[9]":                 FDPipe,
		"anon_inode:[eventpoll]":   "anon_inode:eventpoll",
		"anon_inode:inotify":       "anon_inode:inotify",
		"/dev/pts/3":               FDDevice,
		"/tmp/x (deleted)":         FDFile,
		"/memfd:buf (deleted)":     FDFile,
		"net:[4026531840]":         FDOther,
		"anon_inode:[io_uring]":    "anon_inode:io_uring",
		"anon_inode:[pidfd]":       "anon_inode:pidfd",
		"anon_inode:[signalfd]":    "anon_inode:signalfd",
		"anon_inode:[timerfd]":     "anon_inode:timerfd",
		"anon_inode:[eventfd]":     "anon_inode:eventfd",
		"anon_inode:[userfaultfd]": "anon_inode:userfaultfd",
	} {
		if got := fdKind(target); got != want {
			t.Errorf("fdKind(%q) = %q, want %q", target, got, want)
		}
	}
}

func TestBtime(t *testing.T) {
	stat := "cpu  10 0 20 300 0 0 0 0 0 0\ncpu0 10 0 20 300 0 0 0 0 0 0\nintr 5 1 2\nctxt 99\nbtime 1764140000\nprocesses 812\n"
	if got, err := btime([]byte(stat)); err != nil || got != 1764140000 {
		t.Errorf("btime = %d, %v; want 1764140000", got, err)
	}
	if _, err := btime([]byte("cpu  1 2 3\nctxt 99\n")); err == nil {
		t.Error("btime of a stat without a btime line: no error")
	}
}
