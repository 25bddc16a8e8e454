//! The serving loop: worker threads reading the invocation stream and running the worker step.

use super::*;

/// How long one `XREADGROUP` waits before the thread checks whether it should stop.
pub(crate) const READ_BLOCK: Duration = Duration::from_millis(250);

/// How many loaded plans a worker process keeps.
pub(crate) const PLAN_CACHE: usize = 64;

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
    let store = io.block_on(RedisStore::connect(&options.redis_url))?;
    let stream = InvocationStream::new(store.clone(), options.stream.clone());
    let process = Arc::new(Process {
        store: store.clone(),
        stream: stream.clone(),
        handle: io.handle().clone(),
        publisher: Publisher::start(io.handle(), stream.clone()),
        plans: Mutex::new(PlanCache::default()),
        running: Arc::new(Mutex::new(HashMap::new())),
        lease: options.lease,
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
    drop(process);
    io.shutdown_timeout(Duration::from_secs(1));
    result
}

pub(crate) fn serve_pool(process: &Arc<Process>, options: &WorkerOptions) -> Result<(), DagError> {
    process.handle.block_on(process.stream.create_group())?;
    let id = worker_id();
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
    plans: Mutex<PlanCache>,
    /// The stream entry each worker thread (consumer) is running: their leases are renewed.
    running: Arc<Mutex<HashMap<String, String>>>,
    lease: Duration,
}

/// Renews the lease of every invocation this process runs, every third of `lease`, until the
/// process's state is dropped. A renewal that fails (Redis away) is retried on the next tick;
/// missing a few only risks a duplicate run, which at-least-once execution allows.
async fn renew_leases(
    stream: InvocationStream,
    running: std::sync::Weak<Mutex<HashMap<String, String>>>,
    lease: Duration,
) {
    let period = (lease / 3).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(period).await;
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
            eprintln!("dag worker {}: {e}", worker_id());
        }
    }
}

#[derive(Default)]
pub(crate) struct PlanCache {
    plans: HashMap<DagId, Arc<LoadedPlan>>,
    order: VecDeque<DagId>,
}

impl Process {
    pub(crate) fn worker(&self, id: String) -> Worker {
        Worker {
            store: Arc::new(self.store.clone()),
            handle: self.handle.clone(),
            id,
            policy: TaskPolicy::DEFAULT,
        }
    }

    pub(crate) fn serve_thread(
        &self,
        consumer: String,
        parent: Option<u32>,
    ) -> Result<(), DagError> {
        let worker = self.worker(consumer.clone());
        let mut reader = self.handle.block_on(self.stream.reader(consumer.clone()))?;
        let mut failures = 0u32;
        // Finished entries, acknowledged together with the next read (one round trip).
        let mut finished: Vec<String> = Vec::new();
        let mut next_claim = Instant::now() + self.claim_period();
        while !stop_requested() {
            if parent.is_some_and(|p| parent_pid() != p) {
                // The client that started this worker has gone: nobody waits for its DAGs.
                request_stop();
                break;
            }
            // Now and then, before reading new work, take over the invocations of dead workers.
            let claim_due = Instant::now() >= next_claim;
            let entries = if claim_due {
                next_claim = Instant::now() + self.claim_period();
                let claim = reader.ack_and_claim_stale(&finished, self.lease, 1);
                self.handle.block_on(claim)
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
                    eprintln!("dag worker {}: {e}; retrying", worker.id);
                    std::thread::sleep(Duration::from_millis(200 * u64::from(failures.min(10))));
                    continue;
                }
            };
            for (entry, deliveries) in entries {
                if deliveries > MAX_DELIVERIES {
                    self.give_up(&worker, &entry, deliveries);
                } else {
                    self.running_entry(&consumer, Some(&entry.id));
                    self.run_entry(&worker, &entry);
                    // Every child this invocation queued is in the stream before it is
                    // acknowledged.
                    self.publisher.flush();
                    fault::reached(FaultPoint::BeforeAck);
                    self.running_entry(&consumer, None);
                }
                finished.push(entry.id);
            }
        }
        if let Err(e) = self.handle.block_on(self.stream.ack(&finished)) {
            eprintln!("dag worker {}: {e}", worker.id);
        }
        let _ = self.handle.block_on(reader.remove_consumer());
        Ok(())
    }

    pub(crate) fn run_entry(&self, worker: &Worker, entry: &StreamEntry) {
        match self.load(&entry.dag, &worker.id) {
            Ok(Some(plan)) if (entry.node as usize) < plan.plan.nodes.len() => {
                let invocation = Invocation {
                    node: entry.node,
                    carried: None,
                };
                let delegate = StreamDelegate(&self.publisher);
                // The entry's id is this run's claim: if this process dies, whoever re-runs
                // the entry gets back the children this run made ready.
                run_invocation(worker, &plan, invocation, &delegate, &entry.id);
            }
            Ok(Some(_)) => eprintln!(
                "dag worker {}: DAG {} has no node {}; skipping the invocation",
                worker.id, entry.dag, entry.node
            ),
            Ok(None) => {} // the DAG has ended
            Err(e) => self.fail_load(worker, entry, e),
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
    fn claim_period(&self) -> Duration {
        self.lease.mul_f64(0.5 + fastrand::f64() * 0.25)
    }

    /// Fails the DAG of an invocation whose workers kept dying on it.
    fn give_up(&self, worker: &Worker, entry: &StreamEntry, deliveries: u64) {
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
        eprintln!("dag worker {}: {message}", worker.id);
        self.fail_load(worker, entry, DagError::WorkerLost { task, message });
    }

    /// Runs one invocation, the whole life of a process per invocation.
    pub(crate) fn run_one(
        &self,
        dag: &DagId,
        node: u32,
        claim: &str,
        spawned_at: Option<SystemTime>,
    ) {
        let worker = self.worker(format!("{}/once", worker_id()));
        let loaded = self.load(dag, &worker.id);
        if let Some(spawned_at) = spawned_at {
            let cold = SystemTime::now()
                .duration_since(spawned_at)
                .unwrap_or_default();
            if let Err(e) = self.handle.block_on(self.stream.record_cold_start(cold)) {
                eprintln!("dag worker {}: {e}", worker.id);
            }
        }
        let entry = StreamEntry {
            id: String::new(),
            dag: dag.clone(),
            node,
        };
        match loaded {
            Ok(Some(plan)) if (node as usize) < plan.plan.nodes.len() => {
                let invocation = Invocation {
                    node,
                    carried: None,
                };
                let delegate = StreamDelegate(&self.publisher);
                run_invocation(&worker, &plan, invocation, &delegate, claim);
            }
            Ok(_) => {}
            Err(e) => self.fail_load(&worker, &entry, e),
        }
    }

    /// The DAG's plan, resolved against this program's tasks and checked; `None` if it ended.
    pub(crate) fn load(
        &self,
        dag: &DagId,
        worker: &str,
    ) -> Result<Option<Arc<LoadedPlan>>, DagError> {
        if let Some(plan) = self.cached(dag) {
            return Ok(Some(plan));
        }
        let Some(loaded) = LoadedPlan::load(&self.store, &self.handle, dag)? else {
            return Ok(None);
        };
        check_signatures(&loaded, worker)?;
        let mut cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if cache
            .plans
            .insert(dag.clone(), Arc::clone(&loaded))
            .is_none()
        {
            cache.order.push_back(dag.clone());
        }
        while cache.plans.len() > PLAN_CACHE {
            let Some(old) = cache.order.pop_front() else {
                break;
            };
            cache.plans.remove(&old);
        }
        Ok(Some(loaded))
    }

    pub(crate) fn cached(&self, dag: &DagId) -> Option<Arc<LoadedPlan>> {
        let cache = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        cache.plans.get(dag).cloned()
    }

    /// Records why this worker cannot run the DAG of `entry` as the failure of the DAG its
    /// client waits for (the top of a map's child DAG; see [`fail_stored`]).
    pub(crate) fn fail_load(&self, worker: &Worker, entry: &StreamEntry, error: DagError) {
        let (kind, task, message) = match &error {
            DagError::TaskNotFound { task, .. } => {
                (FailureKind::TaskNotFound, task.clone(), error.to_string())
            }
            DagError::TaskMismatch { task, message, .. } => {
                (FailureKind::TaskMismatch, task.clone(), message.clone())
            }
            DagError::WorkerLost { task, message } => {
                (FailureKind::WorkerLost, task.clone(), message.clone())
            }
            DagError::Redis { .. } | DagError::Store(_) | DagError::Codec { .. } => {
                (FailureKind::Store, String::new(), error.to_string())
            }
            _ => (FailureKind::Worker, String::new(), error.to_string()),
        };
        let record = TaskErrorRecord {
            kind,
            task,
            node: entry.node,
            attempt: 1,
            message,
            worker: worker.id.clone(),
            backtrace: None,
        };
        let failed = fail_stored(&self.store, &entry.dag, record);
        if let Err(e) = self.handle.block_on(failed) {
            eprintln!("dag worker {}: could not record a failure: {e}", worker.id);
        }
    }
}

/// Fails unless every task of `loaded` (and of the DAGs it is a child of) has the signature
/// the client compiled.
pub(crate) fn check_signatures(loaded: &LoadedPlan, worker: &str) -> Result<(), DagError> {
    let mut next = Some(loaded);
    while let Some(loaded) = next {
        let plan = &loaded.plan;
        for (name, expected) in plan.tasks.iter().zip(&plan.signatures) {
            let found = dag_runtime::task::lookup(name)?.signature;
            if found != expected {
                return Err(DagError::TaskMismatch {
                    task: name.clone(),
                    worker: worker.to_owned(),
                    message: format!(
                        "the client's plan was built with `{expected}`, this worker has `{found}`"
                    ),
                });
            }
        }
        next = loaded.parent.as_ref().map(|(parent, _)| &**parent);
    }
    Ok(())
}
