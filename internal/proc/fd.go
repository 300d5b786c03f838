package proc

import (
	"strings"
)

// FD kinds, as readlink of /proc/PID/fd/N names them. Anonymous inodes keep
// their kernel name: "anon_inode:eventfd", "anon_inode:[eventpoll]" becomes
// "anon_inode:eventpoll", and so on.
const (
	FDSocket = "socket"
	FDPipe   = "pipe"
	FDFile   = "file"   // a path outside /dev: regular file or directory
	FDDevice = "device" // a path under /dev
	FDOther  = "other"
)

// fdKind classifies one readlink target.
func fdKind(target string) string {
	switch {
	case strings.HasPrefix(target, "socket:["):
		return FDSocket
	case strings.HasPrefix(target, "pipe:["):
		return FDPipe
	case strings.HasPrefix(target, "anon_inode:"):
		name := strings.Trim(target[len("anon_inode:"):], "[]")
		if name == "" {
			name = "unknown"
		}
		return "anon_inode:" + name
	case strings.HasPrefix(target, "/dev/"):
		return FDDevice
	case strings.HasPrefix(target, "/"):
		return FDFile
	default:
		return FDOther
	}
}

// fdTypes counts pid's descriptors by kind with one readlink each. A
// descriptor closed between listing and readlink is skipped.
func fdTypes(targets []string) map[string]int {
	kinds := make(map[string]int)
	for _, t := range targets {
		if t == "" {
			continue
		}
		kinds[fdKind(t)]++
	}
	return kinds
}
