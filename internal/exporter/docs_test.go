package exporter

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDocsMetrics: docs/exporter.md's table names every metric the
// collector describes, and no other.
func TestDocsMetrics(t *testing.T) {
	text, err := os.ReadFile("../../docs/exporter.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(text), "| metric | labels | meaning |")
	if !ok {
		t.Fatal("docs/exporter.md: no table of metrics")
	}
	table, _, _ = strings.Cut(table, "\n\n")
	var documented []string
	for line := range strings.Lines(table) {
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range regexp.MustCompile("`(zombiewatch_[a-z_]+)`").FindAllStringSubmatch(cell, -1) {
			documented = append(documented, m[1])
		}
	}
	ch := make(chan *prometheus.Desc, 100)
	c := New(Config{})
	c.Describe(ch)
	close(ch)
	name := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	var described []string
	for d := range ch {
		if m := name.FindStringSubmatch(d.String()); m != nil {
			described = append(described, m[1])
		}
	}
	slices.Sort(documented)
	slices.Sort(described)
	documented, described = slices.Compact(documented), slices.Compact(described)
	if !slices.Equal(documented, described) {
		t.Errorf("docs/exporter.md documents\n%v\nthe collector describes\n%v", documented, described)
	}
}
