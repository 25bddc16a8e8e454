//! What the peer benches share: the word-count text cut into chunks, the word count itself and
//! its expected totals, the command line, and the JSON line each shape prints.
//!
//! The shapes mirror `../shared/peers/dask_shapes.py` one for one (see `compare_dask.rs` for
//! the list); every bench that prints these lines (`compare_dask`, `baselines`) goes through
//! this module, so `benches/peers.sh` reads all of them with one parser.

// Each bench target includes this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;

/// Every shape, in the order the table lists them.
pub const ALL_SHAPES: &str =
    "tree_k10,tree_k12,tree_k14,tree_k16,chain_10000,fan_10000,wordcount_64";

/// Width of the fan and length of the chain.
pub const FAN_WIDTH: usize = 10_000;
/// Length of the chain.
pub const CHAIN_LEN: usize = 10_000;

/// `Counter(re.findall(r"[a-z']+", chunk.lower()))`.
pub fn count_words(chunk: &str) -> HashMap<String, u64> {
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

/// Adds counts up (a `Counter.update` loop).
pub fn merge_counts(
    counters: impl IntoIterator<Item = HashMap<String, u64>>,
) -> HashMap<String, u64> {
    let mut total: HashMap<String, u64> = HashMap::new();
    for counter in counters {
        for (word, n) in counter {
            *total.entry(word).or_insert(0) += n;
        }
    }
    total
}

/// The word counts computed in a plain loop, to check a graph's result.
pub fn merge_counts_direct(chunks: &[String]) -> HashMap<String, u64> {
    merge_counts(chunks.iter().map(|c| count_words(c)))
}

/// `split_chunks` of `dask_shapes.py`: cut at `len * i / n`, moved forward to the next
/// whitespace. (Positions are bytes here and characters there: the same for ASCII text.)
pub fn split_chunks(text: &str, n: usize) -> Vec<String> {
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

/// Reads `path` and cuts it into 64 chunks (the `wordcount_64` shape).
pub fn read_chunks(path: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("could not read {path}: {e}"))?;
    let chunks = split_chunks(&text, 64);
    if chunks.concat() != text {
        return Err("the chunks do not add up to the text".into());
    }
    Ok(chunks)
}

/// A few chunks cut from the start of the first one: the word count's warm-up.
pub fn small_chunks(chunks: &[String]) -> Vec<String> {
    let first = chunks.first().map(String::as_str).unwrap_or("");
    let mut end = 20_000.min(first.len());
    while !first.is_char_boundary(end) {
        end -= 1;
    }
    split_chunks(&first[..end], 8)
}

/// Combines `items` pairwise, level by level, into one (as `dag_test_support::reduce_pairwise`,
/// but by value: channel receivers cannot be shared).
pub fn pairwise<N>(items: Vec<N>, mut combine: impl FnMut(N, N) -> N) -> Option<N> {
    let mut level = items;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(left) = it.next() {
            match it.next() {
                Some(right) => next.push(combine(left, right)),
                None => next.push(left),
            }
        }
        level = next;
    }
    level.pop()
}

/// `1 + 2 + ... + n`: what a tree of `inc(i)` leaves, `i` in `0..n`, adds up to.
pub const fn sum_1_to(n: u64) -> u64 {
    n * (n + 1) / 2
}

/// The number of leaves of `tree_kK`, or `None` if `name` is not a tree.
pub fn tree_k(name: &str) -> Option<Result<u32, String>> {
    name.strip_prefix("tree_k")
        .map(|k| k.parse().map_err(|_| format!("bad shape {name}")))
}

/// The command line every peer bench takes.
pub struct Args {
    /// Which variant of the system (`embedded`, `redis`, `pool`; `tokio`, `dagx`).
    pub variant: String,
    pub redis: Option<String>,
    pub shapes: Vec<String>,
    pub repeats: usize,
    pub text: Option<String>,
    pub out: Option<String>,
}

impl Args {
    /// Parses `--<variant_flag> V --redis URL --shapes LIST --repeats N --text FILE --out FILE`.
    pub fn parse(variant_flag: &str, default_variant: &str) -> Result<Args, String> {
        let mut args = Args {
            variant: default_variant.into(),
            redis: None,
            shapes: ALL_SHAPES.split(',').map(String::from).collect(),
            repeats: 3,
            text: None,
            out: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--bench" => {}
                flag if flag == variant_flag => args.variant = value()?,
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
}

/// `cargo test --benches` runs benches with `--test`: they should return at once then.
pub fn is_test_run() -> bool {
    std::env::args().any(|a| a == "--test" || a == "--list")
}

/// The measurements of one shape on one system, printed as one JSON line with the fields of
/// `bench_dask.py`'s lines.
pub struct Record<'a> {
    pub system: &'a str,
    pub scheduler: &'a str,
    pub workers: usize,
    pub shape: &'a str,
    pub n_tasks: usize,
    pub build_s: Vec<f64>,
    pub compute_s: Vec<f64>,
    /// The five most frequent words of a word count, with their counts.
    pub top5: Option<&'a HashMap<String, u64>>,
    /// What differs from the shape's definition on this system, if anything.
    pub note: Option<&'a str>,
}

impl Record<'_> {
    /// Prints the line and appends it to `out` if given.
    pub fn emit(&self, out: Option<&str>) -> std::io::Result<()> {
        let med = median(&self.compute_s);
        let top5 = match self.top5 {
            Some(counts) => {
                let mut pairs: Vec<(&String, &u64)> = counts.iter().collect();
                pairs.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
                let items: Vec<String> = pairs
                    .iter()
                    .take(5)
                    .map(|(w, n)| format!("[\"{w}\", {n}]"))
                    .collect();
                format!(", \"top5\": [{}]", items.join(", "))
            }
            None => String::new(),
        };
        let note = match self.note {
            Some(note) => format!(", \"note\": \"{}\"", note.replace('"', "'")),
            None => String::new(),
        };
        let line = format!(
            "{{\"system\": \"{}\", \"scheduler\": \"{}\", \"workers\": {}, \"shape\": \"{}\", \
             \"n_tasks\": {}, \"status\": \"ok\", \"build_s\": {}, \"compute_s\": {}, \
             \"compute_median_s\": {med:.6}, \"tasks_per_s\": {:.1}, \"us_per_task\": {:.3}, \
             \"build_median_s\": {:.6}{top5}{note}}}",
            self.system,
            self.scheduler,
            self.workers,
            self.shape,
            self.n_tasks,
            json_list(&self.build_s),
            json_list(&self.compute_s),
            self.n_tasks as f64 / med,
            med * 1e6 / self.n_tasks as f64,
            median(&self.build_s),
        );
        println!("{line}");
        if let Some(path) = out {
            let mut file = OpenOptions::new().create(true).append(true).open(path)?;
            writeln!(file, "{line}")?;
        }
        Ok(())
    }
}

/// The median of `xs` (0 for none).
pub fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
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
