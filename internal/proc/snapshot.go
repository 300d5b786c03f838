package proc

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Snapshot is one reading of one process. Its JSON form is zombiewatch's
// --json output; the README documents the keys.
type Snapshot struct {
	PID     int      `json:"pid"`
	PPID    int      `json:"ppid"`
	Comm    string   `json:"comm"`
	Cmdline []string `json:"cmdline"`
	State   string   `json:"state"`
	// Exit is how the process ended, when it is itself a zombie waiting
	// for its parent ("exit 0", "killed by SIGKILL").
	Exit      string    `json:"exit,omitempty"`
	Threads   int       `json:"threads"`
	UID       int       `json:"uid"`
	User      string    `json:"user"`
	StartTime time.Time `json:"start_time"`
	// NamespaceInit: pid 1 of its pid namespace (a container's PID 1). Every
	// orphan in the namespace is reparented to it, and only it can reap them.
	NamespaceInit bool `json:"namespace_init"`

	Children int `json:"children"` // direct children, zombies included
	Zombies  int `json:"zombies"`  // direct children in state Z
	// AdoptedZombies: direct zombie children that started before this
	// process did, so it cannot have forked them: orphans it adopted.
	AdoptedZombies    int      `json:"adopted_zombies"`
	DescendantZombies int      `json:"descendant_zombies"` // zombies anywhere below, direct ones included
	ZombieList        []Zombie `json:"zombie_list"`        // every zombie below, oldest first

	FDs     *int           `json:"fds"`      // null when the fd directory may not be read
	FDTypes map[string]int `json:"fd_types"` // null unless asked for
	// TCPStates counts the TCP sockets among the fds by state
	// ("CLOSE_WAIT": 398); null unless fd types were asked for.
	TCPStates map[string]int `json:"tcp_states"`

	FDSoftLimit    Limit `json:"fd_soft_limit"`
	FDHardLimit    Limit `json:"fd_hard_limit"`
	NprocSoftLimit Limit `json:"nproc_soft_limit"`
	NprocHardLimit Limit `json:"nproc_hard_limit"`
	// UIDProcesses: processes and threads whose real uid is UID, zombies
	// included: what RLIMIT_NPROC counts. Null for uid 0, for which the
	// kernel does not enforce the limit: counting means reading every
	// process's status, a cost that grows with the host.
	UIDProcesses *int `json:"uid_processes"`

	Sigchld        Disposition `json:"sigchld"`
	SigchldBlocked bool        `json:"sigchld_blocked"`
	SigchldPending bool        `json:"sigchld_pending"`

	// Denied lists the reads the kernel refused (another user's fd
	// directory), each with its fix; what they would have filled is null.
	Denied []string `json:"denied,omitempty"`
}

// Zombie is one child in state Z, as wait will see it.
type Zombie struct {
	PID  int    `json:"pid"`
	PPID int    `json:"ppid"`
	Comm string `json:"comm"`
	// ExitCode is what a shell's $? would say: the exit status, or 128+N
	// when signal N killed it. Exit says it in words.
	ExitCode   int     `json:"exit_code"`
	Exit       string  `json:"exit"`
	WaitStatus int     `json:"wait_status"` // stat field 52, raw
	AgeSeconds float64 `json:"age_seconds"`
	Adopted    bool    `json:"adopted"`
	UID        *int    `json:"uid,omitempty"` // only with Options.ZombieOwners
	User       string  `json:"user,omitempty"`

	start time.Time
	ticks uint64 // start time in clock ticks, to sort by
	raw   stat   // as read, for a ZombieCache
}

// Options choose the reads that cost more than a few syscalls.
type Options struct {
	// FDTypes reads every descriptor's link to count kinds: O(fds).
	FDTypes bool
	// ZombieOwners stats each zombie's directory for its owner, as ps's
	// USER column does: one syscall per zombie.
	ZombieOwners bool
	// Cache, for a watcher, remembers zombies between readings (see
	// ZombieCache); nil reads every child each time.
	Cache *ZombieCache
	// NoUIDCount leaves UIDProcesses nil: counting reads every process's
	// status, which a watcher does only every few samples.
	NoUIDCount bool
}

// ZombieCache lets repeated readings skip the children they have seen as
// zombies: a zombie does not change until it is reaped, so only new
// children need their stat read. Every Refresh readings (default 30) all
// are read again, which bounds the one thing the cache could miss: a
// zombie reaped and its pid reused by a new child of the same parent in
// between, which needs the whole pid space to wrap.
type ZombieCache struct {
	Refresh  int
	readings int
	zombies  map[int]stat
}

// full tells whether this reading reads every child.
func (c *ZombieCache) full() bool {
	refresh := c.Refresh
	if refresh <= 0 {
		refresh = 30
	}
	return c.readings%refresh == 0
}

// Snapshot reads pid once. A missing pid gives ErrNoProcess, a pid reused
// during the read ErrPIDReused. If only the descriptors may not be listed
// (another user's process: the count from stat stays readable on Linux >=
// 6.2, the kinds do not), it returns the snapshot, with what was refused
// null and named in Denied, and a *PermissionError.
func (f *FS) Snapshot(pid int, opt Options) (*Snapshot, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
	}
	buf := make([]byte, 0, 1024)
	st, buf, err := f.readStat(pid, buf)
	if err != nil {
		return nil, classify(pid, f.pidPath(pid, "stat"), err)
	}
	start, err := f.startTime(st.StartTime)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{
		PID: pid, PPID: st.PPID, Comm: st.Comm, State: string(st.State),
		Threads: st.Threads, StartTime: start, ZombieList: []Zombie{},
	}
	if st.State == 'Z' {
		_, s.Exit = describeExit(syscall.WaitStatus(st.ExitCode))
	}

	data, err := readRecord(f.pidPath(pid, "status"), buf)
	if err != nil {
		return nil, classify(pid, f.pidPath(pid, "status"), err)
	}
	status, err := parseStatus(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.pidPath(pid, "status"), err)
	}
	s.UID, s.User, s.NamespaceInit = status.UID, f.userName(status.UID), status.NSInit
	sc := status.sigchld()
	s.Sigchld, s.SigchldBlocked, s.SigchldPending = sc.Disposition, sc.Blocked, sc.Pending

	data, err = readRecord(f.pidPath(pid, "limits"), data)
	if err != nil {
		return nil, classify(pid, f.pidPath(pid, "limits"), err)
	}
	lim, err := parseLimits(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.pidPath(pid, "limits"), err)
	}
	s.FDSoftLimit, s.FDHardLimit = lim.NofileSoft, lim.NofileHard
	s.NprocSoftLimit, s.NprocHardLimit = lim.NprocSoft, lim.NprocHard

	p, err := f.fs.Proc(pid)
	if err != nil {
		return nil, classify(pid, f.pidPath(pid), err)
	}
	if s.Cmdline, err = p.CmdLine(); err != nil {
		return nil, classify(pid, f.pidPath(pid, "cmdline"), err)
	}

	if err := f.readZombies(s, st, opt, data); err != nil {
		return nil, err
	}
	if s.UID != 0 && !opt.NoUIDCount {
		n, err := f.uidTasks(s.UID)
		if err != nil {
			return nil, err
		}
		s.UIDProcesses = &n
	}

	var denied error
	if err := f.readFDs(s, p, opt); err != nil {
		var perm *PermissionError
		if !errors.As(err, &perm) {
			return nil, err
		}
		denied = err
		s.Denied = append(s.Denied, err.Error())
	}

	// The reads above took time: if the pid now names another process
	// (start time changed), everything read may mix two processes.
	again, _, err := f.readStat(pid, data)
	switch {
	case err != nil:
		return nil, classify(pid, f.pidPath(pid, "stat"), err)
	case again.StartTime != st.StartTime:
		return nil, fmt.Errorf("pid %d: %w", pid, ErrPIDReused)
	}
	return s, denied
}

// readZombies walks the tree below s: direct children and their counts,
// then every descendant, collecting zombies (a zombie has no children: the
// kernel reparents them when it exits).
func (f *FS) readZombies(s *Snapshot, target stat, opt Options, buf []byte) error {
	var ppids map[int][]int // built only without CONFIG_PROC_CHILDREN
	childrenOf := func(pid int) ([]int, error) {
		if ppids == nil {
			kids, b, err := f.childPIDs(pid, buf)
			buf = b
			if !errors.Is(err, errNoChildrenFile) {
				return kids, err
			}
			if ppids, err = f.ppidIndex(buf); err != nil {
				return nil, err
			}
		}
		return ppids[pid], nil
	}

	now := f.Now()
	queue := []int{s.PID}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		kids, err := childrenOf(parent)
		if err != nil {
			if parent != s.PID && isGone(err) {
				continue // a descendant exited while we walked
			}
			return classify(parent, f.pidPath(parent, "task"), err)
		}
		var parentStart uint64
		if parent == s.PID {
			parentStart = target.StartTime
		}
		s.ZombieList = slices.Grow(s.ZombieList, len(kids))
		stats, errs := f.readStatsCached(kids, opt.Cache)
		for i, kid := range kids {
			ks, err := stats[i], errs[i]
			if err != nil {
				if isGone(err) {
					continue // exited and reaped since the list was read
				}
				return err
			}
			if ks.PPID != parent {
				continue // reaped, and the pid reused by a stranger
			}
			if parent == s.PID {
				s.Children++
			}
			if ks.State != 'Z' {
				queue = append(queue, kid)
				continue
			}
			z, err := f.zombie(ks, now, opt)
			if err != nil {
				if isGone(err) {
					continue
				}
				return err
			}
			if parent == s.PID {
				s.Zombies++
				z.Adopted = ks.StartTime < parentStart
				if z.Adopted {
					s.AdoptedZombies++
				}
			}
			s.ZombieList = append(s.ZombieList, z)
		}
	}
	s.DescendantZombies = len(s.ZombieList)
	sortZombies(s.ZombieList)
	if c := opt.Cache; c != nil {
		c.readings++
		c.zombies = make(map[int]stat, len(s.ZombieList))
		for _, z := range s.ZombieList {
			c.zombies[z.PID] = z.raw
		}
	}
	return nil
}

// readStatsCached is readStats for the pids the cache has not seen as
// zombies (all of them on a full reading).
func (f *FS) readStatsCached(pids []int, c *ZombieCache) ([]stat, []error) {
	if c == nil || c.full() {
		return f.readStats(pids)
	}
	var todo []int
	for _, pid := range pids {
		if _, ok := c.zombies[pid]; !ok {
			todo = append(todo, pid)
		}
	}
	read, readErrs := f.readStats(todo)
	stats := make([]stat, len(pids))
	errs := make([]error, len(pids))
	j := 0
	for i, pid := range pids {
		if z, ok := c.zombies[pid]; ok {
			stats[i] = z
			continue
		}
		stats[i], errs[i] = read[j], readErrs[j]
		j++
	}
	return stats, errs
}

// readStats reads the stat of each pid, one reader per CPU: the reads are
// independent and almost all kernel time (measured on 2 cores with 5,000
// zombie children: 38 ms -> 29 ms for the whole reading).
func (f *FS) readStats(pids []int) ([]stat, []error) {
	stats := make([]stat, len(pids))
	errs := make([]error, len(pids))
	parallel(len(pids), func(lo, hi int) {
		buf := make([]byte, 0, 1024)
		comms := map[string]string{}
		for i := lo; i < hi; i++ {
			stats[i], buf, errs[i] = f.readStatInterned(pids[i], buf, comms)
		}
	})
	return stats, errs
}

func (f *FS) zombie(ks stat, now time.Time, opt Options) (Zombie, error) {
	start, err := f.startTime(ks.StartTime)
	if err != nil {
		return Zombie{}, err
	}
	ws := syscall.WaitStatus(ks.ExitCode)
	z := Zombie{
		PID: ks.PID, PPID: ks.PPID, Comm: ks.Comm, WaitStatus: ks.ExitCode,
		AgeSeconds: math.Round(now.Sub(start).Seconds()*100) / 100,
		start:      start, ticks: ks.StartTime, raw: ks,
	}
	z.ExitCode, z.Exit = describeExit(ws)
	if opt.ZombieOwners {
		fi, err := os.Stat(f.pidPath(ks.PID))
		if err != nil {
			return z, err
		}
		uid := int(fi.Sys().(*syscall.Stat_t).Uid)
		z.UID, z.User = &uid, f.userName(uid)
	}
	return z, nil
}

// exitWords are "exit 0" to "exit 255", made once rather than per zombie.
var exitWords = func() (w [256]string) {
	for i := range w {
		w[i] = "exit " + strconv.Itoa(i)
	}
	return w
}()

// describeExit turns a wait status into $?-style code and words.
func describeExit(ws syscall.WaitStatus) (int, string) {
	switch {
	case ws.Exited():
		return ws.ExitStatus(), exitWords[ws.ExitStatus()&0xff]
	case ws.Signaled():
		words := "killed by " + signalName(ws.Signal())
		if ws.CoreDump() {
			words += " (core dumped)"
		}
		return 128 + int(ws.Signal()), words
	default:
		return int(ws), fmt.Sprintf("status %#x", int(ws))
	}
}

// sortZombies orders zombies oldest first. The key (start, pid) is unique,
// so an unstable sort gives the one order, without a stable sort's moves.
func sortZombies(zs []Zombie) {
	slices.SortFunc(zs, func(a, b Zombie) int {
		return cmp.Or(cmp.Compare(a.ticks, b.ticks), a.PID-b.PID)
	})
}

// readFDs counts descriptors (O(1) on a real procfs on Linux >= 6.2, where
// stat of the fd directory gives the count) and, if asked, their kinds.
func (f *FS) readFDs(s *Snapshot, p procfsProc, opt Options) error {
	n, err := p.FileDescriptorsLen()
	if err != nil {
		return classify(s.PID, f.pidPath(s.PID, "fd"), err)
	}
	s.FDs = &n
	if !opt.FDTypes {
		return nil
	}
	s.FDTypes, s.TCPStates, err = f.FDKinds(s.PID)
	return err
}

// FDKinds counts pid's descriptors by kind, one readlink each, and its TCP
// sockets by state. Another user's process gives a *PermissionError.
func (f *FS) FDKinds(pid int) (kinds, tcpStates map[string]int, err error) {
	kinds, sockets, err := f.fdKinds(pid)
	if err != nil {
		return nil, nil, classify(pid, f.pidPath(pid, "fd"), err)
	}
	if tcpStates, err = f.tcpSocketStates(pid, sockets); err != nil {
		return nil, nil, classify(pid, f.pidPath(pid, "net", "tcp"), err)
	}
	return kinds, tcpStates, nil
}

// uidTasks counts the processes and threads whose real uid is uid, as
// RLIMIT_NPROC does. It reads every process's status: there is no cheaper
// per-user count in /proc.
func (f *FS) uidTasks(uid int) (int, error) {
	pids, err := f.pids()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 0, 2048)
	n := 0
	for _, pid := range pids {
		data, err := readRecord(f.pidPath(pid, "status"), buf)
		if err != nil {
			if isGone(err) {
				continue
			}
			return 0, err
		}
		buf = data
		st, err := parseStatus(data)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", f.pidPath(pid, "status"), err)
		}
		if st.UID == uid {
			n += max(st.Threads, 1)
		}
	}
	return n, nil
}

// userName looks a uid up once per process; an unknown uid prints as its
// number, as ps does.
func (f *FS) userName(uid int) string {
	if name, ok := f.users.Load(uid); ok {
		return name.(string)
	}
	name := f.LookupUser(uid)
	if name == "" {
		name = strconv.Itoa(uid)
	}
	f.users.Store(uid, name)
	return name
}

func lookupUser(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return ""
}
