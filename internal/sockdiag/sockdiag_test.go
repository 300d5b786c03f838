package sockdiag

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// openSockets opens n TCP connections on loopback (v4, and v6 where the
// host has it: both ends, so listeners, established and the accepted
// copies) and a connected UDP socket, and returns their fds' inodes.
func openSockets(t testing.TB, n int) map[uint64]bool {
	t.Helper()
	inodes := map[uint64]bool{}
	add := func(c syscall.Conn) {
		raw, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		raw.Control(func(fd uintptr) {
			var st syscall.Stat_t
			if syscall.Fstat(int(fd), &st) == nil {
				inodes[st.Ino] = true
			}
		})
	}
	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			if network == "tcp6" {
				continue // no IPv6 here
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		add(ln.(*net.TCPListener))
		for range n {
			c, err := net.Dial(network, ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			s, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			add(c.(*net.TCPConn))
			add(s.(*net.TCPConn))
		}
	}
	u, err := net.Dial("udp4", "127.0.0.1:9") // connected, nothing sent
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	add(u.(*net.UDPConn))
	return inodes
}

// TestSockDiagAgreesWithFiles: netlink and /proc/net/{tcp,tcp6,udp} say
// the same of every socket this test holds: protocol, state, both ends.
func TestSockDiagAgreesWithFiles(t *testing.T) {
	fs := liveFS(t)
	inodes := openSockets(t, 5)
	diag, err := DumpOf(fs, os.Getpid())
	if err != nil {
		t.Skipf("netlink sock_diag refused here: %v", err)
	}
	files, err := fs.InetFromFiles(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for ino := range inodes {
		d, ok := diag[ino]
		if !ok {
			t.Errorf("socket %d missing from sock_diag", ino)
			continue
		}
		if f := files[ino]; d != f {
			t.Errorf("socket %d: sock_diag %+v, files %+v", ino, d, f)
		}
	}
	var established int
	for ino := range inodes {
		if diag[ino].State == "ESTABLISHED" && strings.HasPrefix(diag[ino].Local, "127.0.0.1:") {
			established++
		}
	}
	if established != 10 {
		t.Errorf("established v4 sockets: %d, want 10 (5 connections, both ends)", established)
	}
}

// BenchmarkSockets reads one namespace's TCP and UDP tables both ways,
// beside 1,000 connections held by the benchmark.
func BenchmarkSockets(b *testing.B) {
	fs := liveFS(b)
	n := 500
	if v, err := strconv.Atoi(os.Getenv("ZW_BENCH_CONNS")); err == nil {
		n = v
	}
	openSockets(b, n)
	pid := os.Getpid()
	for _, way := range []struct {
		name string
		read func(int) (map[uint64]proc.Socket, error)
	}{{"files", fs.InetFromFiles}, {"sock_diag", func(pid int) (map[uint64]proc.Socket, error) { return DumpOf(fs, pid) }}} {
		b.Run(fmt.Sprintf("%s/%d", way.name, n), func(b *testing.B) {
			for b.Loop() {
				if _, err := way.read(pid); err != nil {
					b.Skip(err)
				}
			}
		})
	}
}

// TestParseInetDiag reads hand-made inet_diag_msg records: a v4
// connection in CLOSE_WAIT, a v6 listener (no peer), a v4-mapped v6
// connection shown as v4 (as the /proc tables read through net.IP show it).
func TestParseInetDiag(t *testing.T) {
	msg := func(family, state byte, sport, dport uint16, src, dst []byte, ino uint32) []byte {
		m := make([]byte, inetDiagMsgSize)
		m[0], m[1] = family, state
		m[4], m[5] = byte(sport>>8), byte(sport)
		m[6], m[7] = byte(dport>>8), byte(dport)
		copy(m[8:24], src)
		copy(m[24:40], dst)
		binary.NativeEndian.PutUint32(m[68:], ino)
		return m
	}
	v6 := func(s string) []byte { return net.ParseIP(s).To16() }
	for _, tc := range []struct {
		m     []byte
		proto string
		ino   uint64
		want  proc.Socket
	}{
		{msg(2, 8, 40000, 5432, net.ParseIP("10.0.0.1").To4(), net.ParseIP("10.1.2.3").To4(), 77), "TCP", 77,
			proc.Socket{Protocol: "TCP", State: "CLOSE_WAIT", Local: "10.0.0.1:40000", Remote: "10.1.2.3:5432"}},
		{msg(10, 10, 8080, 0, v6("::1"), v6("::"), 78), "TCPv6", 78,
			proc.Socket{Protocol: "TCPv6", State: "LISTEN", Local: "[::1]:8080"}},
		{msg(10, 1, 8080, 51000, v6("::ffff:127.0.0.1"), v6("::ffff:127.0.0.2"), 79), "TCPv6", 79,
			proc.Socket{Protocol: "TCPv6", State: "ESTABLISHED", Local: "127.0.0.1:8080", Remote: "127.0.0.2:51000"}},
		{msg(2, 7, 53, 0, net.ParseIP("0.0.0.0").To4(), net.ParseIP("0.0.0.0").To4(), 80), "UDP", 80,
			proc.Socket{Protocol: "UDP", Local: "0.0.0.0:53"}},
	} {
		ino, got := parseInetDiag(tc.m, tc.proto)
		if ino != tc.ino || got != tc.want {
			t.Errorf("inode %d %+v; want %d %+v", ino, got, tc.ino, tc.want)
		}
	}
}

// TestSockDiagOtherNamespace: a process in a network namespace of its own
// (unshare --net) holds a listener and a UDP socket; sock_diag enters its
// namespace and says what its /proc/PID/net tables say.
func TestSockDiagOtherNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace and enter it")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	cmd := exec.Command(unshare, "--net", "/usr/bin/python3", "-c", `
import socket, sys, time
t = socket.socket(); t.bind(("0.0.0.0", 0)); t.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 0))
print("ready", flush=True)
sys.stdin.read()`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Skipf("unshare --net: %v", err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Skipf("unshare --net python3 did not start: %q %v", line, err)
	}
	fs := liveFS(t)
	pid := cmd.Process.Pid // unshare execs python3 in the new namespace
	if ours, _ := NetNS(fs, os.Getpid()); ours == 0 {
		t.Fatal("no network namespace of our own")
	} else if theirs, _ := NetNS(fs, pid); theirs == ours {
		t.Fatalf("pid %d shares our network namespace", pid)
	}
	diag, err := DumpOf(fs, pid)
	if err != nil {
		t.Fatalf("sock_diag in pid %d's namespace: %v", pid, err)
	}
	files, err := fs.InetFromFiles(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(diag) != 2 || len(files) != 2 {
		t.Fatalf("sock_diag %v, files %v: want the listener and the UDP socket", diag, files)
	}
	for ino, f := range files {
		if diag[ino] != f {
			t.Errorf("socket %d: sock_diag %+v, files %+v", ino, diag[ino], f)
		}
	}
	// Every thread of this process is back in its own namespace however
	// often it entered another (the main thread, were it left there, would
	// stay: /proc/self/net and later sockets would be the other's).
	ours, _ := NetNS(fs, os.Getpid())
	for range 20 {
		if _, err := DumpOf(fs, pid); err != nil {
			t.Fatal(err)
		}
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/self/task/"+task.Name()+"/ns/net", &st); err == nil && st.Ino != ours {
			t.Errorf("thread %s is left in network namespace %d, not ours (%d)", task.Name(), st.Ino, ours)
		}
	}
}

func liveFS(t testing.TB) *proc.FS {
	t.Helper()
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}
