package zombiewatch_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestFloorPlan: every internal package imports only what its row of
// ARCHITECTURE.md's floor plan allows, and every internal package has a
// row.
func TestFloorPlan(t *testing.T) {
	doc, err := os.ReadFile("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| `internal/([a-z]+)` \\| [^|]+ \\| ([^|]+) \\|$")
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		allowed[m[1]] = map[string]bool{}
		for _, p := range strings.Split(m[2], ",") {
			if p = strings.TrimSpace(p); p != "—" && p != "" {
				allowed[m[1]][p] = true
			}
		}
	}
	const prefix = "github.com/zombiewatch/zombiewatch/internal/"
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./internal/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], prefix)
		ok, planned := allowed[pkg]
		if !planned {
			t.Errorf("internal/%s has no row in ARCHITECTURE.md's floor plan", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if dep, ours := strings.CutPrefix(imp, prefix); ours && !ok[dep] {
				t.Errorf("internal/%s imports internal/%s: not in its row of the floor plan", pkg, dep)
			}
		}
	}
	if len(allowed) < 10 {
		t.Fatalf("read %d rows of the floor plan: the table did not parse", len(allowed))
	}
}
