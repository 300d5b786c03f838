package proc

import (
	"bytes"
	"fmt"
	"strings"
)

// CgroupLine is one line of /proc/PID/cgroup: a v1 hierarchy with its
// controllers ("8:pids:/kubepods/..."), or the v2 unified one ("0::/...").
type CgroupLine struct {
	ID          int
	Controllers []string // empty for v2
	Path        string   // absolute within the hierarchy
}

// maxCgroupLines bounds a cgroup file: one line per hierarchy.
const maxCgroupLines = 64

// ParseCgroup parses /proc/PID/cgroup.
func ParseCgroup(data []byte) ([]CgroupLine, error) {
	var lines []CgroupLine
	for line := range bytes.Lines(data) {
		line = bytes.TrimRight(line, "\n")
		if len(line) == 0 {
			continue
		}
		if len(lines) == maxCgroupLines {
			return lines, fmt.Errorf("more than %d lines", maxCgroupLines)
		}
		id, rest, ok1 := bytes.Cut(line, []byte(":"))
		ctl, path, ok2 := bytes.Cut(rest, []byte(":"))
		n, err := atoi(id)
		if !ok1 || !ok2 || err != nil || len(path) == 0 || path[0] != '/' {
			return lines, fmt.Errorf("malformed line %q", truncate(line))
		}
		l := CgroupLine{ID: n, Path: string(path)}
		if len(ctl) > 0 {
			l.Controllers = strings.Split(string(ctl), ",")
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// ReadCgroup reads /proc/PID/cgroup.
func (f *FS) ReadCgroup(pid int) ([]CgroupLine, error) {
	path := f.PIDFile(pid, "cgroup")
	data, err := readFile(path, make([]byte, 0, 1024))
	if err != nil {
		return nil, err
	}
	lines, err := ParseCgroup(data)
	if err != nil {
		return nil, &ParseError{Path: path, Err: err}
	}
	return lines, nil
}

// KernelLimits are the host-wide limits on tasks and open files.
type KernelLimits struct {
	PIDMax     int    // kernel.pid_max: the highest pid + 1
	ThreadsMax int    // kernel.threads-max
	FileNr     int    // fs/file-nr: allocated file handles
	FileMax    uint64 // fs/file-nr's third field, fs.file-max (often 2^63-1)
}

// ReadKernelLimits reads kernel.pid_max, kernel.threads-max and fs/file-nr.
func (f *FS) ReadKernelLimits() (KernelLimits, error) {
	var k KernelLimits
	buf := make([]byte, 0, 128)
	for _, v := range []struct {
		file string
		into *int
	}{{"sys/kernel/pid_max", &k.PIDMax}, {"sys/kernel/threads-max", &k.ThreadsMax}} {
		data, err := readFile(f.path(v.file), buf)
		if err != nil {
			return k, err
		}
		if *v.into, err = atoi(bytes.TrimSpace(data)); err != nil {
			return k, &ParseError{Path: f.path(v.file), Err: err}
		}
	}
	path := f.path("sys/fs/file-nr")
	data, err := readFile(path, buf)
	if err != nil {
		return k, err
	}
	fields := bytes.Fields(data)
	if len(fields) != 3 {
		return k, &ParseError{Path: path, Err: fmt.Errorf("malformed %q", truncate(data))}
	}
	if k.FileNr, err = atoi(fields[0]); err == nil {
		k.FileMax, err = parseUint(fields[2])
	}
	if err != nil {
		return k, &ParseError{Path: path, Err: err}
	}
	return k, nil
}

// HostTasks is the number of tasks (processes and threads, zombies
// included) on the host, from /proc/loadavg's fourth field
// ("running/total"): one read, where counting would read every process.
func (f *FS) HostTasks() (int, error) {
	path := f.path("loadavg")
	data, err := readFile(path, make([]byte, 0, 128))
	if err != nil {
		return 0, err
	}
	fields := bytes.Fields(data)
	if len(fields) < 4 {
		return 0, &ParseError{Path: path, Err: fmt.Errorf("malformed %q", truncate(data))}
	}
	_, total, ok := bytes.Cut(fields[3], []byte("/"))
	n, err := atoi(total)
	if !ok || err != nil {
		return 0, &ParseError{Path: path, Err: fmt.Errorf("malformed %q", truncate(fields[3]))}
	}
	return n, nil
}

// PidsPath is the cgroup a process's tasks are counted in: its path in
// the v1 hierarchy of the pids controller, else the v2 one ("0::").
func PidsPath(lines []CgroupLine) string {
	for _, l := range lines {
		for _, c := range l.Controllers {
			if c == "pids" {
				return l.Path
			}
		}
	}
	for _, l := range lines {
		if l.ID == 0 && len(l.Controllers) == 0 {
			return l.Path
		}
	}
	return ""
}
