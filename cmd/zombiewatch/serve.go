package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// exporterName is the Prometheus exporter's binary. It is separate so that
// this command does not link client_golang, whose package initialisation
// cost 0.9 ms of every run (README, "Performance").
const exporterName = "zombiewatch-exporter"

// runServe replaces this process with zombiewatch-exporter and its flags,
// found beside this binary or else in $PATH, the way git runs git-*
// commands. It returns only when the exporter cannot be run.
func runServe(args []string) error {
	path, err := findExporter()
	if err != nil {
		return err
	}
	err = syscall.Exec(path, append([]string{path}, args...), os.Environ())
	return fmt.Errorf("serve: run %s: %w", path, err)
}

func findExporter() (string, error) {
	self, err := os.Executable()
	if err == nil {
		beside := filepath.Join(filepath.Dir(self), exporterName)
		if _, err := os.Stat(beside); err == nil {
			return beside, nil
		}
	}
	if path, err := exec.LookPath(exporterName); err == nil {
		return filepath.Abs(path)
	}
	return "", errors.New("serve: " + exporterName + " is neither beside this binary nor in $PATH: " +
		"in a checkout, install it beside zombiewatch (go install ./cmd/zombiewatch ./cmd/" + exporterName + ") " +
		"or run it directly (go run ./cmd/" + exporterName + ")")
}
