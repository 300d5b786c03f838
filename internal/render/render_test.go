package render

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/fixture"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/origin"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

var fixtures = []string{"zombies-threads", "vanished", "no-children", "fds", "comm-parens", "container-init", "no-children-file"}

// fixtureReport reads pid 100 of testdata/proc/TREE with a fixed clock,
// user names and time zone.
func fixtureReport(t *testing.T, tree string) *model.Process {
	t.Helper()
	s, err := fixture.Open(t, tree).Process(context.Background(), 100, model.Options{FDTypes: true, ZombieOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	// A checkout's files belong to whoever cloned it: name the owner the
	// way the fixture's status does, so the output does not depend on it.
	for i := range s.ZombieList {
		s.ZombieList[i].UID, s.ZombieList[i].User = &s.UID, s.User
	}
	return s
}

func TestGolden(t *testing.T) {
	for _, tree := range fixtures {
		t.Run(tree, func(t *testing.T) {
			r := fixtureReport(t, tree)
			for _, out := range []struct {
				ext    string
				render func(*bytes.Buffer, *model.Process) error
			}{
				{"table", func(b *bytes.Buffer, r *model.Process) error { return Table(b, r) }},
				{"zombies", func(b *bytes.Buffer, r *model.Process) error { return Zombies(b, r) }},
				{"json", func(b *bytes.Buffer, r *model.Process) error { return JSON(b, r, true) }},
			} {
				var b bytes.Buffer
				if err := out.render(&b, r); err != nil {
					t.Fatal(err)
				}
				fixture.Golden(t, tree+"."+out.ext, b.Bytes())
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
			r, err := fixture.Open(t, tree).Host(context.Background(), model.HostOptions{Parents: 5, FDUsers: 5, UIDs: 5, FDTypes: true})
			if err != nil {
				t.Fatal(err)
			}
			var table, js bytes.Buffer
			if err := HostTable(&table, r); err != nil {
				t.Fatal(err)
			}
			if err := HostJSON(&js, r, true); err != nil {
				t.Fatal(err)
			}
			fixture.Golden(t, "host-"+tree+".table", table.Bytes())
			fixture.Golden(t, "host-"+tree+".json", js.Bytes())
		})
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"server":                "server",
		"\x1b]0;owned\a\x1b[2J": "?]0;owned??[2J",
		"two\nlines":            "two?lines",
		"\xff\xfe":              "??",
		"caf\u00e9 \u4e16":      "caf\u00e9 \u4e16",
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHostileNames: a process named with terminal escapes and a newline
// cannot reach the terminal through the host table or the zombie list;
// the JSON keeps its name as data.
func TestHostileNames(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(fixture.Dir("zombies-threads"))); err != nil {
		t.Fatal(err)
	}
	evil := "\x1b]0;owned\a\x1b[2J\nx"
	for _, f := range []string{"100/status", "100/stat", "200/stat"} {
		path := filepath.Join(dir, f)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.Replace(data, []byte("server"), []byte(evil), 1)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := proc.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := model.NewReader(fs)
	h, err := r.Host(context.Background(), model.HostOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Process(context.Background(), 100, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := HostTable(&out, h); err != nil {
		t.Fatal(err)
	}
	if err := Table(&out, p); err != nil {
		t.Fatal(err)
	}
	if err := Zombies(&out, p); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(out.Bytes(), "\x1b\a") || bytes.Contains(out.Bytes(), []byte("\nx")) {
		t.Errorf("an escape or a newline from a process name reached the terminal:\n%q", out.String())
	}
	out.Reset()
	if err := JSON(&out, p, false); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out.Bytes(), []byte(`\u001b]0;owned\u0007\u001b[2J\nx`)) {
		t.Errorf("JSON does not keep the name as escaped data: %s", out.String())
	}
}

// TestChartHonoursNoColor: with NO_COLOR set, a chart meant for a terminal
// has no escape sequence, and tells its two lines apart by character.
func TestChartHonoursNoColor(t *testing.T) {
	zombies, fds := []float64{0, 1, 2, 3}, []float64{5, 5, 6, 7}
	if got := Chart(zombies, fds, 20, 4, true); !strings.Contains(got, "\x1b[") {
		t.Fatalf("a terminal's chart without NO_COLOR has no colour:\n%s", got)
	}
	t.Setenv("NO_COLOR", "1")
	got := Chart(zombies, fds, 20, 4, true)
	if strings.Contains(got, "\x1b") || !strings.Contains(got, "* zombies   o fds") {
		t.Errorf("NO_COLOR chart:\n%q\nwant no escape and the character legend", got)
	}
}

// TestOriginEscapesHostileNames: a traced binary names its own functions,
// files and paths; none of it reaches the terminal raw. The standard
// library's frames above the program's are counted, not shown.
func TestOriginEscapesHostileNames(t *testing.T) {
	evil := "main.x\x1b]0;PWNED\x07\x1b[2J"
	r := &origin.Report{PID: 7, TracedSeconds: 2,
		FDs: []origin.FDOrigin{{
			FDGroup: model.FDGroup{Kind: proc.FDFile, Count: 3},
			Example: "/tmp/\x1b[31mred", PerMinute: 90,
			Stack: []origin.Frame{
				{Function: "os.OpenFile", File: "/usr/lib/go/src/os/file.go", Line: 400},
				{Function: evil, File: "/src/\x1b[1mmain.go", Line: 9},
				{Function: "runtime.goexit", File: "asm_amd64.s", Line: 1},
			},
			Whole: true,
		}},
		Zombies:         []origin.ZombieOrigin{},
		ZombiesUntraced: 2,
	}
	var b strings.Builder
	if err := Origin(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("raw control bytes reached the output:\n%q", out)
	}
	for _, want := range []string{"3 file (/tmp/", "+90/min", "(1 frame in Go's standard library)", "main.x", "← runtime.goexit", "2 forked before tracing began"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "os.OpenFile") {
		t.Errorf("a standard library frame above the program's is shown:\n%s", out)
	}
}
