#!/usr/bin/env bash
# dag and the systems a user would pick instead, on the same DAG shapes, in one run.
#
#   benches/peers.sh [--quick] [--rounds N] [--shapes LIST] [--systems LIST]
#                    [--slow-shapes LIST] [--write] [--out DIR]
#
# Systems (--systems, comma-separated; default all):
#   embedded          dag, embedded runtime (2 worker threads, in-memory store)
#   redis             dag on Redis, worker threads in the bench process
#   pool              dag on Redis, a pool of 2 worker processes
#   tokio             one tokio::spawn per node, one oneshot per edge (benches/baselines.rs)
#   dagx              the dagx crate on the same tokio runtime (benches/baselines.rs)
#   dask-threads, dask-sync, dask-distributed (LocalCluster, 2 processes x 1 thread)
#   ray               Ray, local, num_cpus=2 (skipped with a message if it does not install)
# Shapes (--shapes): tree_k10,tree_k12,tree_k14,tree_k16,chain_10000,fan_10000,wordcount_64.
# --slow-shapes limits dask-distributed and ray (milliseconds per task) to fewer shapes
#   (default: the same as --shapes; Ray's script has no tree_k16).
# --quick: 1 round, shapes tree_k10,tree_k12,chain_10000,fan_10000,wordcount_64, the slow
#   peers on tree_k10,chain_10000,fan_10000,wordcount_64.
# --write: replaces BENCHMARKS.md's headline table (between the peers:begin/end markers).
#
# - creates (or reuses) a venv at $PEERS_VENV (default /tmp/dask-venv) with dask, distributed,
#   and, for Ray, ray + psutil;
# - builds the `compare_dask` and `baselines` benches once;
# - writes the word-count text of ../shared/peers/dask_shapes.py (generate_text) to a file, so
#   every system counts the same 5 MB in the same 64 chunks;
# - starts its own redis-server on a free loopback port (never 6379), stopped on exit;
# - runs N rounds (default 2); each round runs every system once over its shapes, in an order
#   reversed every other round; a Rust system measures 3 repeats per shape, Dask 1, Ray 3 (each
#   after a warm-up);
# - prints one table of µs/task (median of all repeats of all rounds), the ratios against dag
#   embedded and dag on Redis against the best peer, and the graph build times apart.
# Honours CARGO_TARGET_DIR. Raw JSON lines, logs and the tables land in DIR
# (default /tmp/peers.<time>).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${DASK_PEERS:-$ROOT/../shared/peers}
VENV=${PEERS_VENV:-${DASK_VENV:-/tmp/dask-venv}}
ROUNDS=2
SHAPES=tree_k10,tree_k12,tree_k14,tree_k16,chain_10000,fan_10000,wordcount_64
SLOW_SHAPES=
SYSTEMS=embedded,redis,pool,tokio,dagx,dask-threads,dask-sync,dask-distributed,ray
WRITE=0
OUT=/tmp/peers.$(date +%Y%m%d-%H%M%S)
RUST_REPEATS=3
DASK_REPEATS=1

while [ $# -gt 0 ]; do
    case "$1" in
        --quick)
            ROUNDS=1
            SHAPES=tree_k10,tree_k12,chain_10000,fan_10000,wordcount_64
            SLOW_SHAPES=tree_k10,chain_10000,fan_10000,wordcount_64
            shift ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --shapes) SHAPES=$2; shift 2 ;;
        --slow-shapes) SLOW_SHAPES=$2; shift 2 ;;
        --systems) SYSTEMS=$2; shift 2 ;;
        --write) WRITE=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
SLOW_SHAPES=${SLOW_SHAPES:-$SHAPES}
has() { case ",$SYSTEMS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

mkdir -p "$OUT"
RAW=$OUT/results.jsonl
: > "$RAW"
LOG=$OUT/run.log
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
started=$(date +%s)

[ -f "$PEERS/bench_dask.py" ] || { echo "no $PEERS/bench_dask.py (set DASK_PEERS)" >&2; exit 1; }

# --- Python peers ----------------------------------------------------------------------------
if ! "$VENV/bin/python" -c 'import dask, distributed' 2>/dev/null; then
    log "creating $VENV with dask + distributed"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q dask distributed
fi
PY=$VENV/bin/python
if has ray && ! "$PY" -c 'import ray, psutil' 2>/dev/null; then
    log "installing ray + psutil into $VENV"
    if ! "$VENV/bin/pip" install -q ray psutil >> "$LOG" 2>&1; then
        log "SKIPPING Ray: its wheel did not install in $VENV (see $LOG)"
        SYSTEMS=$(echo ",$SYSTEMS," | sed 's/,ray,/,/; s/^,//; s/,$//')
    fi
fi

# --- build once ------------------------------------------------------------------------------
cd "$ROOT"
bench_binary() {
    cargo bench --no-run --bench "$1" --message-format=json 2>>"$LOG" |
        "$PY" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1"
}
log "building the compare_dask and baselines benches"
DAG_BIN=$(bench_binary compare_dask)
BASE_BIN=$(bench_binary baselines)
[ -x "$DAG_BIN" ] && [ -x "$BASE_BIN" ] || { echo "could not build the benches (see $LOG)" >&2; exit 1; }

# --- the same text for every word count ------------------------------------------------------
TEXT=$OUT/wordcount_text.txt
PYTHONPATH=$PEERS "$PY" -c 'import sys, dask_shapes as S
open(sys.argv[1], "w").write(S.generate_text())' "$TEXT"

# --- redis-server on a free port -------------------------------------------------------------
REDIS_PID=
cleanup() { if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
if has redis || has pool; then
    PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    [ "$PORT" != 6379 ] || PORT=$((PORT + 1))
    mkdir -p "$OUT/redis"
    redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$OUT/redis" \
        > "$OUT/redis/server.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        redis-cli -p "$PORT" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
    redis-cli -p "$PORT" ping | grep -q PONG
    log "redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on 127.0.0.1:$PORT (pid $REDIS_PID)"
fi

# --- machine ---------------------------------------------------------------------------------
{
    echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "$(rustc --version); redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-)"
    "$PY" -c 'import platform, dask, distributed
try:
    import ray; r = f", ray {ray.__version__}"
except Exception:
    r = ""
print(f"Python {platform.python_version()}, dask {dask.__version__}, distributed {distributed.__version__}{r}")'
    for crate in tokio dagx; do
        printf '%s %s; ' "$crate" "$(grep -A1 "^name = \"$crate\"$" "$ROOT/Cargo.lock" | sed -n 's/version = "\(.*\)"/\1/p')"
    done
    echo
    echo "dag at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | wc -l) changed tracked files)"
    echo "load average at the start: $(load)"
} | tee "$OUT/machine.txt" | tee -a "$LOG"

# --- runs ------------------------------------------------------------------------------------
run_system() {
    case "$1" in
        embedded|redis|pool)
            "$DAG_BIN" --runtime "$1" --redis "redis://127.0.0.1:${PORT:-0}" --shapes "$SHAPES" \
                --repeats "$RUST_REPEATS" --text "$TEXT" --out "$RAW" ;;
        tokio|dagx)
            "$BASE_BIN" --system "$1" --shapes "$SHAPES" --repeats "$RUST_REPEATS" \
                --text "$TEXT" --out "$RAW" ;;
        dask-threads|dask-sync)
            "$PY" "$PEERS/bench_dask.py" --scheduler "${1#dask-}" --shapes "$SHAPES" \
                --repeats "$DASK_REPEATS" --out "$RAW" ;;
        dask-distributed)
            "$PY" "$PEERS/bench_dask.py" --scheduler distributed --shapes "$SLOW_SHAPES" \
                --repeats "$DASK_REPEATS" --out "$RAW" ;;
        ray)
            # bench_ray.py has no tree_k16; it removes nothing it leaves under ~/.ray.
            RAY_USAGE_STATS_ENABLED=0 SHAPES=$SLOW_SHAPES "$PY" "$PEERS/bench_ray.py" "$RAW" ;;
        *) log "unknown system $1 (see --help)"; return 1 ;;
    esac
}

IFS=, read -r -a systems <<< "$SYSTEMS"
for round in $(seq "$ROUNDS"); do
    order=("${systems[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=()
        for ((i = ${#systems[@]} - 1; i >= 0; i--)); do order+=("${systems[$i]}"); done
    fi
    for sys in "${order[@]}"; do
        log "round $round/$ROUNDS: $sys (load $(load))"
        t=$(date +%s)
        if ! run_system "$sys" >> "$LOG" 2>&1; then
            log "  $sys FAILED (see $LOG); its figures are missing from the table"
        fi
        log "  $sys took $(($(date +%s) - t)) s"
    done
done
log "load after the runs: $(load)"

# --- table -----------------------------------------------------------------------------------
"$PY" "$ROOT/benches/peers_table.py" "$RAW" "$SHAPES" "$OUT/machine.txt" "$(load)" \
    > "$OUT/table.md"
cat "$OUT/table.md"
if [ "$WRITE" = 1 ]; then
    "$PY" "$ROOT/benches/peers_table.py" --write "$ROOT/BENCHMARKS.md" "$OUT/table.md"
    log "BENCHMARKS.md's headline replaced"
fi
log "done in $(($(date +%s) - started)) s; raw results, logs and the table in $OUT"
