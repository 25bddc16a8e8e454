//! The DAG shapes of `../shared/peers/bench_dask.py`, on dag, one JSON line per shape.
//!
//! The shapes and task bodies mirror `../shared/peers/dask_shapes.py` one for one, and each line
//! has the fields of `bench_dask.py`'s lines (`system`, `scheduler`, `shape`, `n_tasks`,
//! `compute_s`, `build_s`, `us_per_task`, ...), so `benches/compare_dask.sh` can put both in
//! one table:
//!
//! - `tree_kK` (K = 10, 12, 14, 16): 2^K leaves `inc(i)`, pairwise `add` to one sink;
//! - `chain_10000`: 10,000 tasks in a line, each adding 1;
//! - `fan_10000`: one `source`, 10,000 `inc` children, one `sum_list` sink;
//! - `wordcount_64`: the text of `--text FILE` cut into 64 chunks exactly as `split_chunks`
//!   does, per chunk lower-case and count the runs of `[a-z']`, one merge.
//!
//! Per shape: one warm-up on a small instance of the shape, then `--repeats` times build a fresh
//! graph (timed as `build_s`) and time `compute_on` alone (lowering, running, fetching the
//! result; `compute_s`). The runtime is built once, before the first shape.
//!
//! ```text
//! cargo bench --bench compare_dask -- [--runtime embedded|redis] [--redis URL]
//!     [--shapes tree_k10,...,wordcount_64] [--repeats 3] [--text FILE] [--out FILE.jsonl]
//! ```
//!
//! Without `--text`, `wordcount_64` is skipped. `--runtime redis` needs `--redis URL`.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::Instant;

use dag::prelude::*;
use dag_test_support::{reduce_pairwise, sum_1_to};

#[task]
fn inc(x: u64) -> u64 {
    x + 1
}

#[task]
fn add(x: u64, y: u64) -> u64 {
    x + y
}

#[task]
fn source() -> u64 {
    0
}

#[task]
fn sum_list(xs: Vec<u64>) -> u64 {
    xs.iter().sum()
}

/// `Counter(re.findall(r"[a-z']+", chunk.lower()))`.
#[task]
fn tokenize_count(chunk: String) -> HashMap<String, u64> {
    count_words(&chunk)
}

/// Adds the chunks' counts up (a `Counter.update` loop).
#[task]
fn merge_counts(counters: Vec<HashMap<String, u64>>) -> HashMap<String, u64> {
    let mut total: HashMap<String, u64> = HashMap::new();
    for counter in counters {
        for (word, n) in counter {
            *total.entry(word).or_insert(0) += n;
        }
    }
    total
}

fn count_words(chunk: &str) -> HashMap<String, u64> {
    let lower = chunk.to_lowercase();
    let mut counts = HashMap::new();
    for word in lower
        .split(|c: char| !(c.is_ascii_lowercase() || c == '\''))
        .filter(|w| !w.is_empty())
    {
        *counts.entry(word.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// `split_chunks` of `dask_shapes.py`: cut at `len * i / n`, moved forward to the next
/// whitespace. (Positions are bytes here and characters there: the same for ASCII text.)
fn split_chunks(text: &str, n: usize) -> Vec<String> {
    let bytes = text.as_bytes();
    let len = bytes.len();
    let mut chunks = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..n {
        let mut cut = (len * i / n).max(start);
        while cut < len && !(text.is_char_boundary(cut) && bytes[cut].is_ascii_whitespace()) {
            cut += 1;
        }
        chunks.push(text[start..cut].to_owned());
        start = cut;
    }
    chunks.push(text[start..].to_owned());
    chunks
}

fn tree(k: u32) -> (Node<u64>, usize, u64) {
    let n = 1u64 << k;
    let root = reduce_pairwise((0..n).map(inc).collect(), |a, b| add(a, b));
    (root, 2 * n as usize - 1, sum_1_to(n))
}

fn chain(n: usize) -> (Node<u64>, usize, u64) {
    let mut x = inc(0);
    for _ in 1..n {
        x = inc(x);
    }
    (x, n, n as u64)
}

fn fan(width: usize) -> (Node<u64>, usize, u64) {
    let src = source();
    let children: Vec<Node<u64>> = (0..width).map(|_| inc(&src)).collect();
    (sum_list(children), width + 2, width as u64)
}

fn wordcount(chunks: &[String]) -> (Node<HashMap<String, u64>>, usize) {
    let counts: Vec<_> = chunks.iter().map(|c| tokenize_count(c.clone())).collect();
    (merge_counts(counts), chunks.len() + 1)
}

struct Args {
    runtime: String,
    redis: Option<String>,
    shapes: Vec<String>,
    repeats: usize,
    text: Option<String>,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        runtime: "embedded".into(),
        redis: None,
        shapes: "tree_k10,tree_k12,tree_k14,tree_k16,chain_10000,fan_10000,wordcount_64"
            .split(',')
            .map(String::from)
            .collect(),
        repeats: 3,
        text: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--bench" => {}
            "--runtime" => args.runtime = value()?,
            "--redis" => args.redis = Some(value()?),
            "--shapes" => args.shapes = value()?.split(',').map(String::from).collect(),
            "--repeats" => {
                args.repeats = value()?
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--repeats takes a positive integer")?
            }
            "--text" => args.text = Some(value()?),
            "--out" => args.out = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn json_list(xs: &[f64]) -> String {
    let items: Vec<String> = xs.iter().map(|x| format!("{x:.6}")).collect();
    format!("[{}]", items.join(", "))
}

fn main() {
    // `cargo test --benches` runs benches with `--test`; keep that quick.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let runtime = match args.runtime.as_str() {
        "embedded" => Runtime::builder().build()?,
        "redis" => {
            let url = args
                .redis
                .as_deref()
                .ok_or("--runtime redis needs --redis URL")?;
            Runtime::builder().redis(url).build()?
        }
        other => return Err(format!("--runtime is embedded or redis, not {other:?}").into()),
    };
    let chunks = match &args.text {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("could not read {path}: {e}"))?;
            let chunks = split_chunks(&text, 64);
            assert_eq!(chunks.concat(), text);
            Some(chunks)
        }
        None => None,
    };
    let mut out = match &args.out {
        Some(path) => Some(OpenOptions::new().create(true).append(true).open(path)?),
        None => None,
    };
    // A generic warm-up (worker threads, connections, page faults).
    tree(6).0.compute_on(&runtime)?;

    for name in &args.shapes {
        let mut build_s = Vec::new();
        let mut compute_s = Vec::new();
        let mut n_tasks = 0;
        let mut top5 = String::new();
        if let Some(k) = name.strip_prefix("tree_k") {
            let k: u32 = k.parse().map_err(|_| format!("bad shape {name}"))?;
            tree(4).0.compute_on(&runtime)?;
            for _ in 0..args.repeats {
                let t = Instant::now();
                let (sink, n, expected) = tree(k);
                build_s.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let result = sink.compute_on(&runtime)?;
                compute_s.push(t.elapsed().as_secs_f64());
                assert_eq!(result, expected, "{name}");
                n_tasks = n;
            }
        } else if name == "chain_10000" || name == "fan_10000" {
            let build: fn(usize) -> (Node<u64>, usize, u64) =
                if name == "chain_10000" { chain } else { fan };
            build(50).0.compute_on(&runtime)?;
            for _ in 0..args.repeats {
                let t = Instant::now();
                let (sink, n, expected) = build(10_000);
                build_s.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let result = sink.compute_on(&runtime)?;
                compute_s.push(t.elapsed().as_secs_f64());
                assert_eq!(result, expected, "{name}");
                n_tasks = n;
            }
        } else if name == "wordcount_64" {
            let Some(chunks) = &chunks else {
                eprintln!("[dag/{}] {name}: skipped (no --text FILE)", args.runtime);
                continue;
            };
            let expected = merge_counts_direct(chunks);
            let mut end = 20_000.min(chunks[0].len());
            while !chunks[0].is_char_boundary(end) {
                end -= 1;
            }
            let small = split_chunks(&chunks[0][..end], 8);
            wordcount(&small).0.compute_on(&runtime)?;
            for _ in 0..args.repeats {
                let t = Instant::now();
                let (sink, n) = wordcount(chunks);
                build_s.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let result = sink.compute_on(&runtime)?;
                compute_s.push(t.elapsed().as_secs_f64());
                assert!(result == expected, "{name}: the counts differ");
                n_tasks = n;
            }
            let mut pairs: Vec<(&String, &u64)> = expected.iter().collect();
            pairs.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
            let items: Vec<String> = pairs
                .iter()
                .take(5)
                .map(|(w, n)| format!("[\"{w}\", {n}]"))
                .collect();
            top5 = format!(", \"top5\": [{}]", items.join(", "));
        } else {
            return Err(format!("unknown shape {name}").into());
        }
        let med = median(&compute_s);
        let line = format!(
            "{{\"system\": \"dag\", \"scheduler\": \"{}\", \"workers\": {}, \"shape\": \"{name}\", \
             \"n_tasks\": {n_tasks}, \"status\": \"ok\", \"build_s\": {}, \"compute_s\": {}, \
             \"compute_median_s\": {med:.6}, \"tasks_per_s\": {:.1}, \"us_per_task\": {:.3}, \
             \"build_median_s\": {:.6}{top5}}}",
            args.runtime,
            runtime.workers(),
            json_list(&build_s),
            json_list(&compute_s),
            n_tasks as f64 / med,
            med * 1e6 / n_tasks as f64,
            median(&build_s),
        );
        println!("{line}");
        if let Some(out) = out.as_mut() {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// The word counts computed in a plain loop, to check the graph's result.
fn merge_counts_direct(chunks: &[String]) -> HashMap<String, u64> {
    let mut total: HashMap<String, u64> = HashMap::new();
    for chunk in chunks {
        for (word, n) in count_words(chunk) {
            *total.entry(word).or_insert(0) += n;
        }
    }
    total
}
