package server

import (
	"runtime"
	"sync"
)

// reserveThreads makes the Go runtime start n OS threads now and keep them
// idle for later. Threads count against RLIMIT_NPROC like processes do: a
// server whose uid ran out of processes (zombies count) cannot create a
// thread either, and the runtime aborts when it needs one and cannot get
// it. With idle threads in reserve it reuses them instead, and the server
// keeps serving. A goroutine that unlocks its thread before exiting hands
// the thread back to the runtime's idle pool.
func reserveThreads(n int) {
	var locked, release sync.WaitGroup
	locked.Add(n)
	release.Add(1)
	for range n {
		go func() {
			runtime.LockOSThread()
			locked.Done()
			release.Wait()
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	release.Done()
}
