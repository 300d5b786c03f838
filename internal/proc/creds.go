package proc

import (
	"bytes"
	"fmt"
	"math/bits"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Creds is what decides whether one process may read another's fd links
// (ptrace read access): its uids, its capabilities, its user namespace,
// and whether its /proc directory is root's while it is not (the kernel
// does that to a process that is not dumpable).
type Creds struct {
	UID                    int
	CapPrm, CapEff, CapBnd uint64
	UserNS                 uint64
	DirOwner               int
}

// ReadCreds reads pid's credentials from status, ns/user and its
// directory's owner.
func (f *FS) ReadCreds(pid int) (Creds, error) {
	var c Creds
	data, err := readRecord(f.PIDFile(pid, "status"), nil)
	if err != nil {
		return c, err
	}
	for line := range bytes.Lines(data) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch string(k) {
		case "Uid":
			if f := bytes.Fields(v); len(f) > 0 {
				c.UID, _ = strconv.Atoi(string(f[0]))
			}
		case "CapPrm":
			c.CapPrm, _ = strconv.ParseUint(string(v), 16, 64)
		case "CapEff":
			c.CapEff, _ = strconv.ParseUint(string(v), 16, 64)
		case "CapBnd":
			c.CapBnd, _ = strconv.ParseUint(string(v), 16, 64)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(f.PIDFile(pid, "ns/user"), &st); err == nil {
		c.UserNS = st.Ino
	}
	if fi, err := os.Stat(f.PIDPath(pid)); err == nil {
		if s, ok := fi.Sys().(*unix.Stat_t); ok {
			c.DirOwner = int(s.Uid)
		}
	}
	return c, nil
}

// capNames are the capabilities by bit, as capabilities(7) names them.
var capNames = []string{"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
	"cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable", "cap_net_bind_service",
	"cap_net_broadcast", "cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module",
	"cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot",
	"cap_sys_nice", "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
	"cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override", "cap_mac_admin", "cap_syslog",
	"cap_wake_alarm", "cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf", "cap_checkpoint_restore"}

// CapNames names the capabilities in mask.
func CapNames(mask uint64) string {
	var names []string
	for mask != 0 {
		b := bits.TrailingZeros64(mask)
		mask &^= 1 << b
		if b < len(capNames) {
			names = append(names, capNames[b])
		} else {
			names = append(names, fmt.Sprintf("cap_%d", b))
		}
	}
	return strings.Join(names, ", ")
}
