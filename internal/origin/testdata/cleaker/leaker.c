/* The C program the origin tests trace, built with frame pointers
 * (gcc -O0 -fno-omit-frame-pointer). On a line on stdin it leaks N files
 * from leak_raw, through its own system call, and N from leak_libc,
 * through the C library's open(), and forks 3 children from fork_zombies
 * that it never waits for; says "done"; exits when stdin ends.
 *
 * The kernel walks a user stack by frame pointers. Through leak_raw every
 * frame has one: the stack is whole. Through open() the C library's
 * function has none where the library is built without them (as Debian's
 * is): the tracer unwinds it by the library's CFI. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

__attribute__((noinline)) static long raw_open(const char *path) {
	long ret;
	register long r10 __asm__("r10") = 0;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(SYS_openat), "D"(AT_FDCWD), "S"(path), "d"(O_RDONLY), "r"(r10)
			 : "rcx", "r11", "memory");
	return ret;
}

__attribute__((noinline)) int leak_raw(const char *path, int n) {
	for (int i = 0; i < n; i++)
		if (raw_open(path) < 0) /* the raw leak */
			return -1;
	return 0;
}

__attribute__((noinline)) int leak_libc(const char *path, int n) {
	for (int i = 0; i < n; i++)
		if (open(path, O_RDONLY) < 0) /* the libc leak */
			return -1;
	return 0;
}

__attribute__((noinline)) int fork_zombies(int n) {
	for (int i = 0; i < n; i++) {
		pid_t pid = fork(); /* the unreaped children */
		if (pid < 0)
			return -1;
		if (pid == 0)
			_exit(0);
	}
	return 0;
}

int main(int argc, char **argv) {
	char line[16];
	int n = argc > 2 ? atoi(argv[2]) : 10;
	if (argc < 2 || !fgets(line, sizeof line, stdin))
		return 2;
	if (leak_raw(argv[1], n) < 0 || leak_libc(argv[1], n) < 0 || fork_zombies(3) < 0)
		return 2;
	puts("done");
	fflush(stdout);
	while (fgets(line, sizeof line, stdin))
		;
	return 0;
}
