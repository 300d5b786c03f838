package sockdiag

import (
	"sync"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Tables answers what a process's sockets are, keeping one dump per
// network namespace until Forget (a reading's length): every process of a
// namespace shares its table, so a host reading dumps each namespace once
// (4x cheaper than the text tables, measured: go test ./internal/sockdiag
// -bench Sockets).
type Tables struct {
	fs *proc.FS
	mu sync.Mutex
	// inet: netlink dumps by namespace inode; nil for a namespace netlink
	// did not answer for (its processes' net files are read instead).
	inet map[uint64]map[uint64]proc.Socket
}

// NewTables answers for the processes of fs.
func NewTables(fs *proc.FS) *Tables { return &Tables{fs: fs} }

// FS is the tree the tables answer for.
func (t *Tables) FS() *proc.FS { return t.fs }

// Forget drops the dumps kept: a new reading begins.
func (t *Tables) Forget() {
	t.mu.Lock()
	t.inet = nil
	t.mu.Unlock()
}

// dump is the kept netlink dump of pid's namespace, made on first use;
// nil where netlink does not answer (not the live /proc, setns refused).
// The map is shared: callers only read it.
func (t *Tables) dump(pid int) map[uint64]proc.Socket {
	if !t.fs.Live() {
		return nil
	}
	ns, err := NetNS(t.fs, pid)
	if err != nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if m, ok := t.inet[ns]; ok {
		return m
	}
	m, err := DumpOf(t.fs, pid)
	if err != nil {
		m = nil
	}
	if t.inet == nil {
		t.inet = map[uint64]map[uint64]proc.Socket{}
	}
	t.inet[ns] = m
	return m
}

// Sockets is every socket of pid's network namespace, by inode: TCP, UDP
// and UNIX, what lsof shows of each socket fd. The map is the caller's.
func (t *Tables) Sockets(pid int) (map[uint64]proc.Socket, error) {
	out := map[uint64]proc.Socket{}
	if m := t.dump(pid); m != nil {
		for ino, s := range m {
			out[ino] = s
		}
		return out, nil
	}
	inet, err := t.fs.InetFromFiles(pid)
	if err != nil {
		return nil, err
	}
	for ino, s := range inet {
		out[ino] = s
	}
	// A UNIX row never takes the place of a TCP or UDP socket's inode: a
	// name with a newline can inject rows in the text table.
	unixRows, err := t.fs.UnixFromFiles(pid)
	for ino, s := range unixRows {
		if _, taken := out[ino]; !taken {
			out[ino] = s
		}
	}
	return out, err
}

// inetOf is pid's namespace's TCP and UDP sockets: the kept dump, or the
// net files.
func (t *Tables) inetOf(pid int) (map[uint64]proc.Socket, error) {
	if m := t.dump(pid); m != nil {
		return m, nil
	}
	return t.fs.InetFromFiles(pid)
}

// TCPStates counts pid's TCP sockets (inodes, each with its fd's name) by
// state. CLOSE_WAIT is the classic leak: the peer closed and this process
// never did. A TCP socket no table lists is counted by Unlisted.
func (t *Tables) TCPStates(pid int, inodes map[uint64]string) (map[string]int, error) {
	states := make(map[string]int)
	if len(inodes) == 0 {
		return states, nil
	}
	table, err := t.inetOf(pid)
	if err != nil {
		return nil, err
	}
	var probe *Probe
	defer func() { probe.Close() }()
	for ino, name := range inodes {
		s, ok := table[ino]
		switch {
		case ok && isTCP(s.Protocol):
			states[s.State]++
		case ok: // UDP
		default:
			if _, st := t.Unlisted(pid, name, &probe); st != "" {
				states[st]++
			}
		}
	}
	return states, nil
}

// Unlisted says what a socket in no table is (the peer reset it, or it
// never connected), held by pid as fd name: its protocol from the
// socket's system.sockprotoname attribute, as lsof reads it ("" where it
// cannot be read: a copied tree has no socket attributes), and for TCP its
// state from TCP_INFO (see Probe). probe is opened on first use; the
// caller closes it.
func (t *Tables) Unlisted(pid int, name string, probe **Probe) (proto, state string) {
	if !t.fs.Real() {
		return "", ""
	}
	proto, err := t.fs.SocketProtocol(pid, name)
	if err != nil || !isTCP(proto) {
		return proto, ""
	}
	if *probe == nil {
		*probe = NewProbe(t.fs, pid)
	}
	return proto, (*probe).State(name)
}

func isTCP(proto string) bool { return proto == "TCP" || proto == "TCPv6" }
