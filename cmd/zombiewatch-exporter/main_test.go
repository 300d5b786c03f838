package main

import (
	"testing"

	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func TestMain(m *testing.M) { zombietest.Main(m) }
