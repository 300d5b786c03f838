package model

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/sockdiag"
)

// FDEntry is one descriptor, as lsof lists it.
type FDEntry struct {
	FD       int    `json:"fd"`
	Kind     string `json:"kind"`
	Target   string `json:"target"` // path, "pipe:[9]", "socket:[12]", "anon_inode:[eventfd]"
	Deleted  bool   `json:"deleted,omitempty"`
	Protocol string `json:"protocol,omitempty"`  // sockets: TCP, TCPv6, UDP, UDPv6, UNIX
	TCPState string `json:"tcp_state,omitempty"` // TCP sockets
	Local    string `json:"local,omitempty"`     // address:port, or a unix socket's path
	Remote   string `json:"remote,omitempty"`
	// Unresolved: why its link could not be read (kind "unresolved").
	Unresolved string `json:"unresolved,omitempty"`
}

// FDGroup is descriptors that point at the same thing: the same file, the
// same pipe, sockets with the same protocol, state and remote address.
// "312 TCP sockets in CLOSE_WAIT to 10.1.2.3:5432" finds a leaking pool.
type FDGroup struct {
	Kind     string `json:"kind"`
	Target   string `json:"target,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	TCPState string `json:"tcp_state,omitempty"`
	Remote   string `json:"remote,omitempty"`
	Count    int    `json:"count"`
}

// readFDList lists every descriptor with what the network tables say of
// its socket, and groups them, largest group first.
func (r *Reader) readFDList(p *Process) error {
	entries, err := r.FS.FDList(p.PID)
	if err != nil {
		return classify(p.PID, "fd list", r.FS.PIDPath(p.PID, "fd"), err)
	}
	var sockets map[uint64]proc.Socket
	list := make([]FDEntry, 0, len(entries))
	var probe *sockdiag.Probe
	defer func() { probe.Close() }()
	unresolved, firstErr := 0, ""
	for _, e := range entries {
		if e.Err != nil {
			// Counted and named, never left out: a leak to a path beyond
			// PATH_MAX is still a leak.
			list = append(list, FDEntry{FD: e.FD, Kind: proc.FDUnresolved, Unresolved: e.Err.Error()})
			if unresolved++; unresolved == 1 {
				firstErr = fmt.Sprintf("fd %d: readlink: %v", e.FD, e.Err)
			}
			continue
		}
		fe := FDEntry{FD: e.FD, Kind: proc.Kind(e.Target), Target: e.Target}
		if t, ok := strings.CutSuffix(e.Target, " (deleted)"); ok {
			fe.Target, fe.Deleted = t, true
		}
		if fe.Kind == proc.FDSocket {
			if sockets == nil {
				if sockets, err = r.socketTables().Sockets(p.PID); err != nil {
					p.addUnread("fd list sockets: " + err.Error()) // what was read stays
				}
				if sockets == nil {
					sockets = map[uint64]proc.Socket{}
				}
			}
			ino, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(e.Target, "socket:["), "]"), 10, 64)
			if s, ok := sockets[ino]; ok {
				fe.Protocol, fe.TCPState, fe.Local, fe.Remote = s.Protocol, s.State, s.Local, s.Remote
			} else {
				// In no table: for TCP, ended (reset) or never connected.
				fe.Protocol, fe.TCPState = r.socketTables().Unlisted(p.PID, strconv.Itoa(e.FD), &probe)
			}
		}
		list = append(list, fe)
	}
	if unresolved > 0 {
		p.addUnread(fmt.Sprintf("fd list: %d fds could not be resolved (%s): listed as %s", unresolved, firstErr, proc.FDUnresolved))
	}
	p.FDList = list
	p.FDGroups = groupFDs(list)
	return nil
}

// groupFDs groups the descriptors, largest group first.
func groupFDs(list []FDEntry) []FDGroup {
	type key struct{ kind, target, proto, state, remote string }
	counts := map[key]int{}
	for _, g := range GroupEach(list) {
		counts[key{g.Kind, g.Target, g.Protocol, g.TCPState, g.Remote}]++
	}
	groups := make([]FDGroup, 0, len(counts))
	for k, n := range counts {
		groups = append(groups, FDGroup{Kind: k.kind, Target: k.target, Protocol: k.proto, TCPState: k.state, Remote: k.remote, Count: n})
	}
	slices.SortFunc(groups, func(a, b FDGroup) int {
		return cmp.Or(b.Count-a.Count, cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Target, b.Target), cmp.Compare(a.Remote, b.Remote))
	})
	return groups
}

// GroupEach is the group of each descriptor of list (Count 1), in order.
// Descriptors group by the end of a connection that does not change: the
// remote address of outgoing connections (a pool to 10.1.2.3:5432), and
// for connections accepted on one of the process's listening addresses,
// that address and the remote host (the remote port is ephemeral).
func GroupEach(list []FDEntry) []FDGroup {
	// Listening addresses, and the ports listened on at a wildcard address
	// (0.0.0.0, ::), whose accepted connections carry the address the
	// client reached (127.0.0.1:8080) as their local end.
	listening := map[string]string{}
	wildcard := map[string]string{}
	for _, e := range list {
		if e.TCPState != "LISTEN" {
			continue
		}
		listening[e.Local] = e.Local
		if host, port, err := net.SplitHostPort(e.Local); err == nil && (host == "0.0.0.0" || host == "::") {
			wildcard[port] = e.Local
		}
	}
	listenerOf := func(local string) (string, bool) {
		if l, ok := listening[local]; ok {
			return l, true
		}
		_, port, err := net.SplitHostPort(local)
		if err != nil {
			return "", false
		}
		l, ok := wildcard[port]
		return l, ok
	}
	groups := make([]FDGroup, len(list))
	for i, e := range list {
		g := FDGroup{Kind: e.Kind, Protocol: e.Protocol, TCPState: e.TCPState, Remote: e.Remote, Count: 1}
		listener, accepted := listenerOf(e.Local)
		switch {
		case e.Kind == proc.FDSocket && e.Protocol == "UNIX":
			g.Target = e.Local
		case e.Kind == proc.FDSocket && e.Remote != "" && e.TCPState != "LISTEN" && accepted:
			host, _, err := net.SplitHostPort(e.Remote)
			if err == nil {
				g.Remote = net.JoinHostPort(host, "*")
			}
			g.Target = "accepted on " + listener
		case e.Kind != proc.FDSocket:
			g.Target = e.Target
		}
		groups[i] = g
	}
	return groups
}

// FDList lists pid's descriptors (FDList) and groups them, largest first
// (FDGroups): what --fds prints, for a watch naming the groups that grow
// and, with --origin, the code that opened them.
func (r *Reader) FDList(pid int) (*Process, error) {
	p := &Process{PID: pid}
	if err := r.readFDList(p); err != nil {
		return nil, err
	}
	return p, nil
}
