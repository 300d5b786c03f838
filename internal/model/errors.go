package model

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// PermissionError is a read the kernel refused. Hint says what would fix it.
type PermissionError struct {
	PID  int
	What string // what the read was for: "fd kinds", "fd count", ...
	Path string
	Hint string
	Err  error
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("read %s: permission denied (%s)", e.Path, e.Hint)
}

func (e *PermissionError) Unwrap() error { return e.Err }

// ptraceHint is what lets a reader see another user's fd directory.
const ptraceHint = "run as the process's user, as root, or with CAP_SYS_PTRACE"

// isPermission tells whether err is a refusal by the kernel.
func isPermission(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)
}

// classify turns a failed read of the target's file into the error the
// caller should see: ErrNoProcess, a PermissionError, or the error itself.
// The one place refusals are worded.
func classify(pid int, what, path string, err error) error {
	switch {
	case proc.IsGone(err):
		return fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	case isPermission(err):
		return &PermissionError{PID: pid, What: what, Path: path, Hint: ptraceHint, Err: err}
	default:
		return err
	}
}

// signalName names a signal the way kill -l does ("SIGKILL").
func signalName(sig syscall.Signal) string {
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", int(sig))
}
