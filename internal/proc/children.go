package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
)

// errNoChildrenFile: the kernel lacks CONFIG_PROC_CHILDREN.
var errNoChildrenFile = errors.New("no task/TID/children file")

// childPIDs lists pid's children: the union of every thread's
// task/TID/children, since a child belongs to the thread that forked it and
// a Go or threaded parent spreads them over several threads. A thread that
// exits between listing and reading is skipped; the kernel moves its
// children to a sibling thread, so the same child may be read twice and the
// union is deduplicated. The list is sorted.
func (f *FS) childPIDs(pid int, buf []byte) ([]int, []byte, error) {
	dir, err := os.Open(f.pidPath(pid, "task"))
	if err != nil {
		return nil, buf, err
	}
	tids, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return nil, buf, err
	}
	var kids []int
	for _, tid := range tids {
		data, err := readFile(f.pidPath(pid, "task", tid, "children"), buf)
		if err != nil {
			if !isGone(err) {
				return nil, buf, err
			}
			// Gone: the thread exited, or the file never existed.
			if _, serr := os.Stat(f.pidPath(pid, "task", tid)); serr == nil {
				return nil, buf, errNoChildrenFile
			}
			continue
		}
		buf = data
		for field := range bytes.FieldsSeq(data) {
			kid, err := atoi(field)
			if err != nil {
				return nil, buf, fmt.Errorf("%s: malformed pid %q", f.pidPath(pid, "task", tid, "children"), field)
			}
			kids = append(kids, kid)
		}
	}
	slices.Sort(kids)
	return slices.Compact(kids), buf, nil
}

// ppidIndex maps each ppid to its children by reading every process's stat:
// the fallback where task/TID/children does not exist. Built once per
// snapshot, only when needed.
func (f *FS) ppidIndex(buf []byte) (map[int][]int, error) {
	pids, err := f.pids()
	if err != nil {
		return nil, err
	}
	idx := make(map[int][]int)
	for _, pid := range pids {
		var s stat
		s, buf, err = f.readStat(pid, buf)
		if err != nil {
			if isGone(err) {
				continue
			}
			return nil, err
		}
		idx[s.PPID] = append(idx[s.PPID], pid)
	}
	return idx, nil
}

// pids lists the numeric entries of the root, unsorted.
func (f *FS) pids() ([]int, error) {
	dir, err := os.Open(f.root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", f.root, err)
	}
	pids := make([]int, 0, len(names))
	for _, name := range names {
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		if pid, err := strconv.Atoi(name); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Children lists pid's children (every thread's), sorted; without
// CONFIG_PROC_CHILDREN it scans every process's ppid.
func (f *FS) Children(pid int) ([]int, error) {
	kids, buf, err := f.childPIDs(pid, nil)
	if errors.Is(err, errNoChildrenFile) {
		idx, err := f.ppidIndex(buf)
		return idx[pid], err
	}
	if err != nil {
		return nil, classify(pid, f.pidPath(pid, "task"), err)
	}
	return kids, nil
}
