package main

import (
	"io"

	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/completion"
	"github.com/zombiewatch/zombiewatch/internal/flags"
	"github.com/zombiewatch/zombiewatch/internal/manpage"
)

// subcommands are the words zombiewatch takes first.
var subcommands = []string{"completion", "ctl", "demo", "man", "serve", "server"}

// runCompletion prints the completion script for a shell, made from the
// flag table and the manual.
func runCompletion(args []string, stdout io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
		_, err := io.WriteString(stdout, cli.Section(manual(), "completion"))
		return err
	}
	if len(args) != 1 {
		return cli.Usagef("completion: name one shell: bash, zsh or fish")
	}
	err := completion.Write(stdout, args[0], completion.Command{
		Name: "zombiewatch", Flags: flags.Flags(), Manual: cli.Head(manual()), Subcommands: subcommands})
	if err != nil {
		return cli.Usagef("completion: %v", err)
	}
	return nil
}

// runMan prints the manual as a man page (zombiewatch man | man -l -).
func runMan(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return cli.Usagef("man: takes no arguments")
	}
	_, err := io.WriteString(stdout, manpage.Write("zombiewatch", cli.Version(), manual()))
	return err
}
