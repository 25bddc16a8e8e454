//! The shapes of `compare_dask.rs` on the two Rust baselines a user might pick instead of dag,
//! one JSON line per shape (the fields of `compare_dask`'s lines, from `shapes/mod.rs`):
//!
//! - `--system tokio`: one `tokio::spawn` per node and one `tokio::sync::oneshot` per edge, on
//!   a multi-thread runtime with 2 workers. `build_s` times creating the channels and the boxed
//!   futures; `compute_s` times spawning them all (from a task on the runtime, so they go to
//!   its local queues as a task-per-node program's would) and awaiting the sink.
//! - `--system dagx`: the `dagx` crate (`DagRunner`, `task_fn`, `depends_on`, `run` spawning
//!   on the same 2-worker tokio runtime). `build_s` times the `add_task`/`depends_on` calls;
//!   `compute_s` times `run` and reading the sink's output. dagx takes at most 8 dependencies
//!   per task and no list of them, so the fan's `sum_list` and the word count's merge cannot be
//!   tasks: they run after `run`, on the outputs read with `DagRunner::get`, inside the timing
//!   (the JSON line's `note` says so).
//!
//! Every result is checked against the value dag computes (tree sum, chain end, fan sum, the
//! word counts).
//!
//! ```text
//! cargo bench --bench baselines -- [--system tokio|dagx] [--shapes tree_k10,...,wordcount_64]
//!     [--repeats 3] [--text FILE] [--out FILE.jsonl]
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use dagx::{task_fn, DagRunner, TaskHandle};
use tokio::sync::oneshot;

mod shapes;
use shapes::{Args, Record};

/// Worker threads of the tokio runtime: one per core, as dag's embedded default.
const WORKERS: usize = 2;

type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

fn main() {
    if shapes::is_test_run() {
        return;
    }
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse("--system", "tokio")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .build()?;
    let chunks = match &args.text {
        Some(path) => Some(shapes::read_chunks(path)?),
        None => None,
    };
    let system: &dyn System = match args.variant.as_str() {
        "tokio" => &TaskPerNode,
        "dagx" => &Dagx,
        other => return Err(format!("--system is tokio or dagx, not {other:?}").into()),
    };
    // A generic warm-up (worker threads, page faults).
    system.tree(&rt, 6)?;

    for name in &args.shapes {
        let mut build_s = Vec::new();
        let mut compute_s = Vec::new();
        let mut n_tasks = 0;
        let mut counts = None;
        let mut note = None;
        if let Some(k) = shapes::tree_k(name) {
            let k = k?;
            system.tree(&rt, 4)?;
            for _ in 0..args.repeats {
                let timed = system.tree(&rt, k)?;
                let expected = shapes::sum_1_to(1 << k);
                check(name, timed.value, expected)?;
                build_s.push(timed.build_s);
                compute_s.push(timed.compute_s);
                n_tasks = (2usize << k) - 1;
            }
        } else if name == "chain_10000" {
            system.chain(&rt, 50)?;
            for _ in 0..args.repeats {
                let timed = system.chain(&rt, shapes::CHAIN_LEN)?;
                check(name, timed.value, shapes::CHAIN_LEN as u64)?;
                build_s.push(timed.build_s);
                compute_s.push(timed.compute_s);
                n_tasks = shapes::CHAIN_LEN;
            }
        } else if name == "fan_10000" {
            system.fan(&rt, 50)?;
            for _ in 0..args.repeats {
                let timed = system.fan(&rt, shapes::FAN_WIDTH)?;
                check(name, timed.value, shapes::FAN_WIDTH as u64)?;
                build_s.push(timed.build_s);
                compute_s.push(timed.compute_s);
                n_tasks = shapes::FAN_WIDTH + 2;
            }
            note = system.fan_in_note();
        } else if name == "wordcount_64" {
            let Some(chunks) = &chunks else {
                eprintln!("[{}] {name}: skipped (no --text FILE)", args.variant);
                continue;
            };
            let expected = shapes::merge_counts_direct(chunks);
            system.wordcount(&rt, &shapes::small_chunks(chunks))?;
            for _ in 0..args.repeats {
                let timed = system.wordcount(&rt, chunks)?;
                if timed.value != expected {
                    return Err(format!("{name}: wrong result: the counts differ").into());
                }
                build_s.push(timed.build_s);
                compute_s.push(timed.compute_s);
                n_tasks = chunks.len() + 1;
            }
            counts = Some(expected);
            note = system.fan_in_note();
        } else {
            return Err(format!("unknown shape {name}").into());
        }
        Record {
            system: &args.variant,
            scheduler: system.scheduler(),
            workers: WORKERS,
            shape: name,
            n_tasks,
            build_s,
            compute_s,
            top5: counts.as_ref(),
            note,
        }
        .emit(args.out.as_deref())?;
    }
    Ok(())
}

/// One run of a shape: its value and how long building and running took.
struct Timed<T> {
    value: T,
    build_s: f64,
    compute_s: f64,
}

/// A shape's run, or what went wrong.
type Run<T> = Result<Timed<T>, String>;

/// A system that runs the four shapes.
trait System {
    /// The `scheduler` field of the JSON lines.
    fn scheduler(&self) -> &'static str;
    /// What the fan-in shapes do differently on this system, if anything.
    fn fan_in_note(&self) -> Option<&'static str> {
        None
    }
    fn tree(&self, rt: &tokio::runtime::Runtime, k: u32) -> Run<u64>;
    fn chain(&self, rt: &tokio::runtime::Runtime, n: usize) -> Run<u64>;
    fn fan(&self, rt: &tokio::runtime::Runtime, width: usize) -> Run<u64>;
    fn wordcount(
        &self,
        rt: &tokio::runtime::Runtime,
        chunks: &[String],
    ) -> Run<HashMap<String, u64>>;
}

/// A wrong result ends the bench with an error naming the shape.
fn check<T: PartialEq + std::fmt::Debug>(shape: &str, got: T, expected: T) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "{shape}: wrong result: {got:?}, expected {expected:?}"
        ))
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

// --- tokio, one task per node -------------------------------------------------------------

/// One `tokio::spawn` per node, one oneshot per edge.
struct TaskPerNode;

/// The futures of a graph, in topological order, and the receiver of its sink.
struct Graph<T> {
    jobs: Vec<Job>,
    sink: oneshot::Receiver<T>,
}

impl<T: Send + 'static> Graph<T> {
    /// Adds a node: its future awaits its inputs and sends its output.
    fn job(&mut self, job: impl Future<Output = ()> + Send + 'static) {
        self.jobs.push(Box::pin(job));
    }
}

/// Spawns every job from a task on the runtime and awaits the sink.
fn execute<T: Send + 'static>(rt: &tokio::runtime::Runtime, graph: Graph<T>) -> Result<T, String> {
    let Graph { jobs, sink } = graph;
    rt.block_on(async move {
        tokio::spawn(async move {
            for job in jobs {
                tokio::spawn(job);
            }
            sink.await.ok()
        })
        .await
        .ok()
        .flatten()
    })
    .ok_or_else(|| "the sink's channel closed without a value".to_string())
}

/// Times `build` and then running what it built.
fn timed<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    build: impl FnOnce() -> Graph<T>,
) -> Run<T> {
    let t = Instant::now();
    let graph = build();
    let build_s = secs(t);
    let t = Instant::now();
    let value = execute(rt, graph)?;
    Ok(Timed {
        value,
        build_s,
        compute_s: secs(t),
    })
}

/// A placeholder receiver, replaced before the graph runs.
fn placeholder<T>() -> oneshot::Receiver<T> {
    oneshot::channel().1
}

impl System for TaskPerNode {
    fn scheduler(&self) -> &'static str {
        "task-per-node"
    }

    fn tree(&self, rt: &tokio::runtime::Runtime, k: u32) -> Run<u64> {
        timed(rt, || {
            let n = 1u64 << k;
            let mut graph = Graph {
                jobs: Vec::with_capacity(2 * n as usize),
                sink: placeholder(),
            };
            let leaves: Vec<oneshot::Receiver<u64>> = (0..n)
                .map(|i| {
                    let (tx, rx) = oneshot::channel();
                    graph.job(async move {
                        let _ = tx.send(i + 1);
                    });
                    rx
                })
                .collect();
            let root = shapes::pairwise(leaves, |a, b| {
                let (tx, rx) = oneshot::channel();
                graph.job(async move {
                    if let (Ok(a), Ok(b)) = (a.await, b.await) {
                        let _ = tx.send(a + b);
                    }
                });
                rx
            });
            graph.sink = root.unwrap_or_else(placeholder);
            graph
        })
    }

    fn chain(&self, rt: &tokio::runtime::Runtime, n: usize) -> Run<u64> {
        timed(rt, || {
            let mut graph = Graph {
                jobs: Vec::with_capacity(n),
                sink: placeholder(),
            };
            let (tx, mut prev) = oneshot::channel();
            graph.job(async move {
                let _ = tx.send(1u64);
            });
            for _ in 1..n {
                let (tx, rx) = oneshot::channel();
                let input = std::mem::replace(&mut prev, rx);
                graph.job(async move {
                    if let Ok(x) = input.await {
                        let _ = tx.send(x + 1);
                    }
                });
            }
            graph.sink = prev;
            graph
        })
    }

    fn fan(&self, rt: &tokio::runtime::Runtime, width: usize) -> Run<u64> {
        timed(rt, || {
            let mut graph = Graph {
                jobs: Vec::with_capacity(width + 2),
                sink: placeholder(),
            };
            let mut to_children = Vec::with_capacity(width);
            let mut to_sink = Vec::with_capacity(width);
            for _ in 0..width {
                let (src_tx, src_rx) = oneshot::channel::<u64>();
                let (tx, rx) = oneshot::channel::<u64>();
                to_children.push(src_tx);
                to_sink.push(rx);
                graph.job(async move {
                    if let Ok(x) = src_rx.await {
                        let _ = tx.send(x + 1);
                    }
                });
            }
            // The source first, as a topological order has it.
            graph.jobs.insert(
                0,
                Box::pin(async move {
                    for tx in to_children {
                        let _ = tx.send(0);
                    }
                }),
            );
            let (tx, rx) = oneshot::channel();
            graph.job(async move {
                let mut sum = 0;
                for rx in to_sink {
                    match rx.await {
                        Ok(x) => sum += x,
                        Err(_) => return,
                    }
                }
                let _ = tx.send(sum);
            });
            graph.sink = rx;
            graph
        })
    }

    fn wordcount(
        &self,
        rt: &tokio::runtime::Runtime,
        chunks: &[String],
    ) -> Run<HashMap<String, u64>> {
        timed(rt, || {
            let mut graph = Graph {
                jobs: Vec::with_capacity(chunks.len() + 1),
                sink: placeholder(),
            };
            let mut parts = Vec::with_capacity(chunks.len());
            for chunk in chunks {
                // The graph owns its input, as dag's nodes own their constants.
                let chunk = chunk.clone();
                let (tx, rx) = oneshot::channel();
                parts.push(rx);
                graph.job(async move {
                    let _ = tx.send(shapes::count_words(&chunk));
                });
            }
            let (tx, rx) = oneshot::channel();
            graph.job(async move {
                let mut counts = Vec::with_capacity(parts.len());
                for rx in parts {
                    match rx.await {
                        Ok(c) => counts.push(c),
                        Err(_) => return,
                    }
                }
                let _ = tx.send(shapes::merge_counts(counts));
            });
            graph.sink = rx;
            graph
        })
    }
}

// --- dagx ---------------------------------------------------------------------------------

/// The `dagx` crate, spawning its tasks on the same tokio runtime.
struct Dagx;

/// Runs `dag` on `rt`, spawning each task with `tokio::spawn`.
fn dagx_run(rt: &tokio::runtime::Runtime, dag: &DagRunner) -> Result<(), String> {
    rt.block_on(dag.run(|fut| {
        tokio::spawn(fut);
    }))
    .map_err(|e| format!("dagx: {e}"))
}

fn dagx_get<T: Clone + Send + Sync + 'static>(
    dag: &DagRunner,
    handle: &TaskHandle<T>,
) -> Result<T, String> {
    dag.get(handle).map_err(|e| format!("dagx: {e}"))
}

impl System for Dagx {
    fn scheduler(&self) -> &'static str {
        "tokio-2"
    }

    fn fan_in_note(&self) -> Option<&'static str> {
        Some("no list dependencies in dagx: the sink's sum or merge runs after run() on the outputs read with get(), inside the timing")
    }

    fn tree(&self, rt: &tokio::runtime::Runtime, k: u32) -> Run<u64> {
        let t = Instant::now();
        let dag = DagRunner::new();
        let leaves: Vec<TaskHandle<u64>> = (0..1u64 << k)
            .map(|i| {
                dag.add_task(task_fn(move |_: ()| async move { i + 1 }))
                    .into()
            })
            .collect();
        let root = shapes::pairwise(leaves, |a, b| {
            dag.add_task(task_fn(|(a, b): (u64, u64)| async move { a + b }))
                .depends_on((&a, &b))
        })
        .ok_or("an empty tree")?;
        let build_s = secs(t);
        let t = Instant::now();
        dagx_run(rt, &dag)?;
        let value = dagx_get(&dag, &root)?;
        Ok(Timed {
            value,
            build_s,
            compute_s: secs(t),
        })
    }

    fn chain(&self, rt: &tokio::runtime::Runtime, n: usize) -> Run<u64> {
        let t = Instant::now();
        let dag = DagRunner::new();
        let mut x: TaskHandle<u64> = dag.add_task(task_fn(|_: ()| async { 1u64 })).into();
        for _ in 1..n {
            x = dag
                .add_task(task_fn(|x: u64| async move { x + 1 }))
                .depends_on(x);
        }
        let build_s = secs(t);
        let t = Instant::now();
        dagx_run(rt, &dag)?;
        let value = dagx_get(&dag, &x)?;
        Ok(Timed {
            value,
            build_s,
            compute_s: secs(t),
        })
    }

    fn fan(&self, rt: &tokio::runtime::Runtime, width: usize) -> Run<u64> {
        let t = Instant::now();
        let dag = DagRunner::new();
        let src: TaskHandle<u64> = dag.add_task(task_fn(|_: ()| async { 0u64 })).into();
        let children: Vec<TaskHandle<u64>> = (0..width)
            .map(|_| {
                dag.add_task(task_fn(|x: u64| async move { x + 1 }))
                    .depends_on(src)
            })
            .collect();
        let build_s = secs(t);
        let t = Instant::now();
        dagx_run(rt, &dag)?;
        let mut sum = 0;
        for child in &children {
            sum += dagx_get(&dag, child)?;
        }
        Ok(Timed {
            value: sum,
            build_s,
            compute_s: secs(t),
        })
    }

    fn wordcount(
        &self,
        rt: &tokio::runtime::Runtime,
        chunks: &[String],
    ) -> Run<HashMap<String, u64>> {
        let t = Instant::now();
        let dag = DagRunner::new();
        let parts: Vec<TaskHandle<HashMap<String, u64>>> = chunks
            .iter()
            .map(|chunk| {
                let chunk = chunk.clone();
                dag.add_task(task_fn(move |_: ()| {
                    let counts = shapes::count_words(&chunk);
                    async move { counts }
                }))
                .into()
            })
            .collect();
        let build_s = secs(t);
        let t = Instant::now();
        dagx_run(rt, &dag)?;
        let mut counts = Vec::with_capacity(parts.len());
        for part in &parts {
            counts.push(dagx_get(&dag, part)?);
        }
        let value = shapes::merge_counts(counts);
        Ok(Timed {
            value,
            build_s,
            compute_s: secs(t),
        })
    }
}
