/*
Zombiewatch tells why a Linux process holds zombie children and how close it
is to running out of file descriptors or processes, from /proc alone.

Usage:

	zombiewatch demo [--phase N] [--requests N] [--burst N] [--out F] [--plot F]
	zombiewatch [--top K] [--json]
	zombiewatch --pid N [--json | --zombies] [flags]
	zombiewatch --name RE [--full] | --user U  [--json | --zombies] [flags]
	zombiewatch --pid N --watch [--interval 1s] [--count K] [--json]
	zombiewatch --pid N --origin [--for 10s] [--json]
	zombiewatch --pid N --watch --origin [--json]
	zombiewatch --watch [--interval 1s] [--count K] [--origin] [--json]
	zombiewatch ctl --pid N [reaper=off|wait|loop|ignore] [close-conn=on|off] [hold=D]
	zombiewatch serve [--listen 127.0.0.1:9857] [--pid N]... [--name RE]... | --textfile DIR
	zombiewatch server [flags]
	zombiewatch completion bash|zsh|fish
	zombiewatch man

With no --pid, zombiewatch scans every process once and lists the parents
holding zombies (most first, each with its diagnosis), the processes nearest
their RLIMIT_NOFILE (with kinds and TCP states for those listed), and the
tasks of each uid against RLIMIT_NPROC; --top K bounds each list (default 10).

With --watch and no --pid, it samples the whole host every --interval and
ranks the processes whose zombies, fds or tasks grow, most urgent first
(soonest to the limit their growth meets), with the rates per minute over
the last 60 samples and when the growth began, and the containers (cgroups
with a pids.max or holding zombies) whose pids or zombies grow; for the
first processes whose fds grow it names the groups of descriptors that grew
("+40 TCP CLOSE_WAIT to 10.1.2.3:5432"). A top-like screen on a terminal
(keys u z f g l sort, j k select, o opens the selected process's own watch,
q quits), one line per sample piped, one JSON object per sample with
--json. Counts that stand still are read less often, at most 8s apart.

With --pid, zombiewatch reads the process once and prints: its zombie (Z)
children and the zombies below it, how long ago each exited (from the
scheduler's clock, /proc/PID/sched), whether the parent reaps them and, if
not, why and what would fix it; its open descriptors by kind; and each
limit it is close to (RLIMIT_NOFILE, and RLIMIT_NPROC, which zombies count
against). Whether a parent reaps is judged from time only: zombies dead
for 2s or more that stay, or zombies reaped while observed (see --observe);
its SIGCHLD handling says how, never whether.

With --origin, zombiewatch traces the process in the kernel for --for
(BPF; root, or CAP_BPF and CAP_PERFMON), then names the code behind what it
holds: its open descriptors grouped by the user call stack that opened
them and by kind, state and peer, largest first, with how fast each grew;
and its zombie children by the stack that forked them, with their exit
ages. Go binaries resolve to function, file and line (calls the compiler
inlined as frames of their own where the binary has debug info); other
ELF binaries to function+offset from their symbol table or an installed
debug file; anything else to file+offset. What was opened or forked before
tracing began is counted as such, never guessed.

Flags:

	--pid N            the process to read (repeatable: several are read in turn,
	                   and --json prints a JSON array)
	--name RE          the processes whose name (comm) matches RE, as pgrep does;
	                   with --full, whose command line matches (pgrep -f)
	--user U           the processes of user U (a name or a uid), as pgrep -u
	--min-age D        count only zombies that exited at least D ago (1s, 500ms)
	--observe D        when the zombies exited too recently to tell whether they
	                   are reaped, follow them for up to D (default 2s; 0: off)
	                   and judge from what happened: reaped (a late reaper, with
	                   its delay), still there, or too young to tell
	--top K            with no --pid: entries in each list (default 10; 0 for all)
	--json             print one JSON object (keys in docs/usage.md)
	--zombies          list the zombies the way ps auxw shows them
	--fds              list every descriptor as lsof -p does (kind, protocol, TCP
	                   state, local and remote address, target, deleted files),
	                   then grouped by what they point at (--json: fd_list, fd_groups)
	--fd-types         count descriptors by kind, one readlink each (default true;
	                   --fd-types=false keeps the count O(1): it then counts
	                   allocated slots, which include one per thread blocked in
	                   accept, as EMFILE does; ls and lsof do not list those)
	--max-zombies N    exit 3 if the process holds more than N zombie children
	--max-fd-ratio R   exit 3 if open fds exceed R times the soft limit (0 < R <= 1)
	--strict           with no --pid: exit 1 when any read was refused, detail too
	                   (by default a host reading whose counts were all read exits 0
	                   and names the refused detail on stderr and in "denied")
	--proc-root DIR    read another /proc: a container's, or a copied tree (default /proc)
	--cgroup-root DIR  read another cgroupfs for pids.max and pod/container names
	                   (default /sys/fs/cgroup; with another --proc-root, only if given)
	--watch            sample again every --interval (default 1s) until the process
	                   ends, Ctrl-C, or --count samples: on a terminal it redraws in
	                   place with a chart (keys r, c and q switch a bundled server's
	                   reaper and close-conn, and quit); piped, one line per sample;
	                   with --json, one JSON object per line
	--origin           trace who opens descriptors and forks children, then report
	                   the stacks behind what is open and the zombies (one --pid;
	                   Ctrl-C ends the trace early and reports it); with --watch,
	                   name the code behind each fd group that grows (host-wide:
	                   of the first fd growers, traced from when first listed)
	--for D            how long --origin traces (default 10s)
	--version          print the version

Subcommands:

	demo    start the bundled server and walk through the lessons of a forking
	        server live: zombies with the reaper off, coalesced signals, the
	        waitpid loop, leaked connections; a table and a chart at the end
	        (zombiewatch demo -h)
	ctl     show or switch the reaper, connection closing and hold of a running
	        bundled server: zombiewatch ctl -h
	serve   serve Prometheus metrics of the host scan, or write them for
	        node_exporter's textfile collector: runs zombiewatch-exporter
	        (installed beside zombiewatch, or in $PATH) with the same flags
	server  run the bundled forking HTTP server (the same as cmd/server):
	        zombiewatch server -h
	completion bash|zsh|fish
	        print a shell completion script: zombiewatch completion -h
	man     print this manual as a man page: zombiewatch man | man -l -

Environment: NO_COLOR (set and not empty) keeps colour off the screens.

Exit codes: 0 done (host-wide: every count read, refused detail named on
stderr); 1 runtime error (no such process; a --pid read refused; host-wide,
a count refused, or any refusal with --strict); 2 usage error; 3 a
--max-zombies or --max-fd-ratio threshold was exceeded; 130 Ctrl-C.

Anyone may read a process's fd count; the kinds of another user's descriptors
only that user, root, or a holder of CAP_SYS_PTRACE, and a process holding
capabilities the reader lacks only a holder of CAP_SYS_PTRACE. zombiewatch
names a read it was refused, and why (the uid, the capabilities, the user
namespace, dumpability of both processes compared), rather than print a zero.

# completion

Usage: zombiewatch completion bash|zsh|fish

Prints a completion script for the shell, made from the flag table (each
flag's help from this manual; pids, users and directories completed where
a flag takes them). Load it for the current shell, or install it:

	source <(zombiewatch completion bash)
	zombiewatch completion bash > /etc/bash_completion.d/zombiewatch
	zombiewatch completion zsh > "${fpath[1]}/_zombiewatch"
	zombiewatch completion fish > ~/.config/fish/completions/zombiewatch.fish

# ctl

Usage: zombiewatch ctl --pid PID [reaper=off|wait|loop|ignore] [close-conn=on|off] [hold=DURATION] [--json]

Shows, or switches, the reaper and the connection closing of a running
bundled server (cmd/server) and prints its settings after the change.
Only the server's own uid or root may switch it.

	reaper=off      nobody waits: each finished child stays a zombie
	reaper=wait     one wait per SIGCHLD: bursts leave zombies (signals coalesce)
	reaper=loop     waitpid(-1, WNOHANG) until none is left: no zombies
	reaper=ignore   SIGCHLD ignored: the kernel reaps
	close-conn=off  the parent keeps its copy of each connection (fds leak)
	close-conn=on   the parent closes its copy (and the copies kept so far)
	hold=300ms      each new child stays this long after answering

# demo

Usage: zombiewatch demo [--phase N] [--requests N] [--burst N] [--out FILE] [--plot FILE]

Starts the bundled server on a free loopback port as a child of this
process, drives load at it and walks through the lessons of a forking
server, switching the server live and measuring each step:

 1. reaper off: every finished child stays a zombie (cross-checked with ps)
 2. reaper wait: children that exit together leave zombies, signals coalesce
 3. reaper loop: back to 0 zombies, and a burst leaves none
 4. close-conn off: the parent's fds grow by one socket per request (CLOSE_WAIT)
 5. close-conn on: the copies are closed and the fds stay flat

It ends with a table of the phases and a chart, and stops the server and
every child it started, also on Ctrl-C.

	--phase N       run lesson N (1-7) alone
	--requests N    requests in phases 1, 4 and 5 (default 30)
	--burst N       simultaneous connections in phases 2 and 3 (default 100)
	--out FILE      write the run as JSON lines: each sample, then each phase
	--plot FILE     write the run as an SVG picture
*/
package main
