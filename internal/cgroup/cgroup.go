// Package cgroup reads the pids controller of a cgroupfs (v1, v2, or a v1
// hybrid with v2 beside it), its root a value like internal/proc's, and
// tells from a cgroup's path what it belongs to: a systemd unit, a
// container and its runtime, a Kubernetes pod and its QoS class.
//
// Paths come from /proc/PID/cgroup, which a container's own tree may
// write: they are cleaned and kept inside the root before any read.
package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zombiewatch/zombiewatch/internal/proc"

	"golang.org/x/sys/unix"
)

// FS is one cgroupfs mount point (default /sys/fs/cgroup).
type FS struct {
	root string
	// pidsV1: the v1 pids hierarchy's directory, when mounted.
	pidsV1 string
	// v2: the unified hierarchy's directory, when it has the pids
	// controller (pure v2 at the root, or hybrid under unified/).
	v2 string
}

// ErrNotCgroupfs: the root holds neither a v1 pids hierarchy nor a v2 one.
var ErrNotCgroupfs = errors.New("not a cgroupfs: no pids hierarchy (v1 pids/ or v2 cgroup.controllers)")

// New opens the cgroupfs at root.
func New(root string) (*FS, error) {
	f := &FS{root: root}
	if st, err := os.Stat(filepath.Join(root, "pids")); err == nil && st.IsDir() {
		f.pidsV1 = filepath.Join(root, "pids")
	}
	for _, dir := range []string{root, filepath.Join(root, "unified")} {
		if ctl, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers")); err == nil {
			if f.v2 == "" && (bytes.Contains(ctl, []byte("pids")) || f.pidsV1 == "") {
				f.v2 = dir
			}
		}
	}
	if f.pidsV1 == "" && f.v2 == "" {
		return nil, fmt.Errorf("cgroup root %s: %w", root, ErrNotCgroupfs)
	}
	return f, nil
}

// Root is the mount point.
func (f *FS) Root() string { return f.root }

// Pids is a cgroup's pids controller state.
type Pids struct {
	Path    string // the cgroup, within its hierarchy
	Current int
	Max     int // -1: "max", no limit
	// Refused counts forks the limit refused (pids.events "max"); -1 when
	// the file could not be read.
	Refused int
}

// Dir is the directory of a cgroup path in the pids hierarchy. The path is
// cleaned first: "/../../etc" cannot leave the root.
func (f *FS) dir(hierarchy, p string) string {
	return filepath.Join(hierarchy, filepath.FromSlash(path.Clean("/"+p)))
}

// PidsOf finds, for a process's cgroup lines, the nearest cgroup (its own
// or an ancestor) whose pids.max is a number: the limit its forks meet
// first. limited is false when no cgroup on the way has one; own is then
// its own cgroup's state (pids.current of its cgroup, where readable).
func (f *FS) PidsOf(lines []proc.CgroupLine) (p Pids, limited bool, err error) {
	hierarchy, cg := f.pidsPath(lines)
	if hierarchy == "" {
		return p, false, errors.New("no pids hierarchy in the process's cgroup file")
	}
	for c := cg; ; c = path.Dir(c) {
		dir := f.dir(hierarchy, c)
		max, err := readLimit(filepath.Join(dir, "pids.max"))
		if err == nil && max >= 0 {
			p, err := readPids(dir, c, max)
			return p, true, err
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return p, false, err
		}
		if c == "/" {
			break
		}
	}
	p, err = readPids(f.dir(hierarchy, cg), cg, -1)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil // the root cgroup has no pids.current in v1
	}
	return p, false, err
}

// pidsPath picks the hierarchy and the path the pids controller uses: the
// v1 "pids" line where that hierarchy is mounted, else the v2 "0::" line.
func (f *FS) pidsPath(lines []proc.CgroupLine) (string, string) {
	for _, l := range lines {
		for _, c := range l.Controllers {
			if c == "pids" && f.pidsV1 != "" {
				return f.pidsV1, path.Clean(l.Path)
			}
		}
	}
	for _, l := range lines {
		if l.ID == 0 && len(l.Controllers) == 0 && f.v2 != "" {
			return f.v2, path.Clean(l.Path)
		}
	}
	return "", ""
}

func readPids(dir, cg string, max int) (Pids, error) {
	p := Pids{Path: cg, Max: max, Refused: -1}
	cur, err := readInt(filepath.Join(dir, "pids.current"))
	if err != nil {
		return p, err
	}
	p.Current = cur
	if data, err := readSmall(filepath.Join(dir, "pids.events")); err == nil {
		for line := range strings.Lines(string(data)) {
			if rest, ok := strings.CutPrefix(line, "max "); ok {
				if n, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil && n >= 0 {
					p.Refused = n
				}
			}
		}
	}
	return p, nil
}

// readLimit reads pids.max: a number, or "max" (-1).
func readLimit(file string) (int, error) {
	data, err := readSmall(file)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: malformed %q", file, s)
	}
	return n, nil
}

func readInt(file string) (int, error) {
	data, err := readSmall(file)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: malformed %q", file, bytes.TrimSpace(data))
	}
	return n, nil
}

// readSmall reads a cgroup control file, at most 4 KiB.
func readSmall(file string) ([]byte, error) {
	// Non-blocking: a FIFO in a hostile --cgroup-root must not hang.
	fd, err := unix.Open(file, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: file, Err: err}
	}
	f := os.NewFile(uintptr(fd), file)
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := f.Read(buf)
	if n == 0 && err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// Limited lists every cgroup of the pids hierarchies with a numeric
// pids.max, walking at most maxWalk directories: what a host view shows
// even where no process it lists lives.
func (f *FS) Limited(maxWalk int) ([]Pids, error) {
	var out []Pids
	seen := 0
	for _, hierarchy := range []string{f.pidsV1, f.v2} {
		if hierarchy == "" {
			continue
		}
		err := filepath.WalkDir(hierarchy, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // a cgroup removed during the walk
			}
			if !d.IsDir() {
				return nil
			}
			if seen++; seen > maxWalk {
				return filepath.SkipAll
			}
			max, err := readLimit(filepath.Join(p, "pids.max"))
			if err != nil || max < 0 {
				return nil
			}
			rel, _ := filepath.Rel(hierarchy, p)
			pids, err := readPids(p, "/"+filepath.ToSlash(rel), max)
			if err == nil {
				out = append(out, pids)
			}
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}
