// Holder builds the benchmark scenario: a process holding N zombie children
// (forked from several threads) and M open descriptors, or N sleeping
// children as unrelated processes. It prints its pid, then the children's
// pids as a JSON line once they are all in place, and ends (reaping every
// child) when its stdin closes.
//
//	holder --zombies 5000 --fds 15000 < fifo &
//	holder --sleepers 5000 < fifo &
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/zombiewatch/zombiewatch/internal/scenario"
)

func main() {
	var (
		zombies, sleepers, fds, threads int
		nofile                          uint64
	)
	flag.IntVar(&zombies, "zombies", 0, "zombie children to hold")
	flag.IntVar(&sleepers, "sleepers", 0, "sleeping children to hold (unrelated load)")
	flag.IntVar(&fds, "fds", 0, "descriptors to hold open: 10 files, 10 pipes, 10 socket pairs, the rest duplicates of a socket and a pipe")
	flag.IntVar(&threads, "threads", 3, "threads to fork the children from")
	flag.Uint64Var(&nofile, "nofile", 0, "RLIMIT_NOFILE to set first (soft and hard); 0 keeps it")
	scenario.Child() // a child re-run of this binary ends inside
	flag.Parse()
	spec := scenario.Spec{Children: zombies + sleepers, Sleep: sleepers > 0, Threads: threads, NoFile: nofile}
	if fds > 0 {
		spec.Files, spec.Pipes, spec.SocketPairs = 10, 5, 5
		spec.Dups = max(fds-30, 0)
	}
	if zombies > 0 && sleepers > 0 {
		fmt.Fprintln(os.Stderr, "holder: --zombies or --sleepers, not both")
		os.Exit(2)
	}
	fmt.Println(os.Getpid())
	os.Exit(scenario.Hold(spec))
}
