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

// TestDocsExamples re-runs every example of the docs marked
// "<!-- example -->": a console block whose first line is "$ zombiewatch
// ARGS" (paths relative to the checkout) and whose other lines are its
// output, exactly. The docs cannot drift from the program.
func TestDocsExamples(t *testing.T) {
	t.Setenv("TZ", "UTC")
	block := regexp.MustCompile("(?s)<!-- example -->\n```console\n\\$ zombiewatch ([^\n]*)\n(.*?)```")
	n := 0
	for _, page := range docPages(t) {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(text), -1) {
			n++
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
	if n == 0 {
		t.Fatal("no example found in the docs")
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
