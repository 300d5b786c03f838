// Server is zombiewatch's bundled forking HTTP server: one child process per
// connection, its reaper and connection closing switchable while it runs
// (zombiewatch ctl). Its manual is internal/server/manual.txt, printed by
// server -h; zombiewatch server runs the same server.
package main
