package report

import (
	"fmt"

	"github.com/zombiewatch/zombiewatch/internal/control"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Diagnose says in one sentence whether s holds zombies, why nobody reaps
// them, and what would fix it. srv, the settings of a bundled server, is
// the most precise cause when it is known; nil otherwise.
func Diagnose(s *proc.Snapshot, srv *control.Status) string {
	if s.Zombies == 0 {
		if s.DescendantZombies > 0 {
			holder := s.ZombieList[0].PPID
			return fmt.Sprintf("pid %d holds no zombies itself; its descendants hold %d (the oldest under pid %d: zombiewatch --pid %d)",
				s.PID, s.DescendantZombies, holder, holder)
		}
		return fmt.Sprintf("pid %d holds no zombies", s.PID)
	}
	oldest := s.ZombieList[0].AgeSeconds
	for _, z := range s.ZombieList {
		if z.PPID == s.PID {
			oldest = z.AgeSeconds
			break
		}
	}
	head := fmt.Sprintf("pid %d holds %d %s, the oldest %s old", s.PID, s.Zombies, plural(s.Zombies, "zombie"), ageOf(oldest))
	return head + "; " + why(s, srv)
}

// why explains what keeps the zombies, most specific cause first.
func why(s *proc.Snapshot, srv *control.Status) string {
	switch {
	case srv != nil && srv.Reaper == control.ReaperOff:
		return fmt.Sprintf("it is the bundled server with its reaper off, so nobody waits for a finished child: zombiewatch ctl --pid %d reaper=loop", s.PID)
	case srv != nil && srv.Reaper == control.ReaperWait:
		return fmt.Sprintf("it is the bundled server waiting once per SIGCHLD, and signals coalesce when children exit together: zombiewatch ctl --pid %d reaper=loop", s.PID)
	case s.State == "T" || s.State == "t":
		return fmt.Sprintf("it is stopped (state %s) and cannot reap until it runs: kill -CONT %d", s.State, s.PID)
	case s.Sigchld == proc.SigchldIgnored:
		return "it ignores SIGCHLD, so the kernel reaps children that exit from now on; these exited before: a wait() collects them"
	case s.NamespaceInit || s.PID == 1:
		adopted := ""
		if s.AdoptedZombies > 0 {
			adopted = fmt.Sprintf(" (%d of these it adopted)", s.AdoptedZombies)
		}
		return "it is PID 1 of its pid namespace and inherits every orphan" + adopted +
			", but does not reap them: run an init that reaps (tini, dumb-init, docker run --init) or make it wait for every child"
	case s.SigchldBlocked && s.Sigchld == proc.SigchldCaught:
		return "it blocks SIGCHLD, so its handler does not run: unblock it, or read a signalfd and wait for every child"
	case s.AdoptedZombies == s.Zombies:
		return "they are orphans it adopted as a subreaper, and it does not wait for them: a subreaper must wait for every child"
	case s.Sigchld == proc.SigchldCaught:
		return "it catches SIGCHLD but does not wait for every child (one wait per signal loses children, since signals coalesce; the Go runtime catches SIGCHLD without waiting): loop waitpid(-1, WNOHANG) until it returns 0"
	default:
		return "it does not catch SIGCHLD and does not call wait: add a reaper or ignore SIGCHLD"
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
