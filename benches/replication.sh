#!/usr/bin/env bash
# The replication benchmark: `runnel perf produce --acks all` of 1 KiB records to a topic with
# replication factor 3 on three brokers on this machine, next to the same produce to a single
# node (replication factor 1) measured in the same run (these machines are shared and noisy:
# only the ratio means much).
#
#   RF 3, acks=all, three brokers   vs   RF 1, acks=all, one broker
#
# Both are durable by default: an acknowledged batch is synced on every in-sync replica. Three
# synced copies share this one disk, so the ceiling is about a third of the single-node figure.
#
# Run from the repository root: bash benches/replication.sh   (RECORDS=N to change the size)
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-300000}
SIZE=1024
WORK=$(mktemp -d "${TMPDIR:-/tmp}/runnel-repl-bench.XXXXXX")
BASE=${PORT:-29092}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release -q
RUNNEL=target/release/runnel

rate() { # MiB/s from a perf summary line: "... (X MB/sec) ..."
  sed -n 's/.*(\([0-9.]*\) MB\/sec).*/\1/p' | tail -1
}

wait_for() { # wait_for BOOTSTRAP BROKERS: until Metadata lists that many brokers
  for _ in $(seq 150); do
    if "$RUNNEL" cluster describe --bootstrap-server "$1" 2>/dev/null | grep -q .; then
      if [ "$("$RUNNEL" topic list --bootstrap-server "$1" >/dev/null 2>&1; echo $?)" = 0 ]; then
        return 0
      fi
    fi
    sleep 0.2
  done
  echo "the cluster at $1 did not come up" >&2
  exit 1
}

echo "== single node: RF 1, acks=all"
"$RUNNEL" broker --data-dir "$WORK/single" --listen "127.0.0.1:$BASE" >"$WORK/single.log" 2>&1 &
PIDS+=($!)
wait_for "127.0.0.1:$BASE"
"$RUNNEL" topic create single --partitions 1 --bootstrap-server "127.0.0.1:$BASE" >/dev/null
P1=$("$RUNNEL" perf produce --topic single --records "$RECORDS" --record-size $SIZE --acks all \
  --bootstrap-server "127.0.0.1:$BASE" | tail -1)
echo "$P1"
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true
PIDS=()

echo "== three brokers: RF 3, min.insync.replicas=2, acks=all"
V="1@127.0.0.1:$((BASE + 11)),2@127.0.0.1:$((BASE + 12)),3@127.0.0.1:$((BASE + 13))"
for n in 1 2 3; do
  "$RUNNEL" broker --data-dir "$WORK/n$n" --listen "127.0.0.1:$((BASE + n))" \
    --override "node.id=$n" --override "controller.quorum.voters=$V" \
    --override "listeners=PLAINTEXT://127.0.0.1:$((BASE + n)),CONTROLLER://127.0.0.1:$((BASE + 10 + n))" \
    --override "controller.listener.names=CONTROLLER" >"$WORK/n$n.log" 2>&1 &
  PIDS+=($!)
done
BS="127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2)),127.0.0.1:$((BASE + 3))"
wait_for "$BS"
for _ in $(seq 150); do
  "$RUNNEL" topic create replicated --partitions 1 --replication-factor 3 \
    --config min.insync.replicas=2 --bootstrap-server "$BS" >/dev/null 2>&1 && break
  sleep 0.2
done
sleep 1
"$RUNNEL" topic describe replicated --bootstrap-server "$BS"
P3=$("$RUNNEL" perf produce --topic replicated --records "$RECORDS" --record-size $SIZE --acks all \
  --bootstrap-server "$BS" | tail -1)
echo "$P3"

S_MIBS=$(echo "$P1" | rate)
R_MIBS=$(echo "$P3" | rate)
echo
echo "== ratio (same run)"
awk -v s="$S_MIBS" -v r="$R_MIBS" 'BEGIN {
  printf "RF 3 acks=all %8.1f MiB/s  / RF 1 acks=all %8.1f MiB/s = %.2f  (ceiling ~0.33, target >= 0.27)\n", r, s, r/s
}'
