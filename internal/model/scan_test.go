package model_test

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func find(list []*model.Process, pid int) *model.Process {
	for _, p := range list {
		if p.PID == pid {
			return p
		}
	}
	return nil
}

// TestScanFollowsChanges: the incremental scan agrees with the full pass on
// a parent holding zombies, sees fds opened between passes, and skips a
// process whose counts stood still until its next due time.
func TestScanFollowsChanges(t *testing.T) {
	h := zombietest.Start(t, zombietest.Spec{Children: 3, Pipes: 2})
	r := liveReader(t)
	clock := time.Now()
	r.Now = func() time.Time { return clock }
	all := model.HostOptions{}
	full, err := r.Host(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	scan := r.NewScan()
	// No whole re-read in the test's span (they are spread over a minute
	// by pid, and would read a back-off's process early).
	scan.FullEvery = time.Hour
	pass := func() *model.Host {
		t.Helper()
		got, err := scan.Host(context.Background(), all)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := pass()
	// The first pass carries nothing over: it read every process it
	// lists (and, on a busy host, some that exited during the pass).
	if first.Read < first.Processes {
		t.Errorf("first pass read %d of %d processes, want all", first.Read, first.Processes)
	}
	fp, sp := find(full.Parents, h.PID), find(first.Parents, h.PID)
	if fp == nil || sp == nil || fp.Zombies != 3 || sp.Zombies != 3 {
		t.Fatalf("helper's zombies: full pass %v, scan %v, want 3 in both", fp, sp)
	}
	if a, b := find(full.FDUsers, h.PID), find(first.FDUsers, h.PID); a == nil || b == nil || *a.FDs != *b.FDs {
		t.Fatalf("helper's fds: full pass %v, scan %v", a, b)
	}

	// A process that opens fds when told (this test's own count moves
	// with the files its readers hold open for a moment).
	opener := exec.Command("/usr/bin/python3", "-c", `
import os, sys
keep = []
for line in sys.stdin:
    keep.extend(os.open("/dev/null", os.O_RDONLY) for _ in range(int(line)))
    print("ok", flush=True)
`)
	in, err := opener.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := opener.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := opener.Start(); err != nil {
		t.Fatalf("python3: %v", err)
	}
	defer func() { opener.Process.Kill(); opener.Wait() }()
	replies := bufio.NewReader(out)
	open := func(n int) {
		t.Helper()
		fmt.Fprintln(in, n)
		if _, err := replies.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	open(0)
	self := opener.Process.Pid
	before := *find(pass().FDUsers, self).FDs
	open(10)
	clock = clock.Add(time.Second)
	if got := *find(pass().FDUsers, self).FDs; got != before+10 {
		t.Errorf("after 10 fds opened: scan says %d, want %d", got, before+10)
	}
	// Counts that stood still are read again only when due: a pass right
	// after reads the ones that moved, and keeps the others' last values.
	clock = clock.Add(time.Second)
	pass()
	clock = clock.Add(10 * time.Millisecond)
	quick := pass()
	if quick.Read >= quick.Processes {
		t.Errorf("a pass 10 ms later read %d of %d processes: the ones standing still should wait", quick.Read, quick.Processes)
	}
	if p := find(quick.Parents, h.PID); p == nil || p.Zombies != 3 {
		t.Errorf("helper's zombies from kept values: %v, want 3", p)
	}

	// Due (what the process events name) makes the next pass read a pid
	// whatever its back-off: two more fds are seen 10 ms later.
	for range 4 { // let this process's own counts stand still
		clock = clock.Add(3 * time.Second)
		pass()
	}
	open(2)
	clock = clock.Add(10 * time.Millisecond)
	if got := *find(pass().FDUsers, self).FDs; got != before+10 {
		t.Errorf("10 ms after a pass, its back-off not yet over: %d fds, want the kept %d", got, before+10)
	}
	scan.Due([]int{self}, false)
	clock = clock.Add(10 * time.Millisecond)
	if got := *find(pass().FDUsers, self).FDs; got != before+12 {
		t.Errorf("a due pid: %d fds, want %d", got, before+12)
	}
}
