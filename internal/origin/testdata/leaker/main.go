// Leaker is the program the origin tests trace, built as users build
// theirs (go build, with and without -ldflags=-s -w): on a line on stdin
// it leaks files from one function, reuses descriptor numbers from
// another and forks children it does not wait for from a third, says
// "done", and when stdin ends reaps them and exits.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

func main() {
	dir := os.Args[1]
	leaked, _ := strconv.Atoi(os.Args[2])
	reopened, _ := strconv.Atoi(os.Args[3])
	forked, _ := strconv.Atoi(os.Args[4])
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		os.Exit(2)
	}
	files, err := leakFiles(dir, leaked)
	if err == nil {
		err = reopen(dir, files[:reopened])
	}
	var children []*os.Process
	if err == nil {
		children, err = forkZombies(forked)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaker:", err)
		os.Exit(2)
	}
	fmt.Println("done")
	in.ReadString('\n')
	for _, c := range children {
		c.Wait()
	}
}

//go:noinline
func leakFiles(dir string, n int) ([]*os.File, error) {
	var files []*os.File
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("leak%d", i))) // the leak
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// reopen closes files and opens as many others: the kernel gives the
// lowest free numbers, so the same numbers now belong to another opener.
//
//go:noinline
func reopen(dir string, files []*os.File) error {
	for _, f := range files {
		f.Close()
	}
	for i := range files {
		if _, err := os.Create(filepath.Join(dir, fmt.Sprintf("again%d", i))); err != nil { // the reuse
			return err
		}
	}
	return nil
}

//go:noinline
func forkZombies(n int) ([]*os.Process, error) {
	var out []*os.Process
	for range n {
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{}) // the fork
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}
