/*
Usage: zombiewatch-exporter [--listen ADDR] [--pid N]... [--name REGEX]... [--top K]
       zombiewatch-exporter --textfile DIR [--interval 15s | --once]

(zombiewatch serve runs this binary with the same flags.)

Serves Prometheus metrics on http://ADDR/metrics, one scan of /proc per
scrape (kept from scrape to scrape: a process's fds and threads are read
again when at least 8s have passed, its name, uid and limits every
minute): zombiewatch_zombie_children{pid,comm} for each parent holding
zombies, zombiewatch_open_fds, zombiewatch_fd_soft_limit,
zombiewatch_fds_by_kind and zombiewatch_close_wait_sockets for the --top
processes nearest their fd limit and those named by --pid and --name,
zombiewatch_uid_tasks against zombiewatch_uid_nproc_soft_limit, host totals,
and zombiewatch_scrape_duration_seconds and zombiewatch_scrape_errors_total.

  --listen ADDR       where to serve (default 127.0.0.1:9857, loopback only;
                      --listen :9857 serves on every interface)
  --pid N             a process to export whatever its rank (repeatable)
  --name REGEX        processes whose comm matches, likewise (repeatable)
  --top K             processes nearest their fd limit to export (default 10)
  --max-parents N     parents holding zombies to export, most first (default 100)
  --max-uids N        uids to export, nearest their RLIMIT_NPROC first (default 20)
  --textfile DIR      write DIR/zombiewatch.prom for node_exporter's textfile
                      collector every --interval (default 15s), or --once
  --proc-root DIR     read another /proc

Run it as root or with CAP_SYS_PTRACE to read every process's fd kinds;
refused reads count in zombiewatch_scrape_errors_total{kind="permission"}.
*/

package main
