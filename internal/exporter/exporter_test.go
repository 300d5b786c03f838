package exporter

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/zombiewatch/zombiewatch/internal/fixture"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

func TestMetricsOnFixture(t *testing.T) {
	c := New(Config{Reader: fixture.Open(t, "zombies-threads"), Top: 1, MaxParents: 10, PIDs: []int{203, 4242}})
	want := `
# HELP zombiewatch_zombie_children Zombie children a parent holds, by parent (only parents holding zombies).
# TYPE zombiewatch_zombie_children gauge
zombiewatch_zombie_children{comm="server",pid="100"} 3
zombiewatch_zombie_children{comm="worker",pid="203"} 1
# HELP zombiewatch_oldest_zombie_age_seconds Time since the oldest zombie child a parent holds started (as ps's ELAPSED).
# TYPE zombiewatch_oldest_zombie_age_seconds gauge
zombiewatch_oldest_zombie_age_seconds{comm="server",pid="100"} 5000
zombiewatch_oldest_zombie_age_seconds{comm="worker",pid="203"} 4000
# HELP zombiewatch_zombies Zombie processes on the host.
# TYPE zombiewatch_zombies gauge
zombiewatch_zombies 4
# HELP zombiewatch_open_fds Open file descriptors, for the processes nearest their limit and those asked for.
# TYPE zombiewatch_open_fds gauge
zombiewatch_open_fds{comm="init",pid="1"} 3
zombiewatch_open_fds{comm="worker",pid="203"} 3
# HELP zombiewatch_uid_tasks Processes and threads of a uid, zombies included: what RLIMIT_NPROC counts.
# TYPE zombiewatch_uid_tasks gauge
zombiewatch_uid_tasks{uid="0",user="root"} 1
zombiewatch_uid_tasks{uid="1000",user="alice"} 8
# HELP zombiewatch_watched_process_up 1 if a process asked for with --pid exists, 0 if not.
# TYPE zombiewatch_watched_process_up gauge
zombiewatch_watched_process_up{pid="203"} 1
zombiewatch_watched_process_up{pid="4242"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"zombiewatch_zombie_children", "zombiewatch_oldest_zombie_age_seconds", "zombiewatch_zombies",
		"zombiewatch_open_fds", "zombiewatch_uid_tasks", "zombiewatch_watched_process_up"); err != nil {
		t.Error(err)
	}
	// The missing --pid is an error series, not a silent absence.
	if got := testutil.ToFloat64(c.errors.WithLabelValues("no_process")); got != 1 {
		t.Errorf("scrape errors {kind=no_process} = %v after one scrape, want 1", got)
	}
}

func TestMetricsBySocketKind(t *testing.T) {
	c := New(Config{Reader: fixture.Open(t, "fds"), Top: 1, Names: []*regexp.Regexp{regexp.MustCompile("^app$")}})
	want := `
# HELP zombiewatch_close_wait_sockets TCP sockets in CLOSE_WAIT: the peer closed and the process never did.
# TYPE zombiewatch_close_wait_sockets gauge
zombiewatch_close_wait_sockets{comm="app",pid="100"} 1
# HELP zombiewatch_fd_soft_limit Soft RLIMIT_NOFILE of the same processes (absent when unlimited).
# TYPE zombiewatch_fd_soft_limit gauge
zombiewatch_fd_soft_limit{comm="app",pid="100"} 20
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "zombiewatch_close_wait_sockets", "zombiewatch_fd_soft_limit"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "zombiewatch_fds_by_kind"); n != 11 {
		t.Errorf("%d zombiewatch_fds_by_kind series, want the fixture's 11 kinds", n)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

// TestInvalidUTF8Name: a process named with bytes that are not UTF-8 is
// still exported, its name with '?' for each bad byte, and the scrape
// holds every other series (client_golang refuses the whole scrape on one
// invalid label value).
func TestInvalidUTF8Name(t *testing.T) {
	if got := Label("a\xff\xfeb"); got != "a??b" {
		t.Errorf("Label = %q, want a??b", got)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(fixture.Dir("zombies-threads"))); err != nil {
		t.Fatal(err)
	}
	status := filepath.Join(dir, "100", "status")
	data, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(status, []byte(strings.Replace(string(data), "Name:\tserver", "Name:\t\xff\xfe", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := proc.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := New(Config{Reader: model.NewReader(fs), MaxParents: 10})
	reg, err := Registry(c, false)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather with a non-UTF-8 comm: %v", err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() != "zombiewatch_zombie_children" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "comm" && l.GetValue() == "??" {
					found = m.GetGauge().GetValue() == 3
				}
			}
		}
	}
	if !found {
		t.Errorf("pid 100 named \\xff\\xfe: no zombiewatch_zombie_children{comm=\"??\"} 3 in the scrape")
	}
}

// TestUIDSeriesBounded: per-uid series stop at MaxUIDs, however many uids
// the host runs (a local user can make many).
func TestUIDSeriesBounded(t *testing.T) {
	c := New(Config{Reader: fixture.Open(t, "zombies-threads"), MaxUIDs: 1})
	if n := testutil.CollectAndCount(c, "zombiewatch_uid_tasks"); n != 1 {
		t.Errorf("%d zombiewatch_uid_tasks series with MaxUIDs 1 (the fixture has 2 uids), want 1", n)
	}
	if got := testutil.ToFloat64(c.errors.WithLabelValues("permission")); got != 0 {
		t.Errorf("scrape errors {kind=permission} = %v on a readable tree, want 0 (present from the first scrape)", got)
	}
}
