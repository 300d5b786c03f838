// Floor answers "how many zombie children and open fds does pid P have"
// with the fewest syscalls there are: read every thread's children file,
// read each child's stat once, stat the fd directory. Its run time is the
// floor a zombiewatch reading is measured against.
//
//	floor PID
package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: floor PID")
		os.Exit(2)
	}
	dir := "/proc/" + os.Args[1]
	tasks, err := os.ReadDir(dir + "/task")
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	buf := make([]byte, 1<<16)
	zombies := 0
	for _, task := range tasks {
		kids, _ := os.ReadFile(dir + "/task/" + task.Name() + "/children")
		for kid := range bytes.FieldsSeq(kids) {
			fd, err := unix.Open("/proc/"+string(kid)+"/stat", unix.O_RDONLY, 0)
			if err != nil {
				continue
			}
			n, _ := unix.Read(fd, buf)
			unix.Close(fd)
			if i := bytes.LastIndexByte(buf[:n], ')'); i > 0 && i+2 < n && buf[i+2] == 'Z' {
				zombies++
			}
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(dir+"/fd", &st); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	fmt.Println("zombies " + strconv.Itoa(zombies) + " fds " + strconv.FormatInt(st.Size, 10))
}
