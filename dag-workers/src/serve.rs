//! The serving loop: worker threads reading the invocation stream and running the worker step.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dag_runtime::engine::fault::{self, FaultPoint};
use dag_runtime::engine::{fail_stored, run_invocation, Invocation, WorkerContext};
use dag_runtime::metrics::WorkerMetrics;
use dag_runtime::store::{
    DagId, InvocationStream, RedisConfig, RedisStore, Store, StreamEntry, TaskErrorRecord,
    ThreadConnections,
};
use dag_runtime::task::TaskPolicy;
use dag_runtime::{process_name, DagError, Locality};

use crate::dags::LoadedDags;
use crate::options::WorkerOptions;
use crate::publish::{Publisher, StreamDelegate};
use crate::signals::{install_signal_handlers, parent_pid, request_stop, stop_requested};

/// How long a stopping worker waits for its last metrics upload.
const METRICS_SHUTDOWN_LIMIT: Duration = Duration::from_secs(5);

/// How long one `XREADGROUP` waits before the thread checks whether it should stop.
pub(crate) const READ_BLOCK: Duration = Duration::from_millis(250);

/// Consumers that have had nothing pending and no activity for this many leases are removed
/// from the group: killed workers' names would otherwise accumulate there.
const STALE_CONSUMER_LEASES: u32 = 6;

/// An invocation delivered this many times, each time to a worker that died before finishing
/// it (killed, out of memory, or a task that crashes the process), fails its DAG instead of
/// killing workers forever.
pub const MAX_DELIVERIES: u64 = 3;

/// Serves as a worker with `options` until stopped ([`request_stop`], SIGTERM, Ctrl-C), or runs
/// the one invocation of [`WorkerOptions::invocation`]. Returns when done; fails if Redis
/// cannot be reached.
pub fn serve(options: WorkerOptions) -> Result<(), DagError> {
    install_signal_handlers();
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("dag-worker-io")
        .enable_all()
        .build()
        .map_err(|e| DagError::Runtime(format!("could not start the I/O runtime: {e}")))?;
    let config = RedisConfig {
        output_cache_bytes: options.output_cache,
        ..RedisConfig::default()
    };
    let store = io.block_on(options.redis.connect(config))?;
    let stream = InvocationStream::new(store.clone(), options.stream.clone());
    let metrics = match &options.metrics {
        None => None,
        Some(storage) => {
            let recorder = storage
                .start_recorder(
                    process_name(),
                    // On a cluster, metrics "in the DAG's store" stay in this process (their
                    // writes span slots; not supported there yet).
                    options.redis.server_url(),
                    io.handle().clone(),
                )
                .map_err(|e| DagError::Runtime(e.to_string()))?;
            let cold_start = options
                .spawned_at
                .map(|at| SystemTime::now().duration_since(at).unwrap_or_default());
            Some(WorkerMetrics::new(recorder, &process_name(), cold_start))
        }
    };
    let process = Arc::new(Process {
        store: store.clone(),
        stream: stream.clone(),
        handle: io.handle().clone(),
        publisher: Publisher::start(io.handle(), stream.clone()),
        dags: LoadedDags::default(),
        running: Arc::new(Mutex::new(HashMap::new())),
        lease: options.lease,
        metrics,
        locality: options.locality,
    });
    io.spawn(renew_leases(
        stream.clone(),
        Arc::downgrade(&process.running),
        options.lease,
    ));
    let result = match &options.invocation {
        Some((dag, node)) => {
            process.run_one(dag, *node, &options.claim, options.spawned_at);
            Ok(())
        }
        None => serve_pool(&process, &options),
    };
    process.publisher.flush();
    // A graceful stop uploads every record whatever the upload strategy.
    if let Some(metrics) = &process.metrics {
        metrics.recorder().shutdown(METRICS_SHUTDOWN_LIMIT);
    }
    drop(process);
    io.shutdown_timeout(Duration::from_secs(1));
    result
}

fn serve_pool(process: &Arc<Process>, options: &WorkerOptions) -> Result<(), DagError> {
    process.handle.block_on(process.stream.create_group())?;
    let id = process_name();
    eprintln!(
        "dag worker {id}: serving stream `{}` at {} with {} threads",
        options.stream,
        process.store.addr(),
        options.concurrency
    );
    if let Some(spawned_at) = options.spawned_at {
        let cold = SystemTime::now()
            .duration_since(spawned_at)
            .unwrap_or_default();
        let _ = process
            .handle
            .block_on(process.stream.record_cold_start(cold));
    }
    let threads: Vec<_> = (0..options.concurrency)
        .map(|i| {
            let process = Arc::clone(process);
            let parent = options.parent_pid;
            let consumer = format!("{id}/t{i}");
            std::thread::Builder::new()
                .name(format!("dag-worker-{i}"))
                .spawn(move || process.serve_thread(consumer, parent))
                .map_err(|e| DagError::Runtime(format!("could not start a worker thread: {e}")))
        })
        .collect::<Result<_, _>>()?;
    // Wait for the threads; once a stop is requested, for at most the grace period.
    let mut stop_seen: Option<Instant> = None;
    while !threads.iter().all(|t| t.is_finished()) {
        if stop_requested() {
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if since.elapsed() >= options.grace {
                let running = process
                    .running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len();
                eprintln!(
                    "dag worker {id}: stopping after the grace period of {:?} with {running} \
                     invocations unfinished; other workers take them over after their lease",
                    options.grace
                );
                return Err(DagError::Runtime(format!(
                    "stopped with {running} invocations unfinished after the grace period of {:?}",
                    options.grace
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut first_error = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(_) => {
                first_error.get_or_insert(DagError::Runtime("a worker thread panicked".into()));
            }
        }
    }
    eprintln!("dag worker {id}: stopped");
    first_error.map_or(Ok(()), Err)
}

/// What the threads of one worker process share.
pub(crate) struct Process {
    store: RedisStore,
    stream: InvocationStream,
    handle: tokio::runtime::Handle,
    publisher: Publisher,
    dags: LoadedDags,
    /// The stream entry each worker thread (consumer) is running: their leases are renewed.
    running: Arc<Mutex<HashMap<String, String>>>,
    lease: Duration,
    /// This process's metrics recorder, when metrics are on.
    metrics: Option<WorkerMetrics>,
    /// Task clustering and delayed I/O of large outputs.
    locality: Locality,
}

/// Renews the lease of every invocation this process runs, every third of `lease`, until the
/// process's state is dropped. A renewal that fails (Redis away) is retried on the next tick;
/// missing a few only risks a duplicate run, which at-least-once execution allows. Now and
/// then it also removes the group's consumers that killed workers left behind.
async fn renew_leases(
    stream: InvocationStream,
    running: std::sync::Weak<Mutex<HashMap<String, String>>>,
    lease: Duration,
) {
    let period = (lease / 3).max(Duration::from_millis(1));
    let prune_every = 3 * STALE_CONSUMER_LEASES;
    let mut ticks = 0u32;
    loop {
        tokio::time::sleep(period).await;
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(prune_every) {
            if let Err(e) = stream.prune_consumers(lease * STALE_CONSUMER_LEASES).await {
                eprintln!("dag worker {}: {e}", process_name());
            }
        }
        let Some(running) = running.upgrade() else {
            return;
        };
        let entries: Vec<(String, String)> = running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(consumer, id)| (consumer.clone(), id.clone()))
            .collect();
        drop(running);
        if let Err(e) = stream.keep_alive(&entries).await {
            eprintln!("dag worker {}: {e}", process_name());
        }
    }
}

impl Process {
    fn context(&self, name: String) -> WorkerContext {
        WorkerContext {
            store: Arc::new(self.store.clone()),
            io: self.handle.clone(),
            metrics: self.metrics.as_ref().map(|m| m.for_worker(&name)),
            name,
            policy: TaskPolicy::DEFAULT,
            locality: self.locality,
        }
    }

    /// One worker thread: reads and runs invocations until a stop. A panic that escapes the
    /// worker step's own guard (a bug) does not take the thread's share of the pool with it:
    /// the thread stops renewing the lease of what it ran, so another worker takes that over,
    /// and starts reading again.
    fn serve_thread(&self, consumer: String, parent: Option<u32>) -> Result<(), DagError> {
        loop {
            match catch_unwind(AssertUnwindSafe(|| self.read_and_run(&consumer, parent))) {
                Ok(result) => return result,
                Err(_) => {
                    self.running_entry(&consumer, None);
                    eprintln!(
                        "dag worker {consumer}: the thread panicked; its invocation is left to \
                         be taken over after its lease, and it reads again"
                    );
                    if stop_requested() {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn read_and_run(&self, consumer: &str, parent: Option<u32>) -> Result<(), DagError> {
        // This thread only waits on store calls and runs task bodies: the worker steps' round
        // trips go on a connection of its own, without a hand-off to the I/O thread and back.
        let _direct = ThreadConnections::enter();
        let ctx = self.context(consumer.to_owned());
        let mut reader = self.handle.block_on(self.stream.reader(consumer))?;
        let mut failures = 0u32;
        // Finished entries, acknowledged together with the next read (one round trip).
        let mut finished: Vec<String> = Vec::new();
        let mut next_takeover = Instant::now() + self.takeover_period();
        while !stop_requested() {
            if parent.is_some_and(|p| parent_pid() != p) {
                // The client that started this worker has gone: nobody waits for its DAGs.
                request_stop();
                break;
            }
            // Now and then, before reading new work, take over the invocations of dead workers.
            let entries = if Instant::now() >= next_takeover {
                next_takeover = Instant::now() + self.takeover_period();
                let take_over = reader.ack_and_take_over_stale(&finished, self.lease, 1);
                self.handle.block_on(take_over)
            } else {
                let read = reader.ack_and_read(&finished, 1, READ_BLOCK);
                self.handle
                    .block_on(read)
                    .map(|entries| entries.into_iter().map(|e| (e, 1)).collect())
            };
            let entries = match entries {
                Ok(entries) => {
                    failures = 0;
                    finished.clear();
                    entries
                }
                Err(e) => {
                    failures += 1;
                    eprintln!("dag worker {}: {e}; retrying", ctx.name);
                    std::thread::sleep(Duration::from_millis(200 * u64::from(failures.min(10))));
                    continue;
                }
            };
            for (entry, deliveries) in entries {
                if deliveries > MAX_DELIVERIES {
                    self.give_up(&ctx, &entry, deliveries);
                } else {
                    self.running_entry(consumer, Some(&entry.id));
                    self.run_entry(&ctx, &entry);
                    // Every child this invocation queued is in the stream before it is
                    // acknowledged.
                    self.publisher.flush();
                    fault::reached(FaultPoint::BeforeAck);
                    self.running_entry(consumer, None);
                }
                finished.push(entry.id);
            }
        }
        if let Err(e) = self.handle.block_on(self.stream.ack(&finished)) {
            eprintln!("dag worker {}: {e}", ctx.name);
        }
        let _ = self.handle.block_on(reader.remove_consumer());
        Ok(())
    }

    fn run_entry(&self, ctx: &WorkerContext, entry: &StreamEntry) {
        match self.load(ctx, &entry.dag) {
            Ok(Some(dag)) if (entry.node as usize) < dag.plan.nodes.len() => {
                let delegate = StreamDelegate(&self.publisher);
                // The entry's id is this run's claim: if this process dies, whoever re-runs
                // the entry gets back the children this run made ready.
                let invocation = Invocation::fetching(entry.node);
                run_invocation(ctx, &dag, invocation, &delegate, &entry.id);
            }
            Ok(Some(_)) => eprintln!(
                "dag worker {}: DAG {} has no node {}; skipping the invocation",
                ctx.name, entry.dag, entry.node
            ),
            Ok(None) => {} // the DAG has ended
            Err(e) => self.fail_load(ctx, entry, e),
        }
    }

    /// Records which entry `consumer` runs (`None`: nothing), for the lease renewal.
    fn running_entry(&self, consumer: &str, entry: Option<&str>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match entry {
            Some(id) => running.insert(consumer.to_owned(), id.to_owned()),
            None => running.remove(consumer),
        };
    }

    /// How long a thread reads new work before it looks for dead workers' invocations again:
    /// half a lease, with jitter so that a pool's threads do not all look at once.
    fn takeover_period(&self) -> Duration {
        self.lease.mul_f64(0.5 + fastrand::f64() * 0.25)
    }

    /// Fails the DAG of an invocation whose workers kept dying on it.
    fn give_up(&self, ctx: &WorkerContext, entry: &StreamEntry, deliveries: u64) {
        let died = deliveries - 1;
        let task = match self.handle.block_on(self.store.get_plan(&entry.dag)) {
            Ok(Some(plan)) if (entry.node as usize) < plan.nodes.len() => {
                plan.task_name(entry.node)
            }
            Ok(Some(_)) | Err(_) => String::new(),
            Ok(None) => return, // the DAG has ended
        };
        let message = format!(
            "{died} worker processes died while running node {} (task `{task}`) and never \
             finished it (killed, out of memory, or the task crashes the process); \
             giving up after {deliveries} deliveries",
            entry.node
        );
        eprintln!("dag worker {}: {message}", ctx.name);
        self.fail_load(ctx, entry, DagError::WorkerLost { task, message });
    }

    /// Runs one invocation, the whole life of a process per invocation.
    fn run_one(&self, dag: &DagId, node: u32, claim: &str, spawned_at: Option<SystemTime>) {
        let ctx = self.context(format!("{}/once", process_name()));
        let loaded = self.load(&ctx, dag);
        if let Some(spawned_at) = spawned_at {
            let cold = SystemTime::now()
                .duration_since(spawned_at)
                .unwrap_or_default();
            if let Err(e) = self.handle.block_on(self.stream.record_cold_start(cold)) {
                eprintln!("dag worker {}: {e}", ctx.name);
            }
        }
        let entry = StreamEntry {
            id: String::new(),
            dag: dag.clone(),
            node,
        };
        match loaded {
            Ok(Some(loaded)) if (node as usize) < loaded.plan.nodes.len() => {
                let delegate = StreamDelegate(&self.publisher);
                run_invocation(&ctx, &loaded, Invocation::fetching(node), &delegate, claim);
            }
            Ok(_) => {}
            Err(e) => self.fail_load(&ctx, &entry, e),
        }
    }

    /// The DAG, loaded and checked (cached per process); `None` if it ended.
    fn load(
        &self,
        ctx: &WorkerContext,
        dag: &DagId,
    ) -> Result<Option<Arc<dag_runtime::engine::LoadedDag>>, DagError> {
        self.handle
            .block_on(self.dags.get(&self.store, dag, &ctx.name))
    }

    /// Records why this worker cannot run the DAG of `entry` as the failure of the DAG its
    /// client waits for (the top of a map's child DAG; see [`fail_stored`]).
    fn fail_load(&self, ctx: &WorkerContext, entry: &StreamEntry, error: DagError) {
        let record = TaskErrorRecord::from_error(&error, String::new(), entry.node, &ctx.name);
        let failed = fail_stored(&self.store, &entry.dag, record);
        if let Err(e) = self.handle.block_on(failed) {
            eprintln!("dag worker {}: could not record a failure: {e}", ctx.name);
        }
    }
}
