// Package scenario builds the processes zombiewatch is measured on: a
// parent holding N zombie children forked from several threads and M open
// descriptors of several kinds (bench/holder, and internal/zombietest's
// helpers for live tests). It is not a test package, so the shipped
// holder binary does not link testing.
package scenario

import (
	"encoding/json"
	"fmt"
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

	self, _ := os.Executable()
	env := []string{EnvMode + "=exit", EnvSpec + "=" + strconv.Itoa(spec.ExitCode)}
	threads := max(spec.Threads, 1)
	var (
		mu       sync.Mutex
		children []int
		forkErr  error
		forked   sync.WaitGroup
		release  = make(chan struct{})
	)
	for i := range threads {
		forked.Add(1)
		go func() {
			// Stay locked and alive until the end: if this thread exited,
			// the kernel would move its children to another thread.
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
	if forkErr != nil {
		// Leave nothing behind: kill what was started, reap it all.
		fmt.Fprintln(os.Stderr, "zombietest: fork:", forkErr)
		for _, pid := range children {
			unix.Kill(pid, unix.SIGKILL)
		}
		for {
			if _, err := unix.Wait4(-1, nil, 0, nil); err != nil {
				return 2
			}
		}
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

	buf := make([]byte, 1)
	for {
		if _, err := os.Stdin.Read(buf); err != nil {
			break
		}
	}
	close(release)
	if spec.Sleep {
		for _, pid := range children {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	for {
		if _, err := unix.Wait4(-1, nil, 0, nil); err != nil {
			return 0
		}
	}
}

func openFDs(spec Spec) ([]any, error) {
	var keep []any
	if spec.NoFile > 0 {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: spec.NoFile, Max: spec.NoFile}); err != nil {
			return nil, err
		}
	}
	if spec.CloseWait > 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		keep = append(keep, ln)
		for range spec.CloseWait {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return nil, err
			}
			s, err := ln.Accept()
			if err != nil {
				return nil, err
			}
			c.Close() // the peer closes; s is never closed: CLOSE_WAIT
			keep = append(keep, s)
		}
	}
	for range spec.Files {
		f, err := os.CreateTemp("", "zombietest")
		if err != nil {
			return nil, err
		}
		os.Remove(f.Name())
		keep = append(keep, f)
	}
	for range spec.Pipes {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		keep = append(keep, r, w)
	}
	for range spec.SocketPairs {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		keep = append(keep, os.NewFile(uintptr(fds[0]), "sock"), os.NewFile(uintptr(fds[1]), "sock"))
	}
	if spec.Dups > 0 {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		keep = append(keep, r, w, os.NewFile(uintptr(pair[0]), "sock"), os.NewFile(uintptr(pair[1]), "sock"))
		for i := range spec.Dups {
			src := int(r.Fd())
			if i%2 == 0 {
				src = pair[0]
			}
			if _, err := unix.FcntlInt(uintptr(src), unix.F_DUPFD_CLOEXEC, 0); err != nil {
				return nil, fmt.Errorf("dup %d: %w", i, err)
			}
		}
	}
	for range spec.Eventfds {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return nil, err
		}
		keep = append(keep, os.NewFile(uintptr(fd), "eventfd"))
	}
	return keep, nil
}
