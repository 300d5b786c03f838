package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/origin"
	"github.com/zombiewatch/zombiewatch/internal/proc"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// TestOriginAsDocumented: zombiewatch --pid P --origin names the lines of
// a Go program that leak files and fork children it does not reap, in
// the words docs/usage.md shows.
func TestOriginAsDocumented(t *testing.T) {
	zombietest.SkipSlow(t)
	tr, err := origin.Trace(os.Getpid())
	if errors.Is(err, origin.ErrUnavailable) {
		t.Skipf("this kernel or this user cannot trace: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	tr.Close()
	cmd, stdin, stdout := startLeaker(t)
	// Traced until the leaks are done, then ended as Ctrl-C ends it: the
	// report of what was traced still comes.
	var out bytes.Buffer
	done := make(chan error, 1)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		done <- run(ctx, []string{"--pid", strconv.Itoa(cmd.Process.Pid), "--origin", "--for", "5m"}, nil, &out, io.Discard)
	}()
	for _, what := range []string{"exit", "fork"} {
		waitForProgram(t, origin.ProgramName(what, cmd.Process.Pid), 30*time.Second)
	}
	fmt.Fprintln(stdin, "go")
	began := time.Now()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "done\n" {
		t.Fatalf("the leaker said %q: %v", line, err)
	}
	fs, err := proc.New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		p, err := model.NewReader(fs).Process(ctx, cmd.Process.Pid, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Zombies == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leaker holds %d zombies after 30 s, want 3", p.Zombies)
		}
	}
	// A rate is given for a second traced or more, as the page shows.
	time.Sleep(time.Until(began.Add(1500 * time.Millisecond)))
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("--origin ended early returned %v, want the cancellation (exit 130)", err)
	}
	for _, want := range []string{"20 TCP ESTABLISHED", "main.leakConns main.go:", "15 file (", "main.leakFiles main.go:", "5 file (", "main.reopen main.go:", "main.forkZombies main.go:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--origin printed no %q:\n%s", want, out.String())
		}
	}
	for _, never := range []string{"openAndClose", "forkAndReap"} {
		if strings.Contains(out.String(), never) {
			t.Errorf("--origin names %s, which leaks nothing:\n%s", never, out.String())
		}
	}
	checkCaptured(t, "docs/usage.md", "origin", out.String())
}

// startLeaker builds and starts internal/origin's leaker, which leaks on
// a line on its stdin; cleanup ends and reaps it.
func startLeaker(t *testing.T) (*exec.Cmd, io.WriteCloser, io.Reader) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "leaker")
	if out, err := exec.Command("go", "build", "-o", bin, "../../internal/origin/testdata/leaker").CombinedOutput(); err != nil {
		t.Fatalf("go build the leaker: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, dir, "20", "5", "3")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
		zombietest.ReapAll()
	})
	return cmd, stdin, stdout
}

// TestWatchNamesTheOriginOfWhatGrows: zombiewatch --pid P --watch
// --origin names, for the fd group that grows, the line that opened it.
func TestWatchNamesTheOriginOfWhatGrows(t *testing.T) {
	zombietest.SkipSlow(t)
	cmd, stdin, stdout := startLeaker(t)
	pipeR, pipeW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(context.Background(), []string{"--pid", strconv.Itoa(cmd.Process.Pid), "--watch", "--origin", "--json", "--interval", "100ms", "--count", "600"}, nil, pipeW, io.Discard)
		pipeW.CloseWithError(err)
		done <- err
	}()
	defer func() { stdin.Close(); pipeR.Close(); <-done }()
	lines := bufio.NewScanner(pipeR)
	lines.Buffer(nil, 1<<20)
	if !lines.Scan() { // the first sample: the tracer is attached before it
		t.Fatalf("no first sample: %v", lines.Err())
	}
	fmt.Fprintln(stdin, "go")
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "done\n" {
		t.Fatalf("the leaker said %q: %v", line, err)
	}
	for lines.Scan() {
		var s struct {
			Growing []struct {
				Protocol string `json:"protocol"`
				TCPState string `json:"tcp_state"`
				Origin   string `json:"origin"`
			} `json:"fd_groups_growing"`
		}
		if err := json.Unmarshal(lines.Bytes(), &s); err != nil {
			t.Fatalf("sample %q: %v", lines.Text(), err)
		}
		for _, g := range s.Growing {
			if g.Protocol == "TCP" && g.TCPState == "ESTABLISHED" {
				if !strings.HasPrefix(g.Origin, "main.leakConns main.go:") || !strings.Contains(g.Origin, "(20 of the 20 opened while traced)") {
					t.Fatalf("the growing connections' origin is %q, want main.leakConns, 20 of 20", g.Origin)
				}
				return
			}
		}
	}
	t.Fatalf("no sample named the growing connections (%v)", lines.Err())
}

// waitForProgram waits until a BPF program of that name is loaded: the
// tracer is attached.
func waitForProgram(t *testing.T, name string, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var id ebpf.ProgramID
		for {
			next, err := ebpf.ProgramGetNextID(id)
			if err != nil {
				break
			}
			id = next
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				continue
			}
			info, err := p.Info()
			p.Close()
			if err == nil && info.Name == name {
				return
			}
		}
	}
	t.Fatalf("no BPF program %s loaded within %s", name, limit)
}

// TestHostWatchNamesTheOriginOfWhatGrows: zombiewatch --watch --origin,
// host-wide, starts tracing a process once it lists it among the fd
// growers, and from then on names the line behind its growth.
func TestHostWatchNamesTheOriginOfWhatGrows(t *testing.T) {
	zombietest.SkipSlow(t)
	if tr, err := origin.New("probe", origin.Options{}); errors.Is(err, origin.ErrUnavailable) {
		t.Skipf("this kernel or this user cannot trace: %v", err)
	} else if err != nil {
		t.Fatal(err)
	} else {
		tr.Close()
	}
	cmd, stdin, stdout := startLeaker(t)
	// Near its limit, it ranks first among the host's fd growers, above
	// whatever other tests leak meanwhile: the watch lists the fds of
	// the first three only.
	limit := unix.Rlimit{Cur: 400, Max: 400}
	if err := unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_NOFILE, &limit, nil); err != nil {
		t.Fatal(err)
	}
	replies := bufio.NewReader(stdout)
	leak := func(what string) {
		fmt.Fprintln(stdin, what)
		if line, err := replies.ReadString('\n'); err != nil || line != "done\n" {
			t.Errorf("the leaker said %q: %v", line, err)
		}
	}
	leak("go")
	pipeR, pipeW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(context.Background(), []string{"--watch", "--origin", "--json", "--interval", "200ms", "--count", "300"}, nil, pipeW, io.Discard)
		pipeW.CloseWithError(err)
		done <- err
	}()
	defer func() { pipeR.Close(); <-done }()
	lines := bufio.NewScanner(pipeR)
	lines.Buffer(nil, 16<<20)
	for lines.Scan() {
		leak("3") // three more connections a sample: it grows
		var s struct {
			Growing []struct {
				PID    int `json:"pid"`
				Groups []struct {
					TCPState string `json:"tcp_state"`
					Origin   string `json:"origin"`
				} `json:"fd_groups_growing"`
			} `json:"growing"`
		}
		if err := json.Unmarshal(lines.Bytes(), &s); err != nil {
			t.Fatalf("sample %.200q: %v", lines.Text(), err)
		}
		for _, g := range s.Growing {
			for _, group := range g.Groups {
				if g.PID != cmd.Process.Pid || group.TCPState != "ESTABLISHED" || group.Origin == "" {
					continue
				}
				if !strings.HasPrefix(group.Origin, "main.leakConns main.go:") || !strings.Contains(group.Origin, "opened while traced)") {
					t.Fatalf("the growing connections' origin is %q, want main.leakConns", group.Origin)
				}
				t.Logf("named: %s", group.Origin)
				return
			}
		}
	}
	t.Fatalf("no sample named the origin of the leaker's growing connections (%v)", lines.Err())
}

// TestOriginOnDebianNginx: on a server built without frame pointers by
// someone else (Debian's nginx), the connections a worker accepts are
// named at accept4 in the C library and, unwound by its CFI, the nginx
// function that called it; the count agrees with ss; the stack is said
// to be cut short, not passed off as whole.
func TestOriginOnDebianNginx(t *testing.T) {
	zombietest.SkipSlow(t)
	const nginx = "/usr/sbin/nginx"
	if _, err := os.Stat(nginx); err != nil {
		t.Skipf("no Debian nginx (%v): apt-get install nginx", err)
	}
	if tr, err := origin.New("probe", origin.Options{}); errors.Is(err, origin.ErrUnavailable) {
		t.Skipf("this kernel or this user cannot trace: %v", err)
	} else if err != nil {
		t.Fatal(err)
	} else {
		tr.Close()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(`worker_processes 1;
pid `+dir+`/nginx.pid;
error_log `+dir+`/error.log;
daemon off;
events { worker_connections 64; }
http {
  access_log off;
  keepalive_timeout 300s;
  server { listen `+addr+`; location / { return 200 "ok\n"; } }
}
`), 0o644)
	master := exec.Command(nginx, "-c", conf, "-p", dir)
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		master.Process.Signal(syscall.SIGQUIT) // nginx's graceful stop: its workers end first
		master.Wait()
	}()
	var worker int
	for deadline := time.Now().Add(30 * time.Second); worker == 0; time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", master.Process.Pid, master.Process.Pid))
		if f := strings.Fields(string(data)); len(f) == 1 {
			worker, _ = strconv.Atoi(f[0])
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx started no worker in 30 s: %s", data)
		}
	}
	var out bytes.Buffer
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--pid", strconv.Itoa(worker), "--origin", "--for", "5m"}, nil, &out, io.Discard)
	}()
	waitForProgram(t, origin.ProgramName("exit", worker), 30*time.Second)
	began := time.Now()
	const conns = 10
	for range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
		if reply, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(reply, "200") {
			t.Fatalf("nginx replied %q: %v", reply, err)
		}
	}
	if ss, err := exec.Command("ss", "-Htn", "state", "established", "sport", "=", ":"+strings.Split(addr, ":")[1]).Output(); err == nil {
		if n := strings.Count(string(ss), "\n"); n != conns {
			t.Fatalf("ss shows %d connections established to nginx, want %d:\n%s", n, conns, ss)
		}
	}
	time.Sleep(time.Until(began.Add(1500 * time.Millisecond))) // a rate, as the page shows
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("--origin returned %v", err)
	}
	want := regexp.MustCompile(fmt.Sprintf(`(?m)^  %d TCP ESTABLISHED to 127\.0\.0\.1:\* accepted on %s, .*opened at\n +accept4\+0x[0-9a-f]+ \(libc\.so\.6\)\n +← ngx_event_accept\+0x[0-9a-f]+ \(nginx\)\n`, conns, regexp.QuoteMeta(addr)))
	t.Logf("%s", out.String())
	if !want.MatchString(out.String()) || !strings.Contains(out.String(), "stack ends before the thread's entry") {
		t.Errorf("--origin on nginx's worker: want %d connections at accept4 ← ngx_event_accept, cut short:\n%s", conns, out.String())
	}
	checkCaptured(t, "docs/usage.md", "origin-nginx", out.String())
}

// TestOriginRefusedSaysWhy: without the privilege to trace, --origin
// fails in one line that names what is missing and what would give it,
// exit 1, and nothing else is printed.
func TestOriginRefusedSaysWhy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run zombiewatch as another uid")
	}
	bin := zombietest.SelfCopy(t)
	uid := strconv.Itoa(zombietest.FreeUID(t))
	cmd := exec.Command("setpriv", "--reuid="+uid, "--regid="+uid, "--clear-groups", bin, "--pid", strconv.Itoa(os.Getpid()), "--origin", "--for", "1s")
	cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("--origin as uid %s: %v, want exit 1; stderr %q", uid, err, stderr.String())
	}
	want := "zombiewatch: origin tracing unavailable: creating the BPF maps: operation not permitted (run as root, or with CAP_BPF and CAP_PERFMON; a kernel in lockdown=confidentiality refuses tracing to everyone)\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("--origin as uid %s printed %q and %q on stderr, want nothing and %q", uid, stdout.String(), stderr.String(), want)
	}
}
