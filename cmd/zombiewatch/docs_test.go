package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/fixture"
	"github.com/zombiewatch/zombiewatch/internal/model"
)

// repoRoot is the checkout's root, from this package's directory.
const repoRoot = "../.."

// docPages are the pages whose examples and lists are checked.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append(pages, filepath.Join(repoRoot, "README.md"))
}

// docBlock is one match of a block's pattern on a page.
type docBlock struct {
	page  string
	match []string
}

// docBlocks are every match of block on every page; a test of blocks
// that finds none fails, so a renamed marker cannot turn it off.
func docBlocks(t *testing.T, block *regexp.Regexp) []docBlock {
	t.Helper()
	var found []docBlock
	for _, page := range docPages(t) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(text), -1) {
			found = append(found, docBlock{page, m})
		}
	}
	if len(found) == 0 {
		t.Fatalf("no block like %s found in the docs", block)
	}
	return found
}

// TestDocsExamples re-runs every example of the docs marked
// "<!-- example -->": a console block whose first line is "$ zombiewatch
// ARGS" (paths relative to the checkout) and whose other lines are its
// output, exactly. The docs cannot drift from the program.
func TestDocsExamples(t *testing.T) {
	t.Setenv("TZ", "UTC")
	block := regexp.MustCompile("(?s)<!-- example -->\n```console\n\\$ zombiewatch ([^\n]*)\n(.*?)```")
	for _, b := range docBlocks(t, block) {
		page, m := b.page, b.match
		args := strings.Fields(m[1])
		for i, a := range args {
			if strings.HasPrefix(a, "testdata/") {
				args[i] = filepath.Join(repoRoot, a)
			}
		}
		var stdout bytes.Buffer
		if err := run(context.Background(), args, nil, &stdout, &bytes.Buffer{}); err != nil {
			t.Errorf("%s: zombiewatch %s: %v", page, m[1], err)
			continue
		}
		if got := stdout.String(); got != m[2] {
			t.Errorf("%s: zombiewatch %s prints:\n%s\nthe page shows:\n%s", page, m[1], got, m[2])
		}
	}
}

// TestDocsGoldens: every block of the docs marked "<!-- golden: NAME ...
// -->" (output a test makes on a fixture or a made-up sample: a watch's
// lines, its screen) is testdata/golden/NAME exactly, after its optional
// "$ command" line. The tests that write the goldens keep them true.
func TestDocsGoldens(t *testing.T) {
	block := regexp.MustCompile("(?s)<!-- golden: (\\S+)[^>]*-->\n```console\n(\\$ [^\n]*\n)?(.*?)```")
	for _, b := range docBlocks(t, block) {
		page, m := b.page, b.match
		want, err := os.ReadFile(filepath.Join(fixture.GoldenDir(), m[1]))
		if err != nil {
			t.Errorf("%s: %v", page, err)
			continue
		}
		if m[3] != string(want) {
			t.Errorf("%s: the block of %s differs from testdata/golden/%s:\n%s", page, m[1], m[1], m[3])
		}
	}
}

// TestDocsCauses: docs/diagnosis.md lists every cause the diagnosis can
// give, and no other.
func TestDocsCauses(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(repoRoot, "docs", "diagnosis.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(text), "<!-- causes:")
	if !ok {
		t.Fatal("docs/diagnosis.md: no <!-- causes: marker")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	var listed []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\|").FindAllStringSubmatch(table, -1) {
		listed = append(listed, m[1])
	}
	var want []string
	for _, c := range diagnose.Causes {
		want = append(want, string(c))
	}
	slices.Sort(listed)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("docs/diagnosis.md lists causes %v; the diagnosis has %v", listed, want)
	}
}

// TestDocsJSONKeys: docs/usage.md's table of --json keys names every key
// of a Process, and no key it does not have.
func TestDocsJSONKeys(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(repoRoot, "docs", "usage.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(text), "| key | meaning |")
	if !ok {
		t.Fatal("docs/usage.md: no table of JSON keys")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	documented := map[string]bool{}
	for line := range strings.Lines(table) {
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range regexp.MustCompile("`([a-z_0-9]+)`").FindAllStringSubmatch(cell, -1) {
			documented[m[1]] = true
		}
	}
	typ := reflect.TypeOf(model.Process{})
	for i := range typ.NumField() {
		tag, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		if !documented[tag] {
			t.Errorf("--json key %q is not in docs/usage.md's table", tag)
		}
		delete(documented, tag)
	}
	for key := range documented {
		t.Errorf("docs/usage.md documents %q, which --json does not have", key)
	}
}

// capturedBlock is the block of page marked "<!-- captured: NAME ... -->":
// output of a live run (a demo, a server's counters), whose numbers differ
// from run to run. Its lines, first its "$ command" line, are returned.
func capturedBlock(t *testing.T, page, name string) []string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(repoRoot, page))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- captured: " + regexp.QuoteMeta(name) + "[^>]*-->\n```console\n(.*?)```").FindStringSubmatch(string(text))
	if m == nil {
		t.Fatalf("%s: no block marked captured: %s", page, name)
	}
	return strings.Split(strings.TrimSuffix(m[1], "\n"), "\n")
}

// masked is a line with its numbers, paths and runs of blanks made
// alike: two runs that differ only in their measurements mask the same.
func masked(line string) string {
	line = regexp.MustCompile(`(/|docs/)[^\s)]*`).ReplaceAllString(line, "PATH")
	line = regexp.MustCompile(`[0-9]+(\.[0-9]+)?`).ReplaceAllString(line, "N")
	return strings.Join(strings.Fields(line), " ")
}

// checkCaptured: every line of a captured block (but its command and a
// chart's rows) appears in got, numbers and paths aside; a line that
// starts "N. what:" (a demo phase, whose sentence may say it was skipped
// where the machine cannot run it) only up to its colon. So the docs
// cannot drift from the program's wording.
func checkCaptured(t *testing.T, page, name, got string) {
	t.Helper()
	have := map[string]bool{}
	for line := range strings.Lines(got) {
		m := masked(line)
		have[m] = true
		if head, _, ok := strings.Cut(m, ":"); ok && regexp.MustCompile(`^N\. `).MatchString(m) {
			have[head] = true
		}
	}
	for _, line := range capturedBlock(t, page, name) {
		if strings.HasPrefix(line, "$ ") || strings.ContainsAny(line, "┤┼") || strings.TrimSpace(line) == "" {
			continue
		}
		m := masked(line)
		if regexp.MustCompile(`^N\. `).MatchString(m) {
			m, _, _ = strings.Cut(m, ":")
		}
		if !have[m] {
			t.Errorf("%s: the captured %s line %q is not in the program's output:\n%s", page, name, line, got)
		}
	}
}
