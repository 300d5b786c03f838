// Package events follows every process exit on the host through the
// kernel's process-events connector (netlink NETLINK_CONNECTOR, group
// CN_IDX_PROC), and each exited process until it is reaped: its /proc
// entry goes (there is no "reaped" event). That turns zombie watching from
// sampling into accounting: per parent, exits, reaps and the time from
// exit to reap, which a poll of the zombies present cannot see.
//
// Only the exited pids are checked, each with a growing back-off (a
// sixteenth of the time since its exit, up to 2 s), so the
// cost follows the zombies pending, not the processes on the host. A pid
// is known by its start time too: a reaped pid taken by a new process is
// not joined to the old exit. Events the socket dropped (ENOBUFS) are
// counted, never hidden.
package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// The connector's constants (linux/connector.h, linux/cn_proc.h).
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventNone     = 0x00000000 // the answer to a subscription
	procEventFork     = 0x00000001
	procEventExit     = 0x80000000
	nlmsgHdrLen       = 16
	cnMsgLen          = 20
)

// Window is how far back the latency quantiles look.
const Window = 60 * time.Second

// ErrUnavailable wraps why events cannot be had (not root nor
// the connector, another pid namespace than the host's).
var ErrUnavailable = errors.New("process events unavailable")

// Source is a running subscription.
type Source struct {
	fs   *proc.FS
	lost atomic.Int64

	mu      sync.Mutex
	parents map[int]*parentStats
	// parentOf: the parent of each process forked since the source began
	// (from fork events): an exit event names no parent when the parent
	// reaped so fast that the kernel had released the child already.
	parentOf map[int]int
	pending  map[int]*exit // by pid, until reaped
	changed  chan struct{} // a non-blocking note that something happened
	// touched: pids that exited or were reaped since TakeTouched; too
	// many to keep sets touchedAll instead.
	touched    map[int]struct{}
	touchedAll bool
	tracking   bool // from the first TakeTouched: nobody else pays for it
}

// maxTouched bounds the pids kept between two TakeTouched.
const maxTouched = 1 << 16

// touch notes that pid exited or was reaped; s.mu is held.
func (s *Source) touch(pid int) {
	if !s.tracking || s.touchedAll {
		return
	}
	if s.touched == nil {
		s.touched = map[int]struct{}{}
	}
	if len(s.touched) >= maxTouched {
		s.touched, s.touchedAll = nil, true
		return
	}
	s.touched[pid] = struct{}{}
}

// TakeTouched gives the pids that exited or were reaped since the last
// call (all: too many were, treat every process as touched), for a scan
// that rereads them at once rather than when their back-off says. One
// caller takes them; they are kept from its first call on.
func (s *Source) TakeTouched() (pids []int, all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tracking = true
	for pid := range s.touched {
		pids = append(pids, pid)
	}
	all = s.touchedAll
	s.touched, s.touchedAll = nil, false
	return pids, all
}

type exit struct {
	pid, parent int
	at          time.Time // the exit
	atNs        uint64    // the exit, in the event's ns since boot
	next        time.Time // the next check
	wait        time.Duration
}

type parentStats struct {
	// start: the parent's start time (stat's ticks) when its first exit
	// was seen, 0 if it was gone: its identity, since a pid is reused.
	start         uint64
	last          time.Time // its last exit, to forget idle parents
	exits, reaped int64
	// A cumulative histogram of every latency seen, for Prometheus.
	buckets [len(Buckets)]uint64
	sum     float64
	lat     []sampleLat // the window's latencies, oldest first
}

type sampleLat struct {
	at time.Time
	d  time.Duration
}

// Stats is what the source knows of one parent's children.
type Stats struct {
	// Start: the parent's start time (stat's ticks) when its first exit
	// was seen, 0 if unknown: a reader checks it before naming the pid's
	// process, since the pid may name another process by now.
	Start         uint64
	Exits, Reaped int64 // since the source started
	Pending       int   // exited, not reaped yet
	// P50 and P99: exit-to-reap latency over Window (nil: no reap seen).
	P50, P99 *time.Duration
	// Latencies: the window's.
	Latencies []time.Duration
	// Buckets (cumulative counts at each bound of Buckets) and Sum (in
	// seconds): every latency since the source started, for a histogram.
	Buckets [len(Buckets)]uint64
	Sum     float64
}

// Buckets are the latency histogram's upper bounds, in seconds: from a
// prompt reaper's milliseconds to a zombie left for a minute.
var Buckets = [...]float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Start subscribes to process events; it returns ErrUnavailable (wrapped,
// with the reason) where the kernel refuses. The source stops with ctx.
func Start(ctx context.Context, fs *proc.FS) (*Source, error) {
	// The events carry pids of the host's (initial) pid namespace: in
	// another one they would name other processes, or none, in its /proc.
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil || st.Ino != proc.InitPIDNamespace {
		return nil, fmt.Errorf("%w: this process is not in the host's pid namespace, and the events carry the host's pids", ErrUnavailable)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("%w: netlink socket: %v", ErrUnavailable, err)
	}
	// A big receive buffer absorbs bursts (10,000 forks in a second);
	// what still overflows is counted as lost.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		why := ""
		if errors.Is(err, unix.EPERM) {
			why = " (listening to the process connector takes CAP_NET_ADMIN)"
		}
		return nil, fmt.Errorf("%w: bind to the process connector: %v%s", ErrUnavailable, err, why)
	}
	msg := make([]byte, nlmsgHdrLen+cnMsgLen+4)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(msg[12:], uint32(os.Getpid()))
	binary.NativeEndian.PutUint32(msg[16:], cnIdxProc)
	binary.NativeEndian.PutUint32(msg[20:], cnValProc)
	binary.NativeEndian.PutUint16(msg[32:], 4)
	binary.NativeEndian.PutUint32(msg[36:], procCnMcastListen)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: subscribe: %v", ErrUnavailable, err)
	}
	if err := awaitAck(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: subscribe: %v", ErrUnavailable, err)
	}
	s := &Source{fs: fs, parents: map[int]*parentStats{}, parentOf: map[int]int{}, pending: map[int]*exit{}, changed: make(chan struct{}, 1)}
	go s.run(ctx, fd)
	return s, nil
}

// ackWait bounds the wait for the kernel's answer to the subscription.
const ackWait = 2 * time.Second

// awaitAck reads until the kernel's answer to the subscription (an event
// of type none carrying an error number): a kernel that refuses it (older
// ones want CAP_NET_ADMIN) still lets the socket join the group, and it
// would then receive events only while someone else subscribes: counts
// that look like a quiet host.
func awaitAck(fd int) error {
	tv := unix.NsecToTimeval(int64(ackWait))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(ackWait)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case err == unix.EINTR || err == unix.ENOBUFS:
			continue
		case err == unix.EAGAIN:
			return errors.New("no answer from the kernel")
		case err != nil:
			return err
		}
		for msg := buf[:n]; len(msg) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(msg[0:]))
			if l < nlmsgHdrLen || l > len(msg) {
				break
			}
			if cn := msg[nlmsgHdrLen:l]; len(cn) >= cnMsgLen+20 && binary.NativeEndian.Uint32(cn[cnMsgLen:]) == procEventNone {
				if e := binary.NativeEndian.Uint32(cn[cnMsgLen+16:]); e != 0 {
					if unix.Errno(e) == unix.EPERM {
						return errors.New("operation not permitted (this kernel wants CAP_NET_ADMIN for process events)")
					}
					return unix.Errno(e)
				}
				return nil
			}
			adv := (l + 3) &^ 3
			if adv >= len(msg) {
				break
			}
			msg = msg[adv:]
		}
	}
	return errors.New("no answer from the kernel")
}

// Changed is signalled (without blocking) when an exit or a reap arrives:
// a screen redraws on it rather than only on its tick.
func (s *Source) Changed() <-chan struct{} { return s.changed }

// Lost counts the times the kernel dropped events (the socket overflowed):
// the numbers are then lower bounds.
func (s *Source) Lost() int64 { return s.lost.Load() }

func (s *Source) note() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// batchDelay: after the socket runs dry the receiver waits this long
// before it parks again, so that one wakeup handles the events of a few
// milliseconds, not each (their times come from the kernel's stamps).
const batchDelay = 10 * time.Millisecond

// idleWait is how long the receiver blocks with no check due: how soon
// it sees ctx end.
const idleWait = time.Second

// run reads events and checks the exited pids as their back-off says,
// until ctx ends, in one goroutine: it blocks in recvfrom until an event
// comes or the next check is due (the socket's receive timeout), so one
// wakeup serves both. A blocking read costs less here than the runtime's
// poller, whose every park and wakeup went through epoll (measured: two
// thirds of the source's CPU at 1,000 exits a second).
func (s *Source) run(ctx context.Context, fd int) {
	defer unix.Close(fd)
	buf := make([]byte, 64<<10)
	check := make([]byte, 0, 1024)
	pruned := time.Now()
	for ctx.Err() == nil {
		// Checks due within minWait of each other are done together: at
		// a thousand exits a second the loop wakes 100 times, not 1,000.
		wait := idleWait
		if next := s.nextDue(); !next.IsZero() {
			wait = min(max(time.Until(next), minWait), idleWait)
		}
		tv := unix.NsecToTimeval(wait.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return
		}
		got, ok := s.drain(fd, buf)
		if !ok {
			return // closed, or the kernel stopped answering
		}
		now := time.Now()
		if now.Sub(pruned) > 10*time.Second {
			s.prune(now)
			pruned = now
		}
		check = s.checkDue(now, check)
		if got {
			// Let a few milliseconds of events gather before the next
			// read (their times come from the kernel's stamps).
			ts := unix.NsecToTimespec(batchDelay.Nanoseconds())
			unix.Nanosleep(&ts, nil)
		}
	}
}

// drain waits for events (up to the socket's timeout), then takes every
// event there is; got says whether any came, ok false that the socket
// failed. An overrun (ENOBUFS) is counted as lost.
func (s *Source) drain(fd int, buf []byte) (got, ok bool) {
	n, _, err := unix.Recvfrom(fd, buf, 0)
	for {
		switch err {
		case nil:
			s.messages(buf[:n])
			got = true
		case unix.ENOBUFS:
			s.lost.Add(1)
		case unix.EINTR:
		case unix.EAGAIN:
			return got, true
		default:
			return got, false
		}
		n, _, err = unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
	}
}

// messages hands each netlink message of one read to event.
func (s *Source) messages(msg []byte) {
	for len(msg) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(msg[0:]))
		if l < nlmsgHdrLen || l > len(msg) {
			return
		}
		s.event(msg[nlmsgHdrLen:l])
		adv := (l + 3) &^ 3
		if adv >= len(msg) {
			return
		}
		msg = msg[adv:]
	}
}

// event handles one cn_msg holding a proc_event.
func (s *Source) event(cn []byte) {
	if len(cn) < cnMsgLen+16 {
		return
	}
	ev := cn[cnMsgLen:]
	switch what := binary.NativeEndian.Uint32(ev[0:]); {
	case what == procEventFork && len(ev) >= 16+16:
		s.fork(ev[16:])
	case what == procEventExit && len(ev) >= 16+24:
		s.exit(binary.NativeEndian.Uint64(ev[8:]), ev[16:])
	}
}

// fork remembers a new process's parent (struct fork_proc_event), for an
// exit whose event names none.
func (s *Source) fork(data []byte) {
	parentTgid := int(int32(binary.NativeEndian.Uint32(data[4:])))
	child, childTgid := int(int32(binary.NativeEndian.Uint32(data[8:]))), int(int32(binary.NativeEndian.Uint32(data[12:])))
	if child != childTgid {
		return // a thread, not a process
	}
	s.mu.Lock()
	if len(s.parentOf) > maxForks {
		s.parentOf = map[int]int{} // bounded: the oldest are the least needed
	}
	s.parentOf[child] = parentTgid
	s.mu.Unlock()
}

// exit counts a process's exit (struct exit_proc_event, stamped in
// CLOCK_MONOTONIC ns) for its parent, and follows it until it is reaped.
func (s *Source) exit(stamp uint64, data []byte) {
	pid := int(int32(binary.NativeEndian.Uint32(data[0:])))
	tgid := int(int32(binary.NativeEndian.Uint32(data[4:])))
	parentTgid := int(int32(binary.NativeEndian.Uint32(data[20:])))
	if pid != tgid || pid <= 0 {
		return // a thread, not a process: no zombie of its own
	}
	// The exit's time from the event's own clock, so a burst read late is
	// not read as late reaping.
	at := time.Now()
	var mono unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) == nil {
		if ago := time.Duration(mono.Nano() - int64(stamp)); ago > 0 && ago < time.Minute {
			at = at.Add(-ago)
		}
	}
	// The parent is the event's: a process's own parent does not change
	// as it exits (its children are the ones reparented).
	e := &exit{pid: pid, parent: parentTgid, at: at, atNs: stamp, wait: minWait}
	e.next = e.at.Add(e.wait)
	s.mu.Lock()
	if forker, ok := s.parentOf[pid]; ok {
		if e.parent == 0 {
			e.parent = forker
		}
		delete(s.parentOf, pid)
	}
	s.touch(pid)
	ps := s.stats(e.parent)
	ps.exits++
	ps.last = at
	if parentTgid == 0 {
		// The kernel had released it before the event was made: reaped
		// already, at once.
		ps.reaped++
		ps.add(sampleLat{at, 0})
	} else {
		s.pending[pid] = e
	}
	s.mu.Unlock()
	s.note()
}

func (s *Source) stats(parent int) *parentStats {
	ps := s.parents[parent]
	if ps == nil {
		ps = &parentStats{}
		if st, _, err := s.fs.ReadStat(parent, nil); err == nil {
			ps.start = st.StartTime
		}
		s.parents[parent] = ps
	}
	return ps
}

// add records one latency in the window and the histogram.
func (ps *parentStats) add(l sampleLat) {
	ps.lat = append(ps.lat, l)
	ps.sum += l.d.Seconds()
	for i, b := range Buckets {
		if l.d.Seconds() <= b {
			ps.buckets[i]++
		}
	}
}

// maxForks bounds the fork map (a process each; a host has fewer).
const maxForks = 1 << 20

// minWait is the finest a reap is timed: a prompt reaper reads as a few
// milliseconds.
const minWait = 10 * time.Millisecond

// maxWait caps a pending pid's back-off: a zombie left for good is
// checked every 2 s.
const maxWait = 2 * time.Second

// nextDue is when the next pending pid is due a check (zero: none).
func (s *Source) nextDue() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for _, e := range s.pending {
		if next.IsZero() || e.next.Before(next) {
			next = e.next
		}
	}
	return next
}

// checkDue checks the pending pids that are due: reaped (gone, or their
// pid names a process started after the exit) or not yet.
func (s *Source) checkDue(now time.Time, buf []byte) []byte {
	s.mu.Lock()
	due := make([]*exit, 0, 16)
	for _, e := range s.pending {
		if !now.Before(e.next) {
			due = append(due, e)
		}
	}
	s.mu.Unlock()
	reaped := false
	for _, e := range due {
		// Gone (one stat of the directory tells, the common case), or
		// the pid names a process that started after the exit: the
		// exited one was reaped and its pid reused.
		gone := !s.exists(e.pid)
		if !gone {
			st, b, err := s.fs.ReadStat(e.pid, buf)
			buf = b
			gone = proc.IsGone(err) || (err == nil && startedAfter(st.StartTime, e.atNs))
		}
		s.mu.Lock()
		if gone {
			delete(s.pending, e.pid)
			s.touch(e.pid)
			ps := s.stats(e.parent)
			ps.reaped++
			ps.add(sampleLat{now, now.Sub(e.at)})
			reaped = true
		} else {
			// The next check after a sixteenth of the time since the
			// exit: the latency is measured to within ~6%, and a
			// zombie left for good costs a check every 2 s.
			e.wait = min(max(now.Sub(e.at)/16, minWait), maxWait)
			e.next = now.Add(e.wait)
		}
		s.mu.Unlock()
	}
	if reaped {
		s.note()
	}
	return buf
}

// Parent is what is known of parent's children.
func (s *Source) Parent(parent int) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st Stats
	for _, e := range s.pending {
		if e.parent == parent {
			st.Pending++
		}
	}
	ps := s.parents[parent]
	if ps == nil {
		return st
	}
	st.Start, st.Exits, st.Reaped, st.Buckets, st.Sum = ps.start, ps.exits, ps.reaped, ps.buckets, ps.sum
	cutoff := time.Now().Add(-Window)
	i := 0
	for i < len(ps.lat) && ps.lat[i].at.Before(cutoff) {
		i++
	}
	ps.lat = ps.lat[i:]
	for _, l := range ps.lat {
		st.Latencies = append(st.Latencies, l.d)
	}
	if len(st.Latencies) > 0 {
		sorted := slices.Clone(st.Latencies)
		slices.Sort(sorted)
		p50, p99 := sorted[(len(sorted)-1)/2], sorted[(len(sorted)-1)*99/100]
		st.P50, st.P99 = &p50, &p99
	}
	return st
}

// Parents lists the parents with exits seen, for a host view.
func (s *Source) Parents() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, 0, len(s.parents))
	for p := range s.parents {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// idle is how long a parent without exits, pending children or latencies
// in the window is remembered: the map follows the active parents only.
const idle = 10 * time.Minute

func (s *Source) prune(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	busy := map[int]bool{}
	for _, e := range s.pending {
		busy[e.parent] = true
	}
	for p, ps := range s.parents {
		if !busy[p] && now.Sub(ps.last) > idle {
			delete(s.parents, p)
		}
	}
}

// startedAfter tells whether a process that started ticks (of 10 ms)
// after boot started after the event at ns after boot, with a tick of
// slack: both count from boot (a host suspended between a process's start
// and its exit could read as reused: servers do not suspend).
func startedAfter(ticks, ns uint64) bool {
	return ticks*10_000_000 > ns+10_000_000
}

// exists tells whether root/PID is there: one stat.
func (s *Source) exists(pid int) bool {
	var st unix.Stat_t
	return unix.Stat(s.fs.PIDPath(pid), &st) == nil
}
