#!/usr/bin/env bash
# dag vs Dask on the same DAG shapes, in one run, on this machine.
#
#   benches/compare_dask.sh [--rounds N] [--shapes LIST] [--distributed] [--no-redis]
#                           [--extras] [--out DIR]
#
# - creates (or reuses) a venv at $DASK_VENV (default /tmp/dask-venv) with dask + distributed;
# - builds the `compare_dask` bench (benches/compare_dask.rs) and the examples once;
# - writes the wordcount text of ../shared/peers/dask_shapes.py (generate_text) to a file, so
#   both sides count the same 5 MB in the same 64 chunks;
# - starts its own redis-server on a free loopback port (never 6379), stopped on exit;
# - runs N rounds (default 3); each round runs every system once over all shapes, in an order
#   reversed every other round: dag embedded, Dask threads, Dask sync, dag on Redis (and Dask
#   distributed with --distributed: a LocalCluster of 2 processes x 1 thread, slow);
#   a dag run measures 3 repeats per shape, a Dask run 1 (each after its own warm-up);
# - prints a table of µs/task (median of all repeats of all rounds) and the ratios Dask/dag.
#
# --extras also runs `cargo bench --bench overhead`, `cargo bench --bench redis_commands` and
# `cargo test --release --test memory -- --nocapture`, and keeps their output in DIR.
# Honours CARGO_TARGET_DIR. Raw JSON lines, logs and the table land in DIR
# (default /tmp/compare_dask.<time>).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=${DASK_PEERS:-$ROOT/../shared/peers}
VENV=${DASK_VENV:-/tmp/dask-venv}
ROUNDS=3
SHAPES=tree_k10,tree_k12,tree_k14,tree_k16,chain_10000,fan_10000,wordcount_64
DISTRIBUTED=0
REDIS=1
EXTRAS=0
OUT=/tmp/compare_dask.$(date +%Y%m%d-%H%M%S)
DAG_REPEATS=3
DASK_REPEATS=1

while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;;
        --shapes) SHAPES=$2; shift 2 ;;
        --distributed) DISTRIBUTED=1; shift ;;
        --no-redis) REDIS=0; shift ;;
        --extras) EXTRAS=1; shift ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

mkdir -p "$OUT"
RAW=$OUT/results.jsonl
: > "$RAW"
LOG=$OUT/run.log
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG"; }
load() { uptime | sed 's/.*load average/load average/'; }
started=$(date +%s)

[ -f "$PEERS/bench_dask.py" ] || { echo "no $PEERS/bench_dask.py (set DASK_PEERS)" >&2; exit 1; }

# --- Dask venv -------------------------------------------------------------------------------
if ! "$VENV/bin/python" -c 'import dask, distributed' 2>/dev/null; then
    log "creating $VENV with dask + distributed"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q dask distributed
fi
PY=$VENV/bin/python

# --- build once ------------------------------------------------------------------------------
log "building (cargo bench --no-run --bench compare_dask; examples tree_reduction, wordcount)"
cd "$ROOT"
BIN=$(cargo bench --no-run --bench compare_dask --message-format=json 2>>"$LOG" |
    "$PY" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "compare_dask" and m.get("executable"):
        print(m["executable"])')
[ -x "$BIN" ] || { echo "could not find the compare_dask bench binary (see $LOG)" >&2; exit 1; }
cargo build --release --example tree_reduction --example wordcount 2>>"$LOG"
EXAMPLES=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples

# --- the same text for both word counts ------------------------------------------------------
TEXT=$OUT/wordcount_text.txt
PYTHONPATH=$PEERS "$PY" -c 'import sys, dask_shapes as S
open(sys.argv[1], "w").write(S.generate_text())' "$TEXT"

# --- redis-server on a free port -------------------------------------------------------------
REDIS_PID=
cleanup() { if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT
if [ "$REDIS" = 1 ]; then
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
    echo "$(rustc --version); $("$PY" -c 'import platform, dask, distributed; print(f"Python {platform.python_version()}, dask {dask.__version__}, distributed {distributed.__version__}")')"
    echo "dag at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed files)"
} | tee "$OUT/machine.txt" | tee -a "$LOG"

# --- runs ------------------------------------------------------------------------------------
run_dag() {
    "$BIN" --runtime "$1" ${2:+--redis "$2"} --shapes "$SHAPES" --repeats "$DAG_REPEATS" \
        --text "$TEXT" --out "$RAW" >> "$LOG" 2>&1
}
run_dask() {
    "$PY" "$PEERS/bench_dask.py" --scheduler "$1" --shapes "$SHAPES" --repeats "$DASK_REPEATS" \
        --out "$RAW" >> "$LOG" 2>&1
}
systems=("dag embedded" "dask threads" "dask sync")
[ "$REDIS" = 1 ] && systems+=("dag redis")
[ "$DISTRIBUTED" = 1 ] && systems+=("dask distributed")

for round in $(seq "$ROUNDS"); do
    order=("${systems[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=()
        for ((i = ${#systems[@]} - 1; i >= 0; i--)); do order+=("${systems[$i]}"); done
    fi
    for sys in "${order[@]}"; do
        log "round $round/$ROUNDS: $sys ($(load))"
        case "$sys" in
            "dag embedded") run_dag embedded ;;
            "dag redis") run_dag redis "redis://127.0.0.1:$PORT" ;;
            "dask "*) run_dask "${sys#dask }" ;;
        esac
    done
done

# --- cross-check with the examples (one run each; not in the table) ---------------------------
log "examples: tree_reduction 14; wordcount on the same text, 64 chunks (build + compute)"
"$EXAMPLES/tree_reduction" 14 2>&1 | tee -a "$LOG" || log "(tree_reduction failed)"
"$EXAMPLES/wordcount" "$TEXT" 64 2>&1 | sed -n 1p | tee -a "$LOG" || log "(wordcount failed)"

# --- table -----------------------------------------------------------------------------------
log "load after the runs: $(load)"
"$PY" - "$RAW" "$SHAPES" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys

raw, shapes = sys.argv[1], sys.argv[2].split(",")
samples, n_tasks, top5 = {}, {}, {}
for line in open(raw):
    r = json.loads(line)
    key = (r["system"], r["scheduler"], r["shape"])
    samples.setdefault(key, []).extend(r["compute_s"])
    if r.get("n_tasks"):
        n_tasks[r["shape"]] = r["n_tasks"]
    if r.get("top5"):
        top5.setdefault(r["shape"], set()).add(json.dumps([[w, n] for w, n in r["top5"]]))

cols = [c for c in [("dag", "embedded"), ("dag", "redis"), ("dask", "threads"), ("dask", "sync"),
                    ("dask", "distributed")] if any(k[:2] == c for k in samples)]

def us(col, shape):
    xs = samples.get((*col, shape))
    return statistics.median(xs) / n_tasks[shape] * 1e6 if xs else None

def fmt(x):
    return "–" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.2f}" if x < 10 else f"{x:.1f}")

ratios = [(d, g) for d in cols if d[0] == "dask" for g in cols if g[0] == "dag"]
head = ["shape", "tasks"] + [f"{s} {m}" for s, m in cols] + [f"{d[1]} / {g[1]}" for d, g in ratios]
print("µs per task (median of all repeats; n = repeats per column), ratio = Dask µs / dag µs\n")
print("| " + " | ".join(head) + " |")
print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
for shape in shapes:
    if shape not in n_tasks:
        continue
    row = [shape, f"{n_tasks[shape]:,}"]
    for c in cols:
        xs = samples.get((*c, shape), [])
        row.append(f"{fmt(us(c, shape))} (n={len(xs)})" if xs else "–")
    for d, g in ratios:
        a, b = us(d, shape), us(g, shape)
        row.append(f"{a / b:.1f}×" if a and b else "–")
    print("| " + " | ".join(row) + " |")
for shape, variants in top5.items():
    same = "the same" if len(variants) == 1 else "DIFFERENT"
    print(f"\n{shape}: top-5 words {same} in every system: {sorted(variants)[0]}")
print("\nspread (min–max µs/task over the repeats):")
for shape in shapes:
    if shape not in n_tasks:
        continue
    parts = []
    for c in cols:
        xs = samples.get((*c, shape))
        if xs:
            lo, hi = min(xs) / n_tasks[shape] * 1e6, max(xs) / n_tasks[shape] * 1e6
            parts.append(f"{c[0]} {c[1]} {fmt(lo)}–{fmt(hi)}")
    print(f"  {shape}: " + "; ".join(parts))
EOF

# --- extras ----------------------------------------------------------------------------------
if [ "$EXTRAS" = 1 ]; then
    log "extras: cargo bench --bench overhead ($(load))"
    cargo bench --bench overhead 2>>"$LOG" | tee "$OUT/overhead.txt"
    log "extras: cargo bench --bench redis_commands ($(load))"
    cargo bench --bench redis_commands 2>>"$LOG" | tee "$OUT/redis_commands.txt"
    log "extras: cargo test --release --test memory -- --nocapture ($(load))"
    cargo test --release --test memory -- --nocapture 2>&1 | tee "$OUT/memory.txt" | grep -E 'bytes per node|test result'
fi

log "done in $(($(date +%s) - started)) s; raw results, logs and the table in $OUT"
