#!/usr/bin/env bash
# dag vs Dask on the same DAG shapes: benches/peers.sh with the systems of this script's
# first version (dag embedded, Dask threads, Dask sync, dag on Redis), kept for its options.
#
#   benches/compare_dask.sh [--rounds N] [--shapes LIST] [--distributed] [--no-redis]
#                           [--extras] [--out DIR]
#
# --distributed adds Dask's distributed scheduler; --no-redis leaves dag on Redis out;
# --extras also runs `cargo bench --bench overhead`, `cargo bench --bench redis_commands` and
# `cargo test --release --test memory -- --nocapture`, and keeps their output in DIR.
# Every other system and option: benches/peers.sh --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SYSTEMS=embedded,dask-threads,dask-sync,redis
OUT=/tmp/compare_dask.$(date +%Y%m%d-%H%M%S)
EXTRAS=0
args=(--rounds 3)
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds|--shapes) args+=("$1" "$2"); shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --distributed) SYSTEMS=$SYSTEMS,dask-distributed; shift ;;
        --no-redis) SYSTEMS=${SYSTEMS/,redis/}; shift ;;
        --extras) EXTRAS=1; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done

"$ROOT/benches/peers.sh" --systems "$SYSTEMS" --out "$OUT" "${args[@]}"

if [ "$EXTRAS" = 1 ]; then
    cd "$ROOT"
    echo "extras: cargo bench --bench overhead ($(cut -d' ' -f1-3 /proc/loadavg))"
    cargo bench --bench overhead 2>>"$OUT/run.log" | tee "$OUT/overhead.txt"
    echo "extras: cargo bench --bench redis_commands ($(cut -d' ' -f1-3 /proc/loadavg))"
    cargo bench --bench redis_commands 2>>"$OUT/run.log" | tee "$OUT/redis_commands.txt"
    echo "extras: cargo test --release --test memory -- --nocapture"
    cargo test --release --test memory -- --nocapture 2>&1 | tee "$OUT/memory.txt" |
        grep -E 'bytes per node|test result'
fi
