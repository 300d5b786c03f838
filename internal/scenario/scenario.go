// Package scenario builds the processes zombiewatch is measured on: a
// parent holding N zombie children forked from several threads and M open
// descriptors of several kinds (bench/holder, and internal/zombietest's
// helpers for live tests). It is not a test package, so the shipped
// holder binary does not link testing.
package scenario

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// sleepPath is the sleeper children's program.
const sleepPath = "/bin/sleep"

const (
	EnvMode = "ZOMBIETEST_MODE"
	EnvSpec = "ZOMBIETEST_SPEC"
)

// Spec is what the helper holds.
type Spec struct {
	Children    int // zombie children, forked then left un-waited
	Threads     int // threads the children are forked from (at least 1)
	ExitCode    int // each child's exit status
	Files       int // regular files opened
	Pipes       int // pipes (2 fds each)
	SocketPairs int // unix socket pairs (2 fds each)
	Eventfds    int
	// CloseWait TCP connections on 127.0.0.1 whose client end is closed:
	// the accepted ends stay open, in CLOSE_WAIT (plus one listener).
	CloseWait int
	// NoFile, when above 0, sets the helper's RLIMIT_NOFILE.
	NoFile uint64
	// Dups: more descriptors, duplicates of a socket and a pipe in turn
	// (cheap in bulk: a million fds without a million files).
	Dups int
	// Sleep: the children are "sleep infinity" (one thread, so one pid
	// each: a Go child would take several) and stay alive until the
	// helper ends, which kills and reaps them: unrelated processes.
	Sleep bool
}

// Child does a helper child's part (exit with the code asked for) when
// this process is one; otherwise it returns at once.
func Child() {
	switch os.Getenv(EnvMode) {
	case "exit":
		code, _ := strconv.Atoi(os.Getenv(EnvSpec))
		os.Exit(code)
	}
}

// ReapAll reaps every child of this process that has exited.
func ReapAll() {
	for {
		pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// Hold makes this process the helper: it opens the descriptors, forks the
// children from spec.Threads locked threads (a child belongs to the thread
// that forked it), waits for each to exit without reaping it (WNOWAIT),
// writes their pids as a JSON line on stdout, and reaps everything once
// stdin closes. Its binary must call Main (or Wrap) first thing, since
// each child is this binary run again.
func Hold(spec Spec) int {
	keep, err := openFDs(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zombietest:", err)
		return 2
	}
	defer runtime.KeepAlive(keep)
	release := make(chan struct{})
	children, err := forkChildren(spec, release)
	if err != nil {
		// Leave nothing behind: kill what was started, reap it all.
		fmt.Fprintln(os.Stderr, "zombietest: fork:", err)
		for _, pid := range children {
			unix.Kill(pid, unix.SIGKILL)
		}
		reapAll()
		return 2
	}
	for _, pid := range children {
		if spec.Sleep {
			break
		}
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
			fmt.Fprintln(os.Stderr, "zombietest: waitid:", err)
			return 2
		}
	}
	out, _ := json.Marshal(children)
	os.Stdout.Write(append(out, '\n'))
	io.Copy(io.Discard, os.Stdin) // held until stdin closes
	close(release)
	if spec.Sleep {
		for _, pid := range children {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	reapAll()
	return 0
}

// reapAll waits for every child until none is left.
func reapAll() {
	for {
		if _, err := unix.Wait4(-1, nil, 0, nil); err != nil {
			return
		}
	}
}

// forkChildren starts spec's children from spec.Threads threads, each
// child's parent thread locked and alive until release is closed: if it
// exited, the kernel would move its children to another thread.
func forkChildren(spec Spec, release <-chan struct{}) ([]int, error) {
	self, _ := os.Executable()
	env := []string{EnvMode + "=exit", EnvSpec + "=" + strconv.Itoa(spec.ExitCode)}
	threads := max(spec.Threads, 1)
	var (
		mu       sync.Mutex
		children []int
		forkErr  error
		forked   sync.WaitGroup
	)
	for i := range threads {
		forked.Add(1)
		go func() {
			runtime.LockOSThread()
			for j := i; j < spec.Children; j += threads {
				path, argv := self, []string{self}
				if spec.Sleep {
					path, argv = sleepPath, []string{"sleep", "infinity"}
				}
				// Pdeathsig: killed along with the forking thread, which
				// lives to the end, so none outlives a holder killed.
				pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}})
				mu.Lock()
				if err != nil {
					forkErr = err
				} else {
					children = append(children, pid)
				}
				mu.Unlock()
			}
			forked.Done()
			<-release
		}()
	}
	forked.Wait()
	return children, forkErr
}

// openFDs opens what spec asks for, under its RLIMIT_NOFILE, and returns
// what must stay alive to keep them open.
func openFDs(spec Spec) ([]any, error) {
	if spec.NoFile > 0 {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: spec.NoFile, Max: spec.NoFile}); err != nil {
			return nil, err
		}
	}
	var keep []any
	for _, open := range []func(Spec) ([]any, error){openCloseWait, openFiles, openDups, openEventfds} {
		got, err := open(spec)
		keep = append(keep, got...)
		if err != nil {
			return keep, err
		}
	}
	return keep, nil
}

// openCloseWait makes spec.CloseWait connections whose peer closed and
// this end never does: CLOSE_WAIT.
func openCloseWait(spec Spec) ([]any, error) {
	if spec.CloseWait == 0 {
		return nil, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	keep := []any{ln}
	for range spec.CloseWait {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return keep, err
		}
		s, err := ln.Accept()
		if err != nil {
			return keep, err
		}
		c.Close()
		keep = append(keep, s)
	}
	return keep, nil
}

// openFiles opens spec's deleted temporary files, pipes and socket pairs.
func openFiles(spec Spec) ([]any, error) {
	var keep []any
	for range spec.Files {
		f, err := os.CreateTemp("", "zombietest")
		if err != nil {
			return keep, err
		}
		os.Remove(f.Name())
		keep = append(keep, f)
	}
	for range spec.Pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return keep, err
		}
		keep = append(keep, r, w)
	}
	for range spec.SocketPairs {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return keep, err
		}
		keep = append(keep, os.NewFile(uintptr(fds[0]), "sock"), os.NewFile(uintptr(fds[1]), "sock"))
	}
	return keep, nil
}

// openDups makes spec.Dups duplicates, of a pipe and of a socket in turn:
// many fds to few objects.
func openDups(spec Spec) ([]any, error) {
	if spec.Dups == 0 {
		return nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return []any{r, w}, err
	}
	keep := []any{r, w, os.NewFile(uintptr(pair[0]), "sock"), os.NewFile(uintptr(pair[1]), "sock")}
	for i := range spec.Dups {
		src := int(r.Fd())
		if i%2 == 0 {
			src = pair[0]
		}
		if _, err := unix.FcntlInt(uintptr(src), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			return keep, fmt.Errorf("dup %d: %w", i, err)
		}
	}
	return keep, nil
}

// openEventfds opens spec.Eventfds eventfds.
func openEventfds(spec Spec) ([]any, error) {
	var keep []any
	for range spec.Eventfds {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return keep, err
		}
		keep = append(keep, os.NewFile(uintptr(fd), "eventfd"))
	}
	return keep, nil
}
