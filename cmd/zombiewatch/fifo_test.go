package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/fixture"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// TestNoFIFOHangs: a FIFO in place of any file or directory zombiewatch
// opens in a --proc-root tree (nobody writing to it) never blocks a
// reading: each ends within a second, with a one-line error or the
// reading with the file named as unread.
func TestNoFIFOHangs(t *testing.T) {
	for _, tc := range []struct{ tree, file string }{
		{"zombies-threads", "100/stat"}, {"zombies-threads", "100/status"}, {"zombies-threads", "100/limits"},
		{"zombies-threads", "100/cmdline"}, {"zombies-threads", "100/task/100/children"}, {"zombies-threads", "100/task"},
		{"zombies-threads", "100/wchan"}, {"zombies-threads", "100/fd"}, {"zombies-threads", "200/sched"},
		{"zombies-threads", "self/sched"}, {"zombies-threads", "200/stat"}, {"zombies-threads", "stat"},
		{"fds", "100/net/tcp"}, {"fds", "100/net/unix"}, {"fds", "100/net/udp"},
		{"zombies-threads", "sys/kernel/pid_max"}, {"zombies-threads", "loadavg"},
	} {
		t.Run(strings.ReplaceAll(tc.tree+"/"+tc.file, "/", "_"), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(fixture.Dir(tc.tree))); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tc.file)
			os.RemoveAll(path)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"--proc-root", dir, "--pid", "100", "--fds"}, {"--proc-root", dir, "--pid", "100", "--json"}, {"--proc-root", dir, "--json"}} {
				done := make(chan error, 1)
				var stdout, stderr bytes.Buffer
				ctx, cancel := context.WithCancel(context.Background())
				go func() { done <- run(ctx, args, nil, &stdout, &stderr) }()
				select {
				case err := <-done:
					cancel()
					if err != nil && strings.Contains(err.Error(), "\n") {
						t.Errorf("zombiewatch %s: not one line: %q", strings.Join(args, " "), err)
					}
				case <-time.After(time.Second):
					cancel()
					t.Fatalf("zombiewatch %s with a FIFO at %s: still blocked after 1s", strings.Join(args, " "), tc.file)
				}
			}
		})
	}
}

// TestRefusedLimitsIsAnError: a tree whose limits file this user may not
// read (chmod 000, as hidepid refuses) gives a one-line error, exit 1,
// never a panic; with one --pid as with two.
func TestRefusedLimitsIsAnError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run zombiewatch as another uid")
	}
	bin := zombietest.SelfCopy(t)
	dir, err := os.MkdirTemp("", "zwtree")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.CopyFS(dir, os.DirFS(fixture.Dir("zombies-threads"))); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			os.Chmod(p, info.Mode().Perm()|0o555) // readable by the other uid ...
		}
		return nil
	})
	if err := os.Chmod(filepath.Join(dir, "100", "limits"), 0); err != nil { // ... but this
		t.Fatal(err)
	}
	uid := strconv.Itoa(zombietest.FreeUID(t))
	for _, args := range [][]string{{"--pid", "100"}, {"--pid", "100", "--pid", "203"}} {
		cmd := exec.Command("setpriv", append([]string{"--reuid=" + uid, "--regid=" + uid, "--clear-groups", bin, "--proc-root", dir}, args...)...)
		cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		msg := strings.TrimSpace(stderr.String())
		if code := cmd.ProcessState.ExitCode(); code != 1 || strings.Contains(msg, "\n") || strings.Contains(msg, "panic") || !strings.Contains(msg, "permission denied") {
			t.Errorf("zombiewatch %s with limits unreadable: %v, exit %d, stderr %q; want one line naming the refusal, exit 1", strings.Join(args, " "), err, code, msg)
		}
	}
}

// TestUncountedFDsFailTheHostReading: a process whose fd directory cannot
// be listed has no fd count; the host view leaves it out of the fd users,
// names it, and exits 1 (its answer is incomplete), never counting it 0.
func TestUncountedFDsFailTheHostReading(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run zombiewatch as another uid")
	}
	bin := zombietest.SelfCopy(t)
	dir, err := os.MkdirTemp("", "zwtree")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.CopyFS(dir, os.DirFS(fixture.Dir("zombies-threads"))); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			os.Chmod(p, info.Mode().Perm()|0o555)
		}
		return nil
	})
	if err := os.Chmod(filepath.Join(dir, "203", "fd"), 0); err != nil {
		t.Fatal(err)
	}
	uid := strconv.Itoa(zombietest.FreeUID(t))
	cmd := exec.Command("setpriv", "--reuid="+uid, "--regid="+uid, "--clear-groups", bin, "--proc-root", dir, "--json")
	cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	var got struct {
		Uncounted []string `json:"fds_uncounted"`
		FDUsers   []struct {
			PID int `json:"pid"`
		} `json:"fd_users"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "open fds of 1 process not counted") {
		t.Errorf("exit %d, stderr %q; want exit 1 naming the uncounted process", code, stderr.String())
	}
	if len(got.Uncounted) != 1 || !strings.Contains(got.Uncounted[0], "/203/fd") {
		t.Errorf("fds_uncounted %q; want pid 203's fd directory", got.Uncounted)
	}
	for _, u := range got.FDUsers {
		if u.PID == 203 {
			t.Errorf("pid 203 listed among the fd users with a count it could not read")
		}
	}
}
