//! Word counts of a text: the text is cut into chunks, one task counts each chunk, one task
//! merges the counts.
//!
//! ```sh
//! cargo run --release --example wordcount                 # a generated 5 MB corpus
//! cargo run --release --example wordcount -- book.txt     # a file of your own
//! cargo run --release --example wordcount -- book.txt 32  # ... in 32 chunks
//! ```
//!
//! On worker processes sharing a Redis server (see the README's "Worker processes"):
//!
//! ```sh
//! cargo run --release --example wordcount -- --redis redis://127.0.0.1:6379 --workers 2
//! ```
//!
//! `--redis URL` (or `DAG_REDIS_URL`) alone sends the tasks to a pool of workers started by
//! hand with `--dag-worker`; `--workers N` starts N worker processes of this program instead.

use std::collections::HashMap;
use std::time::Instant;

use dag::prelude::*;

/// Counts the words of one chunk (lower-cased runs of letters and apostrophes).
#[task]
fn count_words(chunk: String) -> HashMap<String, u64> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    // Each word is lower-cased into this one buffer; a `String` is allocated per distinct word
    // only (`word.to_lowercase()` would allocate one per word: a million for 5 MB of text).
    let mut lower = String::new();
    for word in chunk
        .split(|c: char| !(c.is_alphabetic() || c == '\''))
        .filter(|w| !w.is_empty())
    {
        lower.clear();
        if word.is_ascii() {
            lower.push_str(word);
            lower.make_ascii_lowercase();
        } else {
            // `str::to_lowercase` knows context rules (a final capital sigma) that a
            // character-by-character mapping would miss.
            lower.push_str(&word.to_lowercase());
        }
        match counts.get_mut(lower.as_str()) {
            Some(n) => *n += 1,
            None => {
                counts.insert(lower.clone(), 1);
            }
        }
    }
    counts
}

/// Adds up the chunks' counts; returns (word, count) pairs, most frequent first.
#[task]
fn merge_counts(parts: Vec<HashMap<String, u64>>) -> Vec<(String, u64)> {
    let mut total: HashMap<String, u64> = HashMap::new();
    for part in parts {
        for (word, n) in part {
            *total.entry(word).or_insert(0) += n;
        }
    }
    let mut pairs: Vec<_> = total.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    pairs
}

fn main() {
    dag::worker::run_if_worker(); // a worker process serves here and exits
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().collect();
    let runtime = dag::worker::runtime_from_args(&mut args)?;
    let mut args = args.into_iter().skip(1);
    let (text, source) = match args.next() {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("could not read {path}: {e}"))?;
            (text, path)
        }
        None => (
            generated_corpus(5_000_000),
            "a generated 5 MB corpus".to_string(),
        ),
    };
    let chunks: usize =
        match args.next() {
            Some(n) => n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("the number of chunks must be a positive integer, not {n:?}")
            })?,
            None => 64,
        };

    let started = Instant::now();
    let counts: Vec<Node<HashMap<String, u64>>> =
        split(&text, chunks).into_iter().map(count_words).collect();
    let merged = merge_counts(counts);
    let pairs = merged.compute_on(&runtime)?;
    let elapsed = started.elapsed();

    let words: u64 = pairs.iter().map(|(_, n)| n).sum();
    println!(
        "{words} words ({} distinct) in {source}, {chunks} chunks, {:.3} s",
        pairs.len(),
        elapsed.as_secs_f64()
    );
    for (word, n) in pairs.iter().take(10) {
        println!("{n:>10}  {word}");
    }
    dag::worker::print_run_summary(&runtime);
    Ok(())
}

/// Cuts `text` into about `n` chunks at whitespace, so no word is split.
fn split(text: &str, n: usize) -> Vec<String> {
    let target = text.len().div_ceil(n).max(1);
    let mut chunks = Vec::with_capacity(n);
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = target.min(rest.len());
        while end < rest.len() && !rest.is_char_boundary(end) {
            end += 1;
        }
        end = rest[end..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |i| end + i);
        chunks.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    chunks
}

/// A deterministic English-like text of about `bytes` bytes (no randomness crate needed).
fn generated_corpus(bytes: usize) -> String {
    const WORDS: &[&str] = &[
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
        "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have",
        "an", "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has",
        "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "graph", "task",
        "worker", "redis", "node", "river", "mountain", "library", "lantern", "harbor", "meadow",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut text = String::with_capacity(bytes + 16);
    while text.len() < bytes {
        // xorshift64*: cheap and deterministic. Squaring the draw skews it towards common words.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as f64 / (1u64 << 31) as f64;
        text.push_str(WORDS[((r * r) * WORDS.len() as f64) as usize]);
        text.push(if state.is_multiple_of(13) { '\n' } else { ' ' });
    }
    text
}
