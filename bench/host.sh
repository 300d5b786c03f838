#!/usr/bin/env bash
# Measures the host-wide costs side by side in one run, beside $OTHERS
# unrelated sleeping processes:
#   1. one host reading, whole process: zombiewatch --json against ps auxw;
#   2. CPU per scrape: zombiewatch-exporter against node_exporter's
#      processes collector (Debian's prometheus-node-exporter with
#      --collector.disable-defaults --collector.processes), $SCRAPES
#      scrapes $GAP s apart (as Prometheus scrapes: not back to back);
#   3. the host-wide watch at 1 Hz: CPU over $WATCH s after a 10 s warm-up,
#      and its peak RSS.
# Needs root (for the sleepers' count), ps, curl, prometheus-node-exporter.
#
#   bench/host.sh                    # 5,000 others, 5 scrapes 10 s apart, 60 s of watch
#   OTHERS=10000 SCRAPES=3 bench/host.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OTHERS=${OTHERS:-5000} ROUNDS=${ROUNDS:-9} SCRAPES=${SCRAPES:-5} GAP=${GAP:-10} WATCH=${WATCH:-60}
NE=${NE:-prometheus-node-exporter}
command -v "$NE" >/dev/null || { echo "bench: $NE not installed (apt-get install prometheus-node-exporter)" >&2; exit 1; }

bin=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  exec 3>&- 2>/dev/null || true # closing the holder's stdin ends it, and it reaps
  wait 2>/dev/null || true
  rm -rf "$bin"
}
# The holder is not in pids: it ends when its stdin does.
trap cleanup EXIT

for cmd in holder compare; do go build -o "$bin/$cmd" "./bench/$cmd"; done
go build -o "$bin/zombiewatch" ./cmd/zombiewatch
go build -o "$bin/zombiewatch-exporter" ./cmd/zombiewatch-exporter

mkfifo "$bin/fifo"
exec 3<>"$bin/fifo"
"$bin/holder" --sleepers "$OTHERS" < "$bin/fifo" > "$bin/held" 3>&- &
for _ in $(seq 600); do [[ $(wc -l < "$bin/held") -ge 2 ]] && break; sleep 0.2; done
echo "$(date -u '+%Y-%m-%d %H:%M'), $(nproc) cores, Linux $(uname -r), $(ps -e --no-headers | wc -l) processes"
echo

# cpu_ns PID: CPU time of every thread of PID so far, in ns (schedstat).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d", s}'; }

echo "One host reading (wall and CPU time, medians of $ROUNDS):"
echo
"$bin/compare" -rounds "$ROUNDS" -floor "ps auxw" \
  "ps auxw::ps auxw >/dev/null" \
  "zombiewatch --json::$bin/zombiewatch --json >/dev/null 2>&1 || test \$? -eq 1" \
  "zombiewatch --json --fd-types=false::$bin/zombiewatch --json --fd-types=false >/dev/null 2>&1 || test \$? -eq 1"
echo

"$NE" --collector.disable-defaults --collector.processes --web.listen-address=127.0.0.1:19100 >/dev/null 2>&1 &
ne=$!; pids+=($ne)
"$bin/zombiewatch-exporter" --listen 127.0.0.1:19857 >/dev/null 2>&1 &
zw=$!; pids+=($zw)
for url in http://127.0.0.1:19100/metrics http://127.0.0.1:19857/metrics; do
  for _ in $(seq 100); do curl -sf "$url" >/dev/null && break; sleep 0.1; done
done
sleep "$GAP"
declare -A total=([ne]=0 [zw]=0)
for _ in $(seq "$SCRAPES"); do
  for who in ne zw; do
    pid=${!who} port=19100
    [[ $who == zw ]] && port=19857
    a=$(cpu_ns "$pid"); curl -sf "http://127.0.0.1:$port/metrics" >/dev/null; b=$(cpu_ns "$pid")
    total[$who]=$(( total[$who] + b - a ))
  done
  sleep "$GAP"
done
ne_ms=$(awk -v t="${total[ne]}" -v n="$SCRAPES" 'BEGIN {printf "%.1f", t / n / 1e6}')
zw_ms=$(awk -v t="${total[zw]}" -v n="$SCRAPES" 'BEGIN {printf "%.1f", t / n / 1e6}')
echo "CPU per scrape ($SCRAPES scrapes, $GAP s apart):"
echo
echo "| exporter | CPU per scrape | × node_exporter |"
echo "|---|---:|---:|"
echo "| node_exporter --collector.processes | $ne_ms ms | 1.00 |"
echo "| zombiewatch-exporter | $zw_ms ms | $(awk -v a="$zw_ms" -v b="$ne_ms" 'BEGIN {printf "%.2f", a / b}') |"
echo
kill "$ne" "$zw"

"$bin/zombiewatch" --watch --interval 1s > /dev/null 2>&1 &
w=$!; pids+=($w)
sleep 10
a=$(cpu_ns "$w"); sleep "$WATCH"; b=$(cpu_ns "$w")
rss=$(awk '/VmHWM/ {print $2}' /proc/"$w"/status)
kill "$w"
echo "The host-wide watch at 1 Hz, over $WATCH s after a 10 s warm-up:"
echo
echo "| CPU | % of one core | peak RSS |"
echo "|---:|---:|---:|"
awk -v c=$((b - a)) -v s="$WATCH" -v r="$rss" 'BEGIN {printf "| %.0f ms | %.2f%% | %.1f MiB |\n", c / 1e6, c / 1e9 / s * 100, r / 1024}'
