package model

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
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

// refusalHint says why the kernel refused process pid's fd links, as
// far as the two processes' credentials show it, and what would fix it:
// it follows the kernel's ptrace read check (same uid or CAP_SYS_PTRACE;
// then a target holding capabilities the reader lacks needs
// CAP_SYS_PTRACE too; a process that is not dumpable, likewise). Where the
// reader already holds CAP_SYS_PTRACE it never advises it: it says what it
// saw and that nothing this process can gain would help. Where the path is
// not this host's /proc (a copied tree), the general fix.
func refusalHint(pid int, path string) string {
	theirs, ours, ok := credsOf(pid, path)
	if !ok {
		return ptraceHint
	}
	extra := theirs.CapPrm &^ ours.CapEff
	// The fd directory is its owner's alone (mode 0500): another uid
	// walks it only with CAP_DAC_READ_SEARCH (or CAP_DAC_OVERRIDE),
	// whatever its ptrace rights.
	if theirs.DirOwner != ours.UID && ours.CapEff&(capDACSearch|capDACOverride) == 0 {
		return dirOwnerHint(theirs, ours)
	}
	if ours.CapEff&capPtrace != 0 {
		return ptracerRefusedHint(theirs, ours, extra)
	}
	switch {
	case theirs.UID != ours.UID:
		return fmt.Sprintf("it runs as uid %d, this process as uid %d without CAP_SYS_PTRACE: run as uid %d, as root, or with CAP_SYS_PTRACE", theirs.UID, ours.UID, theirs.UID)
	case extra != 0:
		return fmt.Sprintf("it holds capabilities this process lacks (%s): run with CAP_SYS_PTRACE", capList(extra))
	case theirs.DirOwner != theirs.UID:
		return "it is not dumpable (setuid, or prctl PR_SET_DUMPABLE 0): run with CAP_SYS_PTRACE"
	}
	return "a security module refused it (Yama's ptrace_scope, AppArmor, SELinux): run with CAP_SYS_PTRACE or see the kernel's audit log"
}

// The capability bits the hints test.
const (
	capDACOverride = 1 << 1
	capDACSearch   = 1 << 2
	capPtrace      = 1 << 19
	capSysAdmin    = 1 << 21
)

// credsOf reads the credentials of pid, in the tree path is under (/proc,
// or the host's /proc mounted elsewhere: a DaemonSet's /host/proc), and of
// this process; ok is false where either cannot be read.
func credsOf(pid int, path string) (theirs, ours proc.Creds, ok bool) {
	root, _, found := strings.Cut(path, "/"+strconv.Itoa(pid)+"/")
	if !found {
		return theirs, ours, false
	}
	tree, err := proc.New(root)
	if err != nil || !tree.Real() {
		return theirs, ours, false
	}
	own, err := proc.New("/proc")
	if err != nil {
		return theirs, ours, false
	}
	theirs, err1 := tree.ReadCreds(pid)
	ours, err2 := own.ReadCreds(os.Getpid())
	return theirs, ours, err1 == nil && err2 == nil
}

// dirOwnerHint: another uid's fd directory, and no CAP_DAC_READ_SEARCH.
func dirOwnerHint(theirs, ours proc.Creds) string {
	fix := fmt.Sprintf("run as uid %d, as root, or with CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE", theirs.DirOwner)
	if ours.UID != 0 && ours.CapBnd&capPtrace != 0 && ours.CapBnd&capSysAdmin == 0 {
		// A bounding set narrowed yet keeping CAP_SYS_PTRACE: a
		// container given the capability but run as a non-root user
		// (Kubernetes adds capabilities to root alone; podman makes
		// them ambient). A user's shell has the full bounding set.
		fix = "run the container as uid 0 with only CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH added"
	}
	return fmt.Sprintf("its fd directory is uid %d's (mode 0500) and this process, uid %d, lacks CAP_DAC_READ_SEARCH: %s",
		theirs.DirOwner, ours.UID, fix)
}

// ptracerRefusedHint: this process has CAP_SYS_PTRACE and was refused
// anyway; it names what it can see of why.
func ptracerRefusedHint(theirs, ours proc.Creds, extra uint64) string {
	var seen []string
	if extra != 0 {
		seen = append(seen, "it holds capabilities this process lacks ("+capList(extra)+")")
	}
	switch {
	case theirs.UserNS == 0:
		seen = append(seen, "its user namespace cannot be read")
	case theirs.UserNS != ours.UserNS:
		seen = append(seen, "it runs in another user namespace")
	}
	why := "the kernel or a security module (Yama, AppArmor, SELinux, a BPF LSM) refused it"
	if len(seen) > 0 {
		why += "; " + strings.Join(seen, ", ")
	}
	return "this process already has CAP_SYS_PTRACE" + maybeRoot(ours) + ": " + why +
		"; no privilege this process can gain reads it (typical of a VM's or sandbox's own agent)"
}

// capList names up to four capabilities of mask, and how many more.
func capList(mask uint64) string {
	names := strings.Split(proc.CapNames(mask), ", ")
	if len(names) <= 4 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:4], ", "), len(names)-4)
}

// maybeRoot adds ", as root" where the reader is root.
func maybeRoot(c proc.Creds) string {
	if c.UID == 0 {
		return " and runs as root"
	}
	return ""
}

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
		return &PermissionError{PID: pid, What: what, Path: path, Hint: refusalHint(pid, path), Err: err}
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
