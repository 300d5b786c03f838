#!/usr/bin/env bash
# Builds the image offline and runs it as deploy/kubernetes/daemonset.yaml
# does (host pid and network namespaces, the host's /proc and cgroupfs
# read-only, the manifest's user and capabilities), then scrapes it: it
# must see a zombie parent started on this host and a pids cgroup's
# pids.max. Needs root and podman (Debian: apt-get install podman runc).
set -euo pipefail
cd "$(dirname "$0")/.."
exec go test -count=1 -run '^TestImageAsDaemonSet$' -v .
