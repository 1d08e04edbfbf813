#!/usr/bin/env bash
# The broker benchmark: `runnel perf produce` and `runnel perf consume` against a release broker
# on this machine, each next to a baseline measured in the same run (these machines are shared
# and noisy: only ratios mean much).
#
#   produce acks=1   vs  dd of the same bytes to the same disk with conv=fdatasync
#   produce acks=all vs  produce acks=1 (durable by default: every acknowledged batch synced)
#   consume          vs  loopback TCP bandwidth (benches/loopback.rs, one stream like iperf3)
#
# Run from the repository root: bash benches/broker.sh   (RECORDS=N to change the size)
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-1000000}
SIZE=1024
MB=$((RECORDS * SIZE / 1048576))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/runnel-bench.XXXXXX")
PORT=${PORT:-19092}
BROKER_PID=
cleanup() {
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release -q
cargo bench --bench loopback --no-run -q 2>/dev/null
RUNNEL=target/release/runnel
BS="--bootstrap-server 127.0.0.1:$PORT"

rate() { # MiB/s from a perf summary line: "... (X MB/sec) ..."
  sed -n 's/.*(\([0-9.]*\) MB\/sec).*/\1/p' | tail -1
}

echo "== baseline: dd ${MB} MiB to the data disk, conv=fdatasync"
DD=$(dd if=/dev/zero of="$WORK/dd.bin" bs=1M count="$MB" conv=fdatasync 2>&1 | tail -1)
echo "$DD"
rm -f "$WORK/dd.bin"
DD_MIBS=$(echo "$DD" | awk -v mb="$MB" '{for (i=1;i<=NF;i++) if ($i=="s,") print mb/$(i-1)}')

echo "== baseline: loopback TCP"
LOOP=$(cargo bench --bench loopback -q 2>/dev/null | grep '^loopback:')
echo "$LOOP"
LOOP_MIBS=$(echo "$LOOP" | sed -n 's/.*: \([0-9.]*\) MiB\/s/\1/p')

"$RUNNEL" broker --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 50); do "$RUNNEL" topic list $BS >/dev/null 2>&1 && break; sleep 0.2; done
"$RUNNEL" topic create bench1 --partitions 1 $BS >/dev/null
"$RUNNEL" topic create benchall --partitions 1 $BS >/dev/null

echo "== runnel perf produce --acks 1"
P1=$("$RUNNEL" perf produce --topic bench1 --records "$RECORDS" --record-size $SIZE --acks 1 $BS | tail -1)
echo "$P1"
echo "== runnel perf produce --acks all"
PA=$("$RUNNEL" perf produce --topic benchall --records "$RECORDS" --record-size $SIZE --acks all $BS | tail -1)
echo "$PA"
echo "== runnel perf consume"
C=$("$RUNNEL" perf consume --topic bench1 --messages "$RECORDS" $BS | tail -1)
echo "$C"
C_MIBS=$(echo "$C" | awk -F', ' '{print $4}')

P1_MIBS=$(echo "$P1" | rate)
PA_MIBS=$(echo "$PA" | rate)
echo
echo "== ratios (same run)"
awk -v p1="$P1_MIBS" -v pa="$PA_MIBS" -v dd="$DD_MIBS" -v c="$C_MIBS" -v lo="$LOOP_MIBS" 'BEGIN {
  printf "produce acks=1   %8.1f MiB/s  / dd fdatasync %8.1f MiB/s = %.2f  (target >= 0.5)\n", p1, dd, p1/dd
  printf "produce acks=all %8.1f MiB/s  / acks=1       %8.1f MiB/s = %.2f  (target >= 0.5)\n", pa, p1, pa/p1
  printf "consume          %8.1f MiB/s  / loopback     %8.1f MiB/s = %.2f\n", c, lo, c/lo
}'
