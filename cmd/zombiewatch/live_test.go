package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// TestLiveAgreesWithPS holds zombiewatch's JSON and --zombies beside ps
// and ls on a real parent with zombies on several threads.
func TestLiveAgreesWithPS(t *testing.T) {
	if _, err := exec.LookPath("ps"); err != nil {
		t.Skip("ps (procps) not installed: .ci/run installs it")
	}
	h := zombietest.Start(t, zombietest.Spec{Children: 12, Threads: 2, ExitCode: 3, Pipes: 2, SocketPairs: 1})
	pid := strconv.Itoa(h.PID)

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"--pid", pid, "--json"}, nil, &out, &errOut); err != nil {
		t.Fatalf("zombiewatch --pid %s --json: %v %s", pid, err, errOut.String())
	}
	var got struct {
		Zombies    int            `json:"zombies"`
		FDs        int            `json:"fds"`
		FDTypes    map[string]int `json:"fd_types"`
		ZombieList []struct {
			PID      int `json:"pid"`
			ExitCode int `json:"exit_code"`
		} `json:"zombie_list"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}

	// ps auxw shows each as "[name] <defunct>"; ps --ppid gives their pids.
	psOut, err := exec.Command("ps", "-o", "pid=,stat=,args=", "--ppid", pid).Output()
	if err != nil {
		t.Fatal(err)
	}
	var psZombies []int
	for line := range strings.Lines(string(psOut)) {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(f[1], "Z") && strings.HasSuffix(line, "<defunct>\n") {
			n, _ := strconv.Atoi(f[0])
			psZombies = append(psZombies, n)
		}
	}
	var ours []int
	for _, z := range got.ZombieList {
		ours = append(ours, z.PID)
		if z.ExitCode != 3 {
			t.Errorf("zombie %d exit code %d, want 3", z.PID, z.ExitCode)
		}
	}
	slices.Sort(ours)
	slices.Sort(psZombies)
	if got.Zombies != 12 || !slices.Equal(ours, psZombies) {
		t.Errorf("zombies %d %v; ps shows %v", got.Zombies, ours, psZombies)
	}

	fds, err := os.ReadDir(filepath.Join("/proc", pid, "fd"))
	if err != nil {
		t.Fatal(err)
	}
	if got.FDs != len(fds) || got.FDTypes["socket"] != 2 {
		t.Errorf("fds %d (sockets %d); ls /proc/%s/fd lists %d, the helper holds 2 sockets", got.FDs, got.FDTypes["socket"], pid, len(fds))
	}

	out.Reset()
	if err := run(context.Background(), []string{"--pid", pid, "--zombies"}, nil, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), "<defunct>\n"); lines != 12 {
		t.Errorf("--zombies listed %d <defunct> lines, want 12:\n%s", lines, out.String())
	}
}
