#!/usr/bin/env bash
# Times zombiewatch beside ps, lsof, lsfd and the floor on a prepared host:
# a parent holding $ZOMBIES zombie children and $FDS open fds, among
# $OTHERS unrelated processes. Every command runs whole (process start
# included), interleaved, $ROUNDS times; the table gives medians and
# ratios. Needs root (to raise the fd limit), ps, lsof and lsfd.
#
#   bench/run.sh                          # 5,000 zombies, 15,000 fds, 5,000 others
#   ZOMBIES=100 FDS=100 OTHERS=10000 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ZOMBIES=${ZOMBIES:-5000} FDS=${FDS:-15000} OTHERS=${OTHERS:-5000} ROUNDS=${ROUNDS:-9}
ROWS=${ROWS:-all}   # "all", or "short" for the scaling script

bin=$(mktemp -d)
holders=()
cleanup() {
  exec 3>&- 4>&- 2>/dev/null || true   # closing their stdin ends the holders, which reap
  for p in "${holders[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$bin"
}
trap cleanup EXIT

for cmd in zombiewatch holder floor compare; do
  src=./bench/$cmd; [[ $cmd == zombiewatch ]] && src=./cmd/zombiewatch
  go build -o "$bin/$cmd" "$src"
done

# hold FD ARGS: start a holder whose stdin is a fifo that only this script
# writes to (on FD): closing FD ends it. The holder must not inherit the
# fifo's write end, or it would never see the end of its input. Sets HELD.
hold() {
  local fd=$1; shift
  mkfifo "$bin/fifo$fd"
  eval "exec $fd<>\"$bin/fifo$fd\""
  "$bin/holder" "$@" < "$bin/fifo$fd" > "$bin/out$fd" 3>&- 4>&- &
  holders+=($!)
  for _ in $(seq 600); do
    if [[ $(wc -l < "$bin/out$fd") -ge 2 ]]; then HELD=$(head -1 "$bin/out$fd"); return; fi
    sleep 0.2
  done
  echo "bench: holder $* did not get ready" >&2; exit 1
}

hold 3 --zombies "$ZOMBIES" --fds "$FDS" --nofile $((FDS + 1024))
P=$HELD
if [[ $OTHERS -gt 0 ]]; then hold 4 --sleepers "$OTHERS"; fi
echo "$(date -u +%Y-%m-%d), $(nproc) cores, Linux $(uname -r), $(ps -e --no-headers | wc -l) processes;" \
     "pid $P holds $(ps -o stat= --ppid "$P" | grep -c Z) zombies and $(ls /proc/$P/fd | wc -l) fds"
echo

rows=(
  "floor::$bin/floor $P"
  "ps auxw::ps auxw | grep -c ' Z'"
  "zombiewatch --pid P --json --fd-types=false::$bin/zombiewatch --pid $P --json --fd-types=false"
  "zombiewatch --pid P --json (fd kinds)::$bin/zombiewatch --pid $P --json"
  "lsof -p P::lsof -n -P -p $P"
)
if [[ $ROWS == all ]]; then
  rows+=(
    "ps -o stat= --ppid P::ps -o stat= --ppid $P"
    "ls /proc/P/fd | wc -l::ls /proc/$P/fd | wc -l"
    "lsfd -p P::lsfd -p $P"
    "zombiewatch (host-wide)::$bin/zombiewatch --fd-types=false"
    # Exit 1 where a read is refused (PID 1's fd links here): the reading
    # is printed whole all the same.
    "zombiewatch (host-wide, fd kinds of the top 10)::$bin/zombiewatch || test \$? -eq 1"
  )
fi
"$bin/compare" -rounds "$ROUNDS" "${rows[@]}"
