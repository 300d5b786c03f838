/*
Server is zombiewatch's bundled forking HTTP server: one child process per
connection, a Go port of the concurrent server in "Let's Build A Web Server,
Part 3". Its reaper and whether the parent closes its copy of each
connection can be switched while it runs, with zombiewatch ctl, so zombies
and leaked descriptors can be watched as they appear and vanish.

Usage:

	server [flags]

Flags:

	--addr ADDR            listen address (default 127.0.0.1:8888; port 0 picks a free one)
	--reaper MODE          how finished children are collected (default loop):
	                         off     nobody waits: each finished child stays a zombie (webserver3d)
	                         wait    one wait per SIGCHLD: bursts leave zombies, signals coalesce (3e/3f)
	                         loop    waitpid(-1, WNOHANG) until none is left (3g)
	                         ignore  SIGCHLD set to SIG_IGN: the kernel reaps
	--close-conn BOOL      the parent closes its copy of each connection (default true);
	                       false keeps them: sockets pile up in CLOSE_WAIT (webserver3d)
	--hold DURATION        how long each child stays after answering (default 0)
	--read-timeout DUR     a client that sends no request is cut off after this (default 5s)
	--max-header-bytes N   larger request headers get 431 (default 8192)
	--grace DURATION       on SIGTERM or SIGINT, how long to wait for children (default 5s)
	--nofile N             set RLIMIT_NOFILE to N, as ulimit -n would (Go ignores the
	                       shell's soft limit); 0 keeps it
	--nproc N              set RLIMIT_NPROC to N, as ulimit -u would (not enforced for root)
	--max-children N       children not yet reaped, at most (default 256; 0: no bound);
	                       past it a connection is answered 503 at once and the server
	                       keeps serving. Each child is a Go process of ~6 MiB: 256 keep
	                       a burst of idle clients to ~1.5 GiB. With the reaper off,
	                       zombies count: the process table filling is the lesson
	--pids-max N           run in a pids cgroup of its own with pids.max N (made under
	                       --cgroup-root, default /sys/fs/cgroup; v1 pids, or v2 with pids
	                       in the root's subtree_control), removed at exit: with the
	                       reaper off, zombies fill it and forks fail with EAGAIN, as
	                       root too (where ulimit -u does not bind)
	--version              print the version
	--log-level LEVEL      debug (one line per reaped child), info, warn (default info)

Switch it live:

	zombiewatch ctl --pid PID reaper=off close-conn=off

The control channel is a local abstract Unix socket; only the server's own
uid or root may use it. On SIGTERM or SIGINT the server stops accepting,
waits up to --grace for its children, kills the rest and reaps every one:
it leaves no zombie and no orphan. At shutdown under --reaper ignore it
first sets SIGCHLD back to its default, so every child it then signals is
still its own (a child that exits stays a zombie until reaped; its pid
cannot have passed to a stranger). A child whose Go runtime cannot start
(near RLIMIT_NPROC) exits 2 with a dump on its stderr; children's stderr is
/dev/null, and the parent logs each such failure in one line (at most one a
second, with a count) and counts it in child_failures (a child may also fail so after it answered).

Exit codes: 0 stopped cleanly; 1 runtime error (address in use); 2 usage error.
*/

package server
