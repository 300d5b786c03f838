package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/fixture"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var fixtures = []string{"zombies-threads", "vanished", "no-children", "fds", "comm-parens", "container-init", "no-children-file"}

// fixtureReport reads pid 100 of testdata/proc/TREE with a fixed clock,
// user names and time zone.
func fixtureReport(t *testing.T, tree string) *Report {
	t.Helper()
	fs := fixture.Open(t, tree)
	s, err := fs.Snapshot(100, proc.Options{FDTypes: true, ZombieOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	// A checkout's files belong to whoever cloned it: name the owner the
	// way the fixture's status does, so the output does not depend on it.
	for i := range s.ZombieList {
		s.ZombieList[i].UID, s.ZombieList[i].User = &s.UID, s.User
	}
	return New(s, nil)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "..", "testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/report -update to write it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

func TestGolden(t *testing.T) {
	for _, tree := range fixtures {
		t.Run(tree, func(t *testing.T) {
			r := fixtureReport(t, tree)
			for _, out := range []struct {
				ext    string
				render func(*bytes.Buffer, *Report) error
			}{
				{"table", func(b *bytes.Buffer, r *Report) error { return Table(b, r) }},
				{"zombies", func(b *bytes.Buffer, r *Report) error { return Zombies(b, r) }},
				{"json", func(b *bytes.Buffer, r *Report) error { return JSON(b, r, true) }},
			} {
				var b bytes.Buffer
				if err := out.render(&b, r); err != nil {
					t.Fatal(err)
				}
				golden(t, tree+"."+out.ext, b.Bytes())
			}
		})
	}
}

func TestDiagnose(t *testing.T) {
	zombies := func(s proc.Snapshot) *proc.Snapshot {
		s.PID, s.State = 812, "S"
		if s.Zombies == 0 {
			s.Zombies = 140
		}
		s.DescendantZombies = s.Zombies
		s.ZombieList = []proc.Zombie{{PID: 900, PPID: 812, AgeSeconds: 185}}
		return &s
	}
	for _, tc := range []struct {
		name string
		s    *proc.Snapshot
		srv  *control.Status
		want string
	}{
		{"none", &proc.Snapshot{PID: 5, ZombieList: []proc.Zombie{}}, nil, "pid 5 holds no zombies"},
		{"descendants only", &proc.Snapshot{PID: 5, DescendantZombies: 2, ZombieList: []proc.Zombie{{PID: 9, PPID: 7}, {PID: 10, PPID: 7}}}, nil,
			"pid 5 holds no zombies itself; its descendants hold 2 (the oldest under pid 7: zombiewatch --pid 7)"},
		{"default", zombies(proc.Snapshot{Sigchld: proc.SigchldDefault}), nil,
			"pid 812 holds 140 zombies, the oldest 3m05s old; it does not catch SIGCHLD and does not call wait: add a reaper or ignore SIGCHLD"},
		{"caught", zombies(proc.Snapshot{Sigchld: proc.SigchldCaught}), nil, "it catches SIGCHLD but does not wait for every child"},
		{"blocked", zombies(proc.Snapshot{Sigchld: proc.SigchldCaught, SigchldBlocked: true}), nil, "it blocks SIGCHLD"},
		{"ignored", zombies(proc.Snapshot{Sigchld: proc.SigchldIgnored}), nil, "it ignores SIGCHLD"},
		{"stopped", func() *proc.Snapshot { s := zombies(proc.Snapshot{}); s.State = "T"; return s }(), nil, "it is stopped (state T) and cannot reap until it runs: kill -CONT 812"},
		{"container init", zombies(proc.Snapshot{NamespaceInit: true, AdoptedZombies: 3}), nil,
			"it is PID 1 of its pid namespace and inherits every orphan (3 of these it adopted)"},
		{"subreaper", zombies(proc.Snapshot{Zombies: 2, AdoptedZombies: 2, Sigchld: proc.SigchldCaught}), nil, "they are orphans it adopted as a subreaper"},
		{"one", zombies(proc.Snapshot{Zombies: 1}), nil, "pid 812 holds 1 zombie, the oldest"},
		{"server reaper off", zombies(proc.Snapshot{Sigchld: proc.SigchldCaught}), &control.Status{Settings: control.Settings{Reaper: control.ReaperOff}},
			"it is the bundled server with its reaper off, so nobody waits for a finished child: zombiewatch ctl --pid 812 reaper=loop"},
		{"server reaper wait", zombies(proc.Snapshot{Sigchld: proc.SigchldCaught}), &control.Status{Settings: control.Settings{Reaper: control.ReaperWait}},
			"waiting once per SIGCHLD, and signals coalesce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Diagnose(tc.s, tc.srv); !strings.Contains(got, tc.want) {
				t.Errorf("Diagnose = %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 185 * time.Second: "3m05s",
		2*time.Hour + 5*time.Minute: "2h05m", 76 * time.Hour: "3d04h",
	} {
		if got := Age(d); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestHostGolden(t *testing.T) {
	for _, tree := range []string{"zombies-threads", "container-init", "fds"} {
		t.Run(tree, func(t *testing.T) {
			h, err := fixture.Open(t, tree).Scan(proc.ScanOptions{Parents: 5, FDUsers: 5, UIDs: 5, FDTypes: true})
			if err != nil {
				t.Fatal(err)
			}
			r := NewHost(h, nil)
			var table, js bytes.Buffer
			if err := HostTable(&table, r); err != nil {
				t.Fatal(err)
			}
			if err := HostJSON(&js, r, true); err != nil {
				t.Fatal(err)
			}
			golden(t, "host-"+tree+".table", table.Bytes())
			golden(t, "host-"+tree+".json", js.Bytes())
		})
	}
}
