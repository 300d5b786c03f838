// Server is zombiewatch's bundled forking HTTP server: one child process per
// connection, its reaper and connection closing switchable while it runs
// (zombiewatch ctl). Its manual is the comment in internal/server/doc.go, printed by
// server -h (internal/server/doc.go); zombiewatch server runs the same server.
package main
