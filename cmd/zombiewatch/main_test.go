package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func TestMain(m *testing.M) {
	// ZW_TEST_MAIN makes this binary zombiewatch itself: how tests run
	// "zombiewatch server" (whose children re-run it) and the tmux watcher.
	if os.Getenv("ZW_TEST_MAIN") != "" {
		os.Exit(zombiewatch())
	}
	testscript.Main(zombietest.Wrap(m), map[string]func(){
		"zombiewatch": func() { os.Exit(zombiewatch()) },
	})
}

// TestScripts runs the CLI cases in testdata/script: usage, exit codes,
// stderr and stdout, on the fixture trees ($FIXTURES/NAME).
func TestScripts(t *testing.T) {
	fixtures, err := filepath.Abs(filepath.Join("..", "..", "testdata", "proc"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: filepath.Join("testdata", "script"),
		Setup: func(env *testscript.Env) error {
			env.Setenv("FIXTURES", fixtures)
			env.Setenv("TZ", "UTC")
			// The directory testscript put zombiewatch in, first in $PATH:
			// scripts set PATH=$CMDS to hide every other program.
			env.Setenv("CMDS", filepath.SplitList(env.Getenv("PATH"))[0])
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": exitcodeCmd,
		},
	})
}

// exitcodeCmd: "exitcode N prog args..." runs prog and fails unless it
// exits with N; its stdout and stderr are kept for the next checks.
func exitcodeCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N prog [args...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exitcode: %v", err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		got = exitErr.ExitCode()
	case err != nil:
		ts.Fatalf("exitcode: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}
