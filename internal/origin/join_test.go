package origin

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// TestJoin: what is open now joins its latest record; what no record
// names is untraced; stacks that resolve alike are one origin; files
// group by kind with an example; a grandchild zombie is not the parent's.
func TestJoin(t *testing.T) {
	age := func(s float64) *float64 { return &s }
	p := &model.Process{PID: 10,
		FDList: []model.FDEntry{
			{FD: 0, Kind: proc.FDFile, Target: "/dev/null"},
			{FD: 3, Kind: proc.FDFile, Target: "/var/log/a.log"},
			{FD: 4, Kind: proc.FDFile, Target: "/var/log/b.log"},
			{FD: 5, Kind: proc.FDSocket, Protocol: "TCP", TCPState: "CLOSE_WAIT", Local: "127.0.0.1:5000", Remote: "10.0.0.5:5432"},
		},
		ZombieList: []model.Zombie{
			{PID: 20, PPID: 10, ExitAgeSeconds: age(3)},
			{PID: 21, PPID: 10, ExitAgeSeconds: age(1)},
			{PID: 22, PPID: 10},
			{PID: 30, PPID: 20}, // a grandchild
		},
	}
	rec := Recorded{
		FDs:    map[int]Record{3: {StackID: 1}, 4: {StackID: 2}, 5: {StackID: 3}, 9: {StackID: 3}},
		Forks:  map[int]Record{20: {StackID: 3}, 21: {StackID: 3}, 30: {StackID: 1}},
		Stacks: map[int64][]uint64{1: {0x100, 0x900}, 2: {0x100, 0x901}, 3: {0x300}},
	}
	// 0x900 and 0x901 are in the same function: stacks 1 and 2 read the same.
	resolve := func(addrs []uint64) []Frame {
		var out []Frame
		for _, a := range addrs {
			out = append(out, Frame{Address: a, Function: map[uint64]string{0x100: "main.open", 0x900: "main.main", 0x901: "main.main", 0x300: "main.dial"}[a]})
		}
		return out
	}
	r := Join(p, rec, 30*time.Second, resolve)
	var got []string
	for _, o := range r.FDs {
		var fns []string
		for _, f := range o.Stack {
			fns = append(fns, f.Function)
		}
		got = append(got, strings.Join([]string{o.Kind, o.TCPState, o.Remote, o.Example, strings.Join(fns, "<")}, " "))
	}
	want := []string{"file   /var/log/a.log main.open<main.main", "socket CLOSE_WAIT 10.0.0.5:5432  main.dial"}
	if !reflect.DeepEqual(got, want) || r.FDs[0].Count != 2 || r.FDs[0].PerMinute != 4 || r.FDsUntraced != 1 {
		t.Errorf("fd origins %q (first %+v), %d untraced: want %q, the first of 2 at 4/min, 1 untraced", got, r.FDs[0], r.FDsUntraced, want)
	}
	if len(r.Zombies) != 1 || r.Zombies[0].Count != 2 || *r.Zombies[0].NewestExitSeconds != 1 || *r.Zombies[0].OldestExitSeconds != 3 || r.ZombiesUntraced != 1 {
		t.Errorf("zombie origins %+v, %d untraced: want 2 from main.dial, exited 1 to 3 s ago, and 1 untraced (the grandchild left out)", r.Zombies, r.ZombiesUntraced)
	}
	if r.CutShort != 3 {
		t.Errorf("%d stacks cut short, want 3 (none reaches a thread's entry)", r.CutShort)
	}
}

func TestParseMapping(t *testing.T) {
	for line, want := range map[string]mapping{
		"7f00-7f10 r-xp 00001000 08:01 1234   /usr/lib/libc.so.6":          {0x7f00, 0x7f10, 0x1000, "/usr/lib/libc.so.6", true},
		"1000-2000 r-xp 00000000 08:01 77   /tmp/my app (deleted)":         {0x1000, 0x2000, 0, "/tmp/my app (deleted)", true},
		"1000-2000 rw-p 00000000 00:00 0 ":                                 {0x1000, 0x2000, 0, "", false},
		"7ffd-7ffe rw-p 00000000 00:00 0                          [stack]": {0x7ffd, 0x7ffe, 0, "[stack]", false},
	} {
		if got, ok := parseMapping(line); !ok || got != want {
			t.Errorf("parseMapping(%q) = %+v, %v; want %+v", line, got, ok, want)
		}
	}
	for _, bad := range []string{"", "zz-1 r-xp 0 0 0 /x", "2000-1000 r-xp 0 0 0 /x", "1000-2000"} {
		if m, ok := parseMapping(bad); ok {
			t.Errorf("parseMapping(%q) = %+v: want refused", bad, m)
		}
	}
}
