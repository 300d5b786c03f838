// Leaker is the program the origin tests trace, built as users build
// theirs (go build, with and without -ldflags=-s -w). On a line on stdin
// it leaks TCP connections from one function, leaks files from another,
// closes some of those and reuses their numbers from a third, opens and
// closes files from a fourth (no leak), forks children it waits for from
// one site and children it never waits for from another; then it says
// "done". Each further line leaks that many connections more from the
// same line ("done" again); when stdin ends it reaps its children and
// exits.
//
//	leaker DIR LEAKED REOPENED FORKED
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	children, err := leak(ln.Addr().String(), dir, leaked, reopened, forked)
	if err != nil {
		fail(err)
	}
	fmt.Println("done")
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			break
		}
		n, _ := strconv.Atoi(strings.TrimSpace(line))
		if err := leakConns(ln.Addr().String(), n); err != nil {
			fail(err)
		}
		fmt.Println("done")
	}
	for _, c := range children {
		c.Wait()
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "leaker:", err)
	os.Exit(2)
}

func leak(addr, dir string, leaked, reopened, forked int) ([]*os.Process, error) {
	if err := leakConns(addr, leaked); err != nil {
		return nil, err
	}
	files, err := leakFiles(dir, leaked)
	if err != nil {
		return nil, err
	}
	if err := reopen(dir, files[:reopened]); err != nil {
		return nil, err
	}
	if err := openAndClose(dir, leaked); err != nil {
		return nil, err
	}
	if err := forkAndReap(forked); err != nil {
		return nil, err
	}
	return forkZombies(forked)
}

//go:noinline
func leakConns(addr string, n int) error {
	for range n {
		if _, err := net.Dial("tcp", addr); err != nil { // the connection leak
			return err
		}
	}
	return nil
}

//go:noinline
func leakFiles(dir string, n int) ([]*os.File, error) {
	var files []*os.File
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("leak%d", i))) // the file leak
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

// openAndClose leaks nothing: no origin may name it.
//
//go:noinline
func openAndClose(dir string, n int) error {
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("tmp%d", i)))
		if err != nil {
			return err
		}
		f.Close()
	}
	return nil
}

// forkAndReap waits for every child it forks: no zombie may be its.
//
//go:noinline
func forkAndReap(n int) error {
	for range n {
		p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
		if err != nil {
			return err
		}
		if _, err := p.Wait(); err != nil {
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
