package server

import (
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/control"
)

// reaper handles each SIGCHLD notification as the current mode says.
// Notifications coalesce (100 children exiting at once gave 7-29 here), so
// only the loop mode reaps them all.
func (s *Server) reaper() {
	for range s.sigch {
		switch s.reaperMode() {
		case control.ReaperWait:
			s.reapOne()
		case control.ReaperLoop, control.ReaperIgnore:
			s.reapAll()
		}
	}
}

func (s *Server) reaperMode() control.Reaper {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings.Reaper
}

// enterReaper makes mode effective. Every reaping mode first collects the
// zombies already there.
func (s *Server) enterReaper(mode control.Reaper) {
	switch mode {
	case control.ReaperIgnore:
		// SIG_IGN: the kernel reaps children that exit from now on;
		// it does not collect those already zombies.
		signal.Ignore(syscall.SIGCHLD)
		s.reapAll()
	case control.ReaperWait, control.ReaperLoop:
		s.reapAll()
	}
}

// leaveReaper undoes what enterReaper set. Leaving ignore, children
// spawned before it that the kernel reaped meanwhile are forgotten: they
// are no longer this process's children.
func (s *Server) leaveReaper(mode control.Reaper) {
	if mode == control.ReaperIgnore {
		signal.Notify(s.sigch, syscall.SIGCHLD)
		ours := map[int]bool{}
		for _, pid := range s.children() {
			ours[pid] = true
		}
		s.mu.Lock()
		for pid := range s.spawned {
			if !ours[pid] {
				delete(s.spawned, pid)
			}
		}
		s.mu.Unlock()
	}
}

// reapOne is Part 3's one wait per signal (webserver3e/3f).
func (s *Server) reapOne() {
	var ws unix.WaitStatus
	if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); err == nil && pid > 0 {
		s.noteReaped(pid, ws)
	}
}

// reapAll waits until nothing is left to wait for (webserver3g).
func (s *Server) reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		s.noteReaped(pid, ws)
	}
}

func (s *Server) noteReaped(pid int, ws unix.WaitStatus) {
	s.mu.Lock()
	s.stats.Reaped++
	killed := s.killed[pid] && ws.Signaled() && ws.Signal() == unix.SIGKILL
	if start, ok := s.spawned[pid]; ok && !killed {
		lat := time.Since(start)
		if len(s.reapLat) < latRing {
			s.reapLat = append(s.reapLat, lat)
		} else {
			s.reapLat[s.latNext] = lat
			s.latNext = (s.latNext + 1) % latRing
		}
	}
	delete(s.spawned, pid)
	startup := !killed && ((ws.Exited() && ws.ExitStatus() == 2) || (ws.Signaled() && ws.Signal() == unix.SIGABRT))
	logIt, failed := true, 0
	if startup {
		// One line per second at most, with the count: near the limit,
		// every new child fails the same way.
		s.stats.ChildFailures++
		s.failed++
		if logIt = time.Since(s.failedLogged) >= time.Second; logIt {
			failed, s.failed, s.failedLogged = s.failed, 0, time.Now()
		}
	}
	s.mu.Unlock()
	switch {
	case killed:
		s.log.Debug("reaped", "pid", pid, "status", "killed by SIGKILL at shutdown")
	case startup:
		if logIt {
			s.log.Warn("child's Go runtime failed: its connection may have been dropped", "pid", pid, "status", waitString(ws),
				"failed", failed, "hint", "near RLIMIT_NPROC its Go runtime could not start a thread (ulimit -u, or the reaper: zombies count)")
		}
	case ws.Signaled():
		// A child is never signalled in normal work: it answers and exits.
		s.log.Warn("child died", "pid", pid, "status", waitString(ws))
	default:
		s.log.Debug("reaped", "pid", pid, "status", waitString(ws))
	}
}

func waitString(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + unix.SignalName(ws.Signal())
	default:
		return "status " + strconv.Itoa(int(ws))
	}
}
