package cgroup

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ErrNoPidsController: no pids hierarchy this process may make a cgroup in.
var ErrNoPidsController = errors.New("no writable pids controller (a v1 pids hierarchy, or v2 with pids in cgroup.subtree_control)")

// Made is a pids cgroup this process made.
type Made struct {
	Dir    string // its directory
	Path   string // its path within the hierarchy
	parent string
}

// MakePids makes a pids cgroup named name under root's pids hierarchy
// (v1 root/pids, or a v2 root whose subtree has pids) with pids.max max.
func MakePids(root, name string, max int) (*Made, error) {
	var parent string
	for _, p := range []string{filepath.Join(root, "pids"), root} {
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err != nil {
			continue
		}
		if p == root {
			if b, err := os.ReadFile(filepath.Join(p, "cgroup.subtree_control")); err != nil || !bytes.Contains(b, []byte("pids")) {
				continue
			}
		}
		parent = p
		break
	}
	if parent == "" {
		return nil, ErrNoPidsController
	}
	m := &Made{Dir: filepath.Join(parent, name), Path: "/" + name, parent: parent}
	if err := os.Mkdir(m.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("make pids cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(m.Dir, "pids.max"), []byte(strconv.Itoa(max)), 0o644); err != nil {
		os.Remove(m.Dir)
		return nil, fmt.Errorf("%s: %w", filepath.Join(m.Dir, "pids.max"), err)
	}
	return m, nil
}

// Enter moves process pid (all its threads) into the cgroup.
func (m *Made) Enter(pid int) error {
	return os.WriteFile(filepath.Join(m.Dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// Leave moves process pid back to the parent cgroup.
func (m *Made) Leave(pid int) error {
	return os.WriteFile(filepath.Join(m.parent, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// Remove moves this process back to the parent and removes the cgroup,
// once every other process in it has gone (waiting up to wait).
func (m *Made) Remove(wait time.Duration) error {
	os.WriteFile(filepath.Join(m.parent, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	deadline := time.Now().Add(wait)
	for {
		err := os.Remove(m.Dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("remove %s: %w", m.Dir, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
