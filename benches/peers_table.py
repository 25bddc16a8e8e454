#!/usr/bin/env python3
"""The table of benches/peers.sh, from the JSON lines every system wrote.

    peers_table.py RESULTS.jsonl SHAPES MACHINE.txt LOAD_AT_END   > table.md
    peers_table.py --write BENCHMARKS.md table.md

The first form prints one Markdown table of µs per task (median of all repeats of all rounds)
per system and shape, the ratios against dag embedded, dag on Redis against the best peer, the
graph build times apart, the spread and the checks. The second replaces the part of
BENCHMARKS.md between `<!-- peers:begin -->` and `<!-- peers:end -->` with table.md.
"""
import json
import statistics
import sys

# (key in the JSON lines, label), in the order of the columns.
SYSTEMS = [
    (("dag", "embedded"), "dag embedded"),
    (("dag", "redis"), "dag Redis, threads"),
    (("dag", "pool"), "dag Redis, 2 procs"),
    (("tokio", "task-per-node"), "tokio task/node"),
    (("dagx", "tokio-2"), "dagx"),
    (("dask", "threads"), "Dask threads"),
    (("dask", "sync"), "Dask sync"),
    (("dask", "distributed"), "Dask distrib."),
    (("ray", "local-2"), "Ray"),
]
DAG = {("dag", "embedded"), ("dag", "redis"), ("dag", "pool")}
PYTHON = {("dask", "threads"), ("dask", "sync"), ("dask", "distributed"), ("ray", "local-2")}
BEGIN, END = "<!-- peers:begin -->", "<!-- peers:end -->"


def fmt(x):
    if x is None:
        return "–"
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def ratio(x):
    return "–" if x is None else (f"{x:,.0f}×" if x >= 100 else f"{x:.1f}×" if x >= 10 else f"{x:.2f}×")


def load(raw):
    samples, builds, n_tasks, top5, notes, failures = {}, {}, {}, {}, {}, []
    for line in open(raw):
        r = json.loads(line)
        system = r["system"]
        sched = r.get("scheduler") or ("local-2" if system == "ray" else "?")
        key = (system, sched)
        shape = r["shape"]
        # Ray times build + execution together (total_s); the others time them apart.
        xs = r.get("compute_s") or r.get("total_s") or []
        if r.get("status", "ok") != "ok" or not xs:
            failures.append(f"{system} {sched} {shape}: {r.get('status')}")
        if r.get("result_ok") is not None and not all(r["result_ok"]):
            failures.append(f"{system} {sched} {shape}: WRONG RESULT")
        samples.setdefault((key, shape), []).extend(xs)
        builds.setdefault((key, shape), []).extend(r.get("build_s") or [])
        if r.get("n_tasks"):
            n_tasks.setdefault(shape, r["n_tasks"])
        if r.get("top5"):
            top5.setdefault(shape, {})[key] = json.dumps([[w, n] for w, n in r["top5"]])
        if r.get("note"):
            notes[key] = r["note"]
    return samples, builds, n_tasks, top5, notes, failures


def table(raw, shapes, machine, load_end):
    samples, builds, n_tasks, top5, notes, failures = load(raw)
    cols = [(k, label) for k, label in SYSTEMS if any(s[0] == k for s in samples)]
    shapes = [s for s in shapes if s in n_tasks]

    def us(key, shape):
        xs = samples.get((key, shape))
        return statistics.median(xs) / n_tasks[shape] * 1e6 if xs else None

    out = []
    p = out.append
    p("µs per task, median of all repeats of all rounds (smaller is better); n = repeats.\n")
    head = ["shape", "tasks"] + [label for _, label in cols]
    p("| " + " | ".join(head) + " |")
    p("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for shape in shapes:
        row = [shape, f"{n_tasks[shape]:,}"]
        for key, _ in cols:
            xs = samples.get((key, shape), [])
            row.append(f"{fmt(us(key, shape))} (n={len(xs)})" if xs else "–")
        p("| " + " | ".join(row) + " |")

    emb = ("dag", "embedded")
    peers = [(k, label) for k, label in cols if k not in DAG]
    if any(k == emb for k, _ in cols) and peers:
        p("\nRatios: a peer's µs/task ÷ dag embedded's (higher = dag faster); and the best peer's "
          "µs/task ÷ dag on Redis's (> 1: dag on Redis is faster than every peer, "
          "in-process ones included).\n")
        redis_cols = [(k, label) for k, label in cols if k in DAG and k != emb]
        head = ["shape"] + [f"{label} ÷ embedded" for _, label in peers]
        head += [f"best peer ÷ {label}" for _, label in redis_cols]
        head += [f"best Python peer ÷ {label}" for _, label in redis_cols]
        p("| " + " | ".join(head) + " |")
        p("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for shape in shapes:
            base = us(emb, shape)
            row = [shape]
            for key, _ in peers:
                x = us(key, shape)
                row.append(ratio(x / base) if x and base else "–")
            for group in (None, PYTHON):
                cands = [(us(k, shape), label) for k, label in peers
                         if us(k, shape) and (group is None or k in group)]
                best = min(cands) if cands else None
                for key, _ in redis_cols:
                    x = us(key, shape)
                    row.append(f"{ratio(best[0] / x)} ({best[1]})" if best and x else "–")
            p("| " + " | ".join(row) + " |")

    p("\nGraph build, milliseconds (median `build_s`; not in the µs/task above; Ray's build is in "
      "its µs/task, it has no separate build):\n")
    bcols = [(k, label) for k, label in cols if any(builds.get((k, s)) for s in shapes)]
    head = ["shape"] + [label for _, label in bcols]
    p("| " + " | ".join(head) + " |")
    p("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for shape in shapes:
        row = [shape]
        for key, _ in bcols:
            xs = builds.get((key, shape))
            row.append(fmt(statistics.median(xs) * 1e3) if xs else "–")
        p("| " + " | ".join(row) + " |")

    p("\nSpread (min–max µs/task over the repeats):\n\n```text")
    for shape in shapes:
        parts = []
        for key, label in cols:
            xs = samples.get((key, shape))
            if xs:
                parts.append(f"{label} {fmt(min(xs) / n_tasks[shape] * 1e6)}–"
                             f"{fmt(max(xs) / n_tasks[shape] * 1e6)}")
        p(f"{shape}: " + "; ".join(parts))
    p("```\n")
    p("Checks: every system's result is compared with the expected value in the bench itself "
      "(tree sum, chain end, fan sum, word counts); a wrong one fails the run.")
    for shape, variants in top5.items():
        same = "the same" if len(set(variants.values())) == 1 else "DIFFERENT"
        who = ", ".join(sorted(label for k, label in SYSTEMS if k in variants))
        p(f"{shape}: the top-5 words are {same} in {who}: {sorted(set(variants.values()))[0]}.")
    for key, note in notes.items():
        p(f"Note ({key[0]}): {note}.")
    for f in failures:
        p(f"FAILED: {f}")
    p("\n```text")
    p(open(machine).read().rstrip())
    p(f"load average at the end: {load_end}")
    p("```")
    return "\n".join(out)


def write(benchmarks, table_md):
    text = open(benchmarks).read()
    body = open(table_md).read().rstrip()
    if BEGIN not in text or END not in text:
        sys.exit(f"{benchmarks} has no {BEGIN} ... {END} markers")
    a = text.index(BEGIN) + len(BEGIN)
    b = text.index(END)
    open(benchmarks, "w").write(text[:a] + "\n" + body + "\n" + text[b:])


if __name__ == "__main__":
    if sys.argv[1] == "--write":
        write(sys.argv[2], sys.argv[3])
    else:
        print(table(sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]))
