/*
Client is the load client for zombiewatch's bundled server: client3 of
Ruslan Spivak's "Let's Build A Web Server, Part 3", without the bug that made each client open one connection only.

Usage:

	client [flags]

Flags:

	--addr ADDR         server address (default 127.0.0.1:8888)
	--max-clients N     concurrent clients (default 1)
	--max-conns M       connections each client opens, one after another, with a
	                    GET on each (default 1024)
	--timeout DURATION  per connection: connect, request and response (default 5s)
	--keep-open         keep every connection open until the run ends, so the
	                    server's descriptors stay in use (as client3 meant to)
	--json              print the result as one JSON object

It prints the connections made, answered (by status), refused and failed,
the rate, and latency percentiles; on runs longer than a second, progress
on stderr. To repeat Part 3's experiments:

	server --reaper off --close-conn=false --nofile 256 &
	client --max-clients 300 --max-conns 1

Exit codes: 0 every connection got 200; 1 some did not, or a runtime error;
2 usage error.
*/
package main
