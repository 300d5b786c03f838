package main

import (
	"os"
	"testing"

	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func TestMain(m *testing.M) {
	// ZW_TEST_MAIN makes this binary the exporter itself, for tests that
	// run it under another identity.
	if os.Getenv("ZW_TEST_MAIN") != "" {
		os.Exit(exporterMain())
	}
	zombietest.Main(m)
}
