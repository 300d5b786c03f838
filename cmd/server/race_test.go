//go:build race

package main

// raceEnabled: this test binary, and so every server child it runs, carries
// the race detector's runtime and its threads.
const raceEnabled = true
