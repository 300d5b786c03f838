#!/usr/bin/env bash
# The scaling table: zombiewatch --pid's cost against zombies, against fds,
# and against unrelated processes, beside the floor, ps auxw and lsof -p,
# each row one bench/run.sh (medians of $ROUNDS interleaved runs).
# Takes several minutes: 25,000 zombies are forked, lsof reads 1,000,000 fds.
# The zombie rows need /proc/sys/kernel/pid_max above their count (32,768 by
# default): as root the script raises it for the run and restores it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
groups=${*:-zombies fds others}   # bench/scale.sh fds: one group only

row() { # row LABEL ZOMBIES FDS OTHERS
  local out
  out=$(ZOMBIES=$2 FDS=$3 OTHERS=$4 ROUNDS=$ROUNDS ROWS=short bench/run.sh)
  median() { awk -F'|' -v name="$1" '$2 ~ name { gsub(/ ms| /, "", $3); print $3 }' <<<"$out"; }
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(median '`floor`')" \
    "$(median 'fd-types=false')" "$(median 'fd kinds')" "$(median '`ps auxw`')" "$(median '`lsof')"
}

echo "$(date -u +%Y-%m-%d), $(nproc) cores, Linux $(uname -r), pid_max $(cat /proc/sys/kernel/pid_max); medians in ms of $ROUNDS runs"
echo
echo "| scenario | floor | zombiewatch --pid --json --fd-types=false | zombiewatch --pid --json (kinds) | ps auxw | lsof -p |"
echo "|---|---:|---:|---:|---:|---:|"
if [[ $groups == *zombies* ]]; then
  # Every zombie holds a pid. Where pid_max is too low and may be written
  # (root), raise it for the run and put it back after.
  pid_max=$(cat /proc/sys/kernel/pid_max)
  for z in ${ZOMBIE_ROWS:-100 1000 10000 25000 50000}; do
    need=$(( z + $(ps -e --no-headers | wc -l) + 2000 ))
    if ((need > $(cat /proc/sys/kernel/pid_max))) && echo "$need" 2>/dev/null > /proc/sys/kernel/pid_max; then
      trap 'echo "$pid_max" > /proc/sys/kernel/pid_max' EXIT
    fi
    max=$(( $(cat /proc/sys/kernel/pid_max) - $(ps -e --no-headers | wc -l) - 1000 ))
    if ((z > max)); then echo "| $z zombies | skipped: pid_max leaves room for $max, and it cannot be raised here | | | | |"; continue; fi
    row "$z zombies, 100 fds" "$z" 100 0
  done
fi
if [[ $groups == *fds* ]]; then
  # Beyond the hard RLIMIT_NOFILE only CAP_SYS_RESOURCE may go (up to fs.nr_open).
  hard=$(ulimit -Hn)
  for f in 10000 100000 1000000; do
    if ((f + 1024 > hard)) && ! capsh --has-p=cap_sys_resource 2>/dev/null; then
      echo "| 100 zombies, $f fds | skipped: above the hard fd limit $hard, and no CAP_SYS_RESOURCE to raise it | | | | |"; continue
    fi
    row "100 zombies, $f fds" 100 "$f" 0
  done
fi
if [[ $groups == *others* ]]; then
  for o in 100 10000; do row "1,000 zombies, 1,000 fds, $o other processes" 1000 1000 "$o"; done
fi
