package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cgroup"
	"github.com/zombiewatch/zombiewatch/internal/diagnose"
	"github.com/zombiewatch/zombiewatch/internal/events"
	"github.com/zombiewatch/zombiewatch/internal/load"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// lessons are the phases, in order. Each sets the server up as it needs,
// so that any one can run alone.
var lessons = []func(context.Context, *run) (Phase, error){
	reaperOff, reaperWait, reaperLoop, closeConnOff, closeConnOn, pidsMax, reapLatency,
}

// burstHold keeps the children of a burst alive until all have answered,
// so that they exit together.
const burstHold = "hold=300ms"

func reaperOff(ctx context.Context, r *run) (Phase, error) {
	before, snap, err := r.requestsUnder(ctx, "reaper=off", "close-conn=on", "hold=0s")
	if err != nil {
		return Phase{}, err
	}
	n := r.cfg.Requests
	p := phase("reaper off", n, before, snap)
	p.PSZombies = r.psCount()
	p.Summary = fmt.Sprintf("reaper off: %d requests left %d zombies%s", n, snap.Zombies-before.Zombies, psNote(p.PSZombies, snap.Zombies))
	p.Lesson = "Nobody waits for a finished child, so each stays a zombie (<defunct> in ps) holding its pid and exit status (webserver3d)."
	return p, nil
}

// requestsUnder switches the server to settings, then sends r.cfg.Requests
// requests one after another; it returns the server settled before and
// after them.
func (r *run) requestsUnder(ctx context.Context, settings ...string) (before, after *model.Process, err error) {
	if err := r.set(settings...); err != nil {
		return nil, nil, err
	}
	if before, err = r.settled(ctx); err != nil {
		return nil, nil, err
	}
	if err := r.load(ctx, 1, r.cfg.Requests); err != nil {
		return nil, nil, err
	}
	after, err = r.settled(ctx)
	return before, after, err
}

func reaperWait(ctx context.Context, r *run) (Phase, error) {
	p, reaped, left, err := r.switchAndBurst(ctx, "wait")
	if err != nil {
		return p, err
	}
	switched := ""
	if reaped > 0 {
		switched = fmt.Sprintf("switching it on reaped the %d zombies at once (%.1f ms); then ", reaped, *p.RecoverMs)
	}
	p.Summary = fmt.Sprintf("reaper wait: %s%d children exiting together left %d zombies%s",
		switched, r.cfg.Burst, left, psNote(p.PSZombies, left))
	p.Lesson = "SIGCHLD notifications coalesce: many exits at once raise fewer signals, and one wait per signal reaps one child (webserver3e/3f)."
	if left == 0 {
		p.Lesson = "This time every exit got a signal of its own; run it again, or with a larger --burst, to see them coalesce."
	}
	return p, nil
}

func reaperLoop(ctx context.Context, r *run) (Phase, error) {
	p, reaped, left, err := r.switchAndBurst(ctx, "loop")
	if err != nil {
		return p, err
	}
	switched := ""
	if reaped > 0 {
		switched = fmt.Sprintf("the %d zombies left were reaped in %.1f ms; ", reaped, *p.RecoverMs)
	}
	p.Summary = fmt.Sprintf("reaper loop: %sa burst of %d then left %d%s",
		switched, r.cfg.Burst, left, psNote(p.PSZombies, left))
	p.Lesson = "waitpid(-1, WNOHANG) in a loop until it returns 0 reaps every finished child, however few signals arrived (webserver3g)."
	return p, nil
}

// switchAndBurst switches the reaper to mode, times how long the zombies
// already there take to be reaped, then makes a burst: it returns the
// phase measured, the zombies reaped by the switch, and those the burst left.
func (r *run) switchAndBurst(ctx context.Context, mode string) (p Phase, reaped, left int, err error) {
	start, err := r.snapshot(false)
	if err != nil {
		return p, 0, 0, err
	}
	began := time.Now()
	if err := r.set("reaper="+mode, "close-conn=on"); err != nil {
		return p, 0, 0, err
	}
	if _, err := r.poll(ctx, "the zombies to be reaped", func(s *model.Process) bool { return s.Zombies == 0 }); err != nil {
		return p, 0, 0, err
	}
	recovered := time.Since(began)
	before, after, err := r.burst(ctx)
	if err != nil {
		return p, 0, 0, err
	}
	p = phase("reaper "+mode, r.cfg.Burst, before, after)
	if start.Zombies > 0 { // nothing to recover when run alone: no time to show
		p.RecoverMs = ms(recovered)
	}
	p.PSZombies = r.psCount()
	return p, start.Zombies, after.Zombies, nil
}

// burst makes r.cfg.Burst simultaneous requests whose children exit
// together, and returns the server before and after it settled.
func (r *run) burst(ctx context.Context) (before, after *model.Process, err error) {
	if before, err = r.settled(ctx); err != nil {
		return nil, nil, err
	}
	if err := r.set(burstHold); err != nil {
		return nil, nil, err
	}
	if err := r.load(ctx, r.cfg.Burst, r.cfg.Burst); err != nil {
		return nil, nil, err
	}
	if err := r.set("hold=0s"); err != nil {
		return nil, nil, err
	}
	after, err = r.settled(ctx)
	return before, after, err
}

func closeConnOff(ctx context.Context, r *run) (Phase, error) {
	before, snap, err := r.requestsUnder(ctx, "reaper=loop", "close-conn=off", "hold=0s")
	if err != nil {
		return Phase{}, err
	}
	n := r.cfg.Requests
	p := phase("close-conn off", n, before, snap)
	p.Summary = fmt.Sprintf("close-conn off: %d requests raised the parent's fds %d -> %d (+%d sockets, %d in CLOSE_WAIT)",
		n, p.FDsBefore, p.FDs, snap.FDTypes[proc.FDSocket]-before.FDTypes[proc.FDSocket], p.CloseWait)
	p.Lesson = "The parent keeps its copy of each connection: the client's close is never answered, the socket waits in CLOSE_WAIT, and fds run out at ulimit -n (webserver3d)."
	return p, nil
}

func closeConnOn(ctx context.Context, r *run) (Phase, error) {
	start, err := r.snapshot(true)
	if err != nil {
		return Phase{}, err
	}
	if start.TCPStates["CLOSE_WAIT"] == 0 {
		// Run alone: make the copies this lesson closes, as phase 4 does.
		if _, start, err = r.requestsUnder(ctx, "reaper=loop", "close-conn=off", "hold=0s"); err != nil {
			return Phase{}, err
		}
	}
	began := time.Now()
	if err := r.set("reaper=loop", "close-conn=on", "hold=0s"); err != nil {
		return Phase{}, err
	}
	if _, err := r.poll(ctx, "the kept copies to close", func(s *model.Process) bool { return s.TCPStates["CLOSE_WAIT"] == 0 }); err != nil {
		return Phase{}, err
	}
	recovered := time.Since(began)
	// The baseline waits for the server to settle: the control connection
	// that switched it may still be open for a moment after the answer.
	base, err := r.settled(ctx)
	if err != nil {
		return Phase{}, err
	}
	n := r.cfg.Requests
	if err := r.load(ctx, 1, n); err != nil {
		return Phase{}, err
	}
	snap, err := r.settled(ctx)
	if err != nil {
		return Phase{}, err
	}
	p := phase("close-conn on", n, base, snap)
	p.RecoverMs = ms(recovered)
	p.Summary = fmt.Sprintf("close-conn on: the %d kept copies were closed in %.1f ms (fds %d -> %d); %d more requests left the fds at %d",
		start.TCPStates["CLOSE_WAIT"], *p.RecoverMs, *start.FDs, p.FDsBefore, n, p.FDs)
	p.Lesson = "Parent and child each close their copy, so the connection ends when the child is done (webserver3c)."
	return p, nil
}

func phase(name string, requests int, before, after *model.Process) Phase {
	return Phase{
		Name: name, Requests: requests, Zombies: after.Zombies,
		FDsBefore: *before.FDs, FDs: *after.FDs, CloseWait: after.TCPStates["CLOSE_WAIT"],
	}
}

func psNote(ps *int, zombies int) string {
	switch {
	case ps == nil:
		return " (ps not installed: no cross-check)"
	case *ps == zombies:
		return fmt.Sprintf(" (ps counts %d too)", *ps)
	default:
		return fmt.Sprintf(" (ps counts %d: the count moved between the two reads)", *ps)
	}
}

// pidsRoom is how many pids phase 6's cgroup leaves above the server's own
// threads: the zombies that fill it.
const pidsRoom = 20

// pidsMax is Part 3's ulimit -u lesson the container way: the server is
// moved into a pids cgroup with room for pidsRoom more tasks, its reaper
// off; zombies fill pids.max and the next fork fails with EAGAIN, as root,
// which RLIMIT_NPROC cannot show. zombiewatch names pids.max as the limit
// that binds first before it does. Skipped, saying so, where no writable
// pids controller exists.
func pidsMax(ctx context.Context, r *run) (Phase, error) {
	before, err := r.settled(ctx)
	if err != nil {
		return Phase{}, err
	}
	limit := before.Threads + pidsRoom
	m, err := cgroup.MakePids("/sys/fs/cgroup", fmt.Sprintf("zombiewatch-demo-%d", r.pid), limit)
	if err != nil {
		p := phase("pids.max", 0, before, before)
		p.Summary = "pids.max: skipped: " + err.Error()
		p.Lesson = "In a container, the cgroup's pids.max (Kubernetes podPidsLimit, docker --pids-limit) is what zombies fill: root is not exempt from it as it is from ulimit -u."
		return p, nil
	}
	r.after = append(r.after, func() { m.Remove(5 * time.Second) })
	if err := m.Enter(r.pid); err != nil {
		return Phase{}, err
	}
	defer m.Leave(r.pid) // out again before the cgroup goes
	if err := r.set("reaper=off", "close-conn=on", "hold=0s"); err != nil {
		return Phase{}, err
	}
	cfs, err := cgroup.New("/sys/fs/cgroup")
	if err != nil {
		return Phase{}, err
	}
	zw := model.NewReader(r.zw.FS, cgroup.Source(r.zw.FS, cfs))
	requests, warnedAt, last, err := fillPids(ctx, r, zw)
	if err != nil {
		return Phase{}, err
	}
	final, err := zw.Process(ctx, r.pid, model.Options{})
	if err != nil {
		return Phase{}, err
	}
	p := phase("pids.max", requests, before, last)
	refused := 0
	if c := final.Cgroup; c != nil && c.PidsRefused != nil {
		refused = *c.PidsRefused
	}
	warned := "zombiewatch did not name pids.max before the failure"
	if warnedAt > 0 {
		warned = fmt.Sprintf("zombiewatch named pids.max as the limit that binds first after request %d", warnedAt)
	}
	p.Summary = fmt.Sprintf("pids.max: in a cgroup of %d pids (the server's %d threads + %d), %d zombies filled it; %s; request %d got 503: fork failed with EAGAIN, as root (pids.events counts %d refusals: the fork, and the server runtime's retried thread starts)",
		limit, before.Threads, pidsRoom, last.Zombies, warned, requests, refused)
	p.Lesson = "In a container, the cgroup's pids.max (Kubernetes podPidsLimit, docker --pids-limit) is what zombies fill: root is not exempt from it as it is from ulimit -u."
	// Leave the server as the next lesson expects: reaped, out of the cgroup.
	if err := r.set("reaper=loop"); err != nil {
		return p, err
	}
	return p, nil
}

// fillPids sends one request at a time to the server (reaper off) until
// one is answered 503: the zombies fill its cgroup's pids.max. It returns
// the requests sent, the first after which zombiewatch named pids.max as
// near (-1: never), and the server's last settled reading.
func fillPids(ctx context.Context, r *run, zw *model.Reader) (requests, warnedAt int, last *model.Process, err error) {
	warnedAt = -1
	for requests < pidsRoom+5 {
		if err := ctx.Err(); err != nil {
			return requests, warnedAt, last, err
		}
		res := load.Run(ctx, load.Config{Addr: r.addr, Clients: 1, Conns: 1, Timeout: 10 * time.Second})
		requests++
		if last, err = r.settled(ctx); err != nil {
			return requests, warnedAt, last, err
		}
		if p, err := zw.Process(ctx, r.pid, model.Options{}); err == nil && warnedAt < 0 &&
			len(p.Limits) > 0 && p.Limits[0].Name == "pids.max" && p.Limits[0].Ratio >= diagnose.NearLimit {
			warnedAt = requests
		}
		if res.Status[503] > 0 {
			break
		}
	}
	return requests, warnedAt, last, nil
}

// latencyPairs is how many pairs of simultaneous requests phase 7 sends
// under each reaper, one pair every latencyGap.
const (
	latencyPairs = 12
	latencyGroup = 6 // children that exit together, each time
	latencyGap   = 250 * time.Millisecond
)

// reapLatency is the lesson polling cannot show: under reaper=wait with a
// steady trickle (two children exiting together every 250 ms) the zombies
// at any instant look harmless, while the exit-to-reap latency from the
// kernel's process events shows one child of each pair waiting for the
// next signal; reaper=loop brings it to milliseconds. Skipped, saying so,
// without process events (another pid namespace than the host's).
func reapLatency(ctx context.Context, r *run) (Phase, error) {
	before, err := r.settled(ctx)
	if err != nil {
		return Phase{}, err
	}
	const lesson = "A poll sees the zombies of one instant; every exit seen shows how long children wait: one wait per signal leaves some of each group until the next signal (webserver3e/3f), the loop reaps at once (3g)."
	p := phase("reap latency", latencyGroup*latencyPairs, before, before)
	p.Lesson = lesson
	// On a loaded machine the loop's latency can rise to the wait's: the
	// pair is measured again, up to latencyAttempts times, until the
	// difference shows, and said plainly if it never does.
	var m [2]latency
	shown := false
	attempt := 0
	for attempt = 1; attempt <= latencyAttempts && !shown; attempt++ {
		for i, mode := range []string{"wait", "loop"} {
			var skip string
			if m[i], skip, err = measureLatency(ctx, r, mode); err != nil || skip != "" {
				p.Summary = "reap latency: " + skip
				return p, err
			}
		}
		shown = m[0].p99 >= 2*m[1].p99 && m[0].p99-m[1].p99 >= 20*time.Millisecond
	}
	after, err := r.settled(ctx)
	if err != nil {
		return p, err
	}
	p = phase("reap latency", latencyGroup*latencyPairs, before, after)
	p.Lesson = lesson
	p.WaitP50Ms, p.WaitP99Ms, p.LoopP50Ms, p.LoopP99Ms = ms(m[0].p50), ms(m[0].p99), ms(m[1].p50), ms(m[1].p99)
	numbers := fmt.Sprintf("%d children exiting together every %s; reaper wait: at most %d zombies at any read, exit-to-reap p50 %.0f ms, p99 %.0f ms; reaper loop: at most %d, p50 %.1f ms, p99 %.1f ms",
		latencyGroup, latencyGap, m[0].most, *p.WaitP50Ms, *p.WaitP99Ms, m[1].most, *p.LoopP50Ms, *p.LoopP99Ms)
	if !shown {
		p.Lesson = "Not shown here: the loop's latency was not clearly below the wait's in " + fmt.Sprint(latencyAttempts) + " tries (a loaded machine delays every reap alike)."
		p.Summary = "reap latency: could not show the difference on this machine (loaded?): " + numbers
		return p, nil
	}
	p.Summary = "reap latency: " + numbers
	return p, nil
}

// latencyAttempts bounds how often phase 7 measures the pair again.
const latencyAttempts = 3

// latency is one reaper mode's exit-to-reap latency, from the events.
type latency struct {
	p50, p99 time.Duration
	most     int // most zombies seen at one read
}

// measureLatency sends latencyPairs groups under reaper mode and reads
// the exit-to-reap latency from the kernel's process events; skip says
// why it could not (no events here, no reap seen).
func measureLatency(ctx context.Context, r *run, mode string) (latency, string, error) {
	var l latency
	evCtx, stop := context.WithCancel(ctx)
	defer stop()
	src, err := events.Start(evCtx, r.zw.FS)
	if err != nil {
		return l, "skipped: " + err.Error(), nil
	}
	// hold makes the children of a group exit together (their SIGCHLDs
	// coalesce), as children of a burst do.
	if err := r.set("reaper="+mode, "close-conn=on", "hold=100ms"); err != nil {
		return l, "", err
	}
	for range latencyPairs {
		if err := r.load(ctx, latencyGroup, latencyGroup); err != nil {
			return l, "", err
		}
		if snap, err := r.snapshot(false); err == nil {
			l.most = max(l.most, snap.Zombies)
		}
		select {
		case <-ctx.Done():
			return l, "", ctx.Err()
		case <-time.After(latencyGap):
		}
	}
	r.set("reaper=loop", "hold=0s") // the last zombies of wait mode go
	time.Sleep(200 * time.Millisecond)
	st := src.Parent(r.pid)
	if st.P99 == nil {
		return l, "no reap seen from the process events", nil
	}
	l.p50, l.p99 = *st.P50, *st.P99
	return l, "", nil
}
