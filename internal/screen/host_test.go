package screen

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zombiewatch/zombiewatch/internal/fixture"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/watch"
)

// TestHostScreenFits: 20 growing processes and 3 growing containers on an
// 80x24 screen: every line fits, the containers keep their rows (the
// processes give way), and the selected process's growing fd group is
// named above the table.
func TestHostScreenFits(t *testing.T) {
	at := time.Date(2026, 11, 26, 18, 0, 0, 0, time.UTC)
	in := 120.0
	s := &watch.HostSample{Seq: 9, Time: at, Processes: 5000, Threads: 5100, Zombies: 300, WindowSeconds: 60}
	for i := range 20 {
		s.Growing = append(s.Growing, watch.Growing{PID: 1000 + i, Comm: "worker-with-a-long-name", FDs: 300 + i, FDsPerMin: 120,
			Since: at, Limit: "RLIMIT_NOFILE", LimitInSeconds: &in})
	}
	s.Growing[1].FDGroupsGrowing = []watch.GroupGrowth{{FDGroup: model.FDGroup{Kind: "socket", Protocol: "TCP",
		TCPState: "CLOSE_WAIT", Remote: "10.1.2.3:5432"}, Delta: 312}}
	s.Growing[1].FDGroupsGrowing[0].Count = 312
	max := 1024
	for i := range 3 {
		s.Containers = append(s.Containers, watch.ContainerGrowth{
			Cgroup: fmt.Sprintf("/kubepods/burstable/pod6b1f0000-aaaa-bbbb-cccc-%012d/3e8a%060d", i, i),
			Pids:   900, PidsMax: &max, PidsPerMin: 600, Zombies: 800, ZombiesPerMin: 590, LimitInSeconds: &in})
	}
	var b bytes.Buffer
	if err := drawHost(&b, s, "urgency", 1, 80, 24, false); err != nil {
		t.Fatal(err)
	}
	text := strings.TrimSuffix(strings.TrimPrefix(b.String(), "\x1b[H"), "\x1b[J")
	lines := strings.Split(strings.TrimSuffix(text, "\x1b[K\n"), "\x1b[K\n")
	if len(lines) > 24 {
		t.Errorf("%d lines on a 24-line screen", len(lines))
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("%d columns: %q", n, l)
		}
	}
	if got := lines[len(lines)-1]; !strings.Contains(got, "00000000000000000002") || !strings.Contains(got, "1024") {
		t.Errorf("last line %q; want the third container, its id's end and pids.max", got)
	}
	if !strings.Contains(lines[2], "pid 1001 fds grew: +312 TCP CLOSE_WAIT to 10.1.2.3:5432 (312 now)") {
		t.Errorf("line 3 %q; want the selected process's growing group", lines[2])
	}
	fixture.Golden(t, "host.screen", []byte(strings.Join(lines, "\n")+"\n"))
}
