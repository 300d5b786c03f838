package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
)

// ErrNoChildrenFile: the kernel lacks CONFIG_PROC_CHILDREN (or the tree has
// no task/TID/children): callers fall back to ChildrenByPPID.
var ErrNoChildrenFile = errors.New("no task/TID/children file")

// Children lists pid's children: the union of every thread's
// task/TID/children, since a child belongs to the thread that forked it and
// a Go or threaded parent spreads them over several threads. A thread that
// exits between listing and reading is skipped; the kernel moves its
// children to a sibling thread, so the same child may be read twice and the
// union is deduplicated. The list is sorted.
func (f *FS) Children(pid int, buf []byte) ([]int, []byte, error) {
	dir, err := OpenDir(f.PIDPath(pid, "task"))
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
		if _, ok := ParsePID(tid); !ok {
			continue
		}
		path := f.PIDPath(pid, "task", tid, "children")
		data, err := readFileMax(path, buf, maxChildren)
		if err != nil {
			if !IsGone(err) {
				return nil, buf, err
			}
			// Gone: the thread exited, or the file never existed.
			if _, serr := os.Stat(f.PIDPath(pid, "task", tid)); serr == nil {
				return nil, buf, ErrNoChildrenFile
			}
			continue
		}
		buf = data
		if kids, err = appendChildren(kids, data); err != nil {
			return nil, buf, &ParseError{Path: path, Err: err}
		}
	}
	slices.Sort(kids)
	return slices.Compact(kids), buf, nil
}

// ChildrenByPPID maps each ppid to its children by reading every process's
// stat: the fallback where task/TID/children does not exist. A pid whose
// stat does not parse is skipped and counted.
func (f *FS) ChildrenByPPID() (idx map[int][]int, skipped int, err error) {
	pids, err := f.PIDs()
	if err != nil {
		return nil, 0, err
	}
	idx = make(map[int][]int)
	buf := make([]byte, 0, 1024)
	for _, pid := range pids {
		var s Stat
		s, buf, err = f.ReadStat(pid, buf)
		if err != nil {
			var perr *ParseError
			switch {
			case IsGone(err):
				continue
			case errors.As(err, &perr):
				skipped++
				continue
			}
			return nil, skipped, err
		}
		idx[s.PPID] = append(idx[s.PPID], pid)
	}
	return idx, skipped, nil
}

// PIDs lists the pid entries of the root, unsorted. Names that are not a
// canonical pid ("0100", "self") are not processes.
func (f *FS) PIDs() ([]int, error) {
	dir, err := OpenDir(f.root)
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
		if name[0] < '1' || name[0] > '9' {
			continue
		}
		if pid, ok := ParsePID(name); ok {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// appendChildren parses a children file ("201 202 ") onto kids.
func appendChildren(kids []int, data []byte) ([]int, error) {
	for field := range bytes.FieldsSeq(data) {
		kid, ok := ParsePID(string(field))
		if !ok {
			return kids, fmt.Errorf("malformed pid %q", truncate(field))
		}
		kids = append(kids, kid)
	}
	return kids, nil
}
