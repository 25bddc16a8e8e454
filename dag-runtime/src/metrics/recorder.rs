//! One process's recorder: a bounded queue of records and the background thread that digests
//! and uploads them on the chosen [`Upload`] schedule.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

use super::backend::{root_of, Batch, MetricsBackend};
use super::digest::Digest;
use super::record::{now_us, Outcome, RunRecord, TaskRecord, WorkerRecord};
use super::storage::{MetricsError, Upload};

enum Message {
    Task(TaskRecord),
    /// Records a worker thread buffered (see `WorkerMetrics`).
    Tasks(Vec<TaskRecord>),
    Run(RunRecord),
    /// Upload everything queued before this, then reply.
    Flush(Sender<Result<(), String>>),
    /// Upload what is left, reply, and stop.
    Stop(Sender<Result<(), String>>),
}

/// What one worker thread has done, read by the uploader.
pub(crate) struct WorkerStats {
    name: String,
    started_us: u64,
    started: Instant,
    cold_start_us: Option<u64>,
    tasks: AtomicU64,
    busy_us: AtomicU64,
}

impl WorkerStats {
    pub(crate) fn add_task(&self, busy: Duration) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
        self.busy_us
            .fetch_add(busy.as_micros() as u64, Ordering::Relaxed);
    }

    fn record(&self) -> WorkerRecord {
        let alive = self.started.elapsed().as_micros() as u64;
        let busy_us = self.busy_us.load(Ordering::Relaxed);
        WorkerRecord {
            worker: self.name.clone(),
            started_us: self.started_us,
            cold_start_us: self.cold_start_us,
            tasks: self.tasks.load(Ordering::Relaxed),
            busy_us,
            idle_us: alive.saturating_sub(busy_us),
            updated_us: now_us(),
        }
    }
}

/// The recorder of one process: cheap to share, never blocks its callers.
pub struct Recorder {
    each_task: bool,
    /// Records in the queue, and how many it may hold.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    sender: Sender<Message>,
    /// Records dropped because the queue was full, by run (the uploader reports them in the
    /// run's digest). Touched only when dropping.
    dropped: Mutex<HashMap<String, u64>>,
    dropped_total: AtomicU64,
    workers: Arc<Mutex<Vec<Arc<WorkerStats>>>>,
    uploader: Mutex<Option<JoinHandle<()>>>,
    backend: Arc<dyn MetricsBackend>,
    /// Records a worker hands over at once (see `WorkerMetrics`).
    batch: usize,
    /// Emptied record buffers, back from the metrics thread for workers to fill again.
    spare: Receiver<Vec<TaskRecord>>,
}

impl Recorder {
    /// Starts the uploader of a process named `name` (`host:pid`), uploading to `backend` on
    /// `upload`'s schedule through `io`, with room for `queue` records.
    pub(crate) fn start(
        name: String,
        backend: Arc<dyn MetricsBackend>,
        upload: Upload,
        queue: usize,
        io: tokio::runtime::Handle,
    ) -> Result<Arc<Recorder>, MetricsError> {
        // Workers send records a batch at a time (but with `EachTask`): the queue's room is
        // counted in records (`queued`), whatever the size of the batches.
        let each_task = upload == Upload::EachTask;
        let (sender, receiver) = crossbeam_channel::bounded(queue);
        let queued = Arc::new(AtomicUsize::new(0));
        let (give_back, spare) = crossbeam_channel::bounded(SPARE_BUFFERS);
        let workers: Arc<Mutex<Vec<Arc<WorkerStats>>>> = Arc::default();
        let recorder = Arc::new(Recorder {
            each_task,
            queued: Arc::clone(&queued),
            capacity: queue,
            sender,
            dropped: Mutex::default(),
            dropped_total: AtomicU64::new(0),
            workers: Arc::clone(&workers),
            uploader: Mutex::new(None),
            backend: Arc::clone(&backend),
            // Small enough that many workers' batches fit in the queue together.
            batch: match upload {
                Upload::Batch(n) => n.min(LOCAL_BATCH),
                _ => LOCAL_BATCH,
            }
            .min(queue / 8)
            .max(1),
            spare,
        });
        let uploader = Uploader {
            name,
            backend,
            io,
            upload,
            receiver,
            workers,
            recorder: Arc::downgrade(&recorder),
            queued,
            pending: Vec::new(),
            pending_records: 0,
            give_back,
            digests: BTreeMap::new(),
            touched: Default::default(),
            stop: None,
            flushes: Vec::new(),
            facade: Default::default(),
            bytes_uploaded: metrics::counter!("dag_bytes_uploaded_total"),
            bytes_downloaded: metrics::counter!("dag_bytes_downloaded_total"),
        };
        let handle = std::thread::Builder::new()
            .name("dag-metrics".into())
            .spawn(move || uploader.run())
            .map_err(|e| {
                MetricsError::Store(crate::DagError::Runtime(format!(
                    "could not start the metrics thread: {e}"
                )))
            })?;
        *recorder.uploader.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(recorder)
    }

    /// The backend records go to.
    pub(crate) fn backend(&self) -> &Arc<dyn MetricsBackend> {
        &self.backend
    }

    /// Registers a worker thread named `name`.
    pub(crate) fn worker(&self, name: &str, cold_start: Option<Duration>) -> Arc<WorkerStats> {
        let stats = Arc::new(WorkerStats {
            name: name.to_owned(),
            started_us: now_us(),
            started: Instant::now(),
            cold_start_us: cold_start.map(|d| d.as_micros() as u64),
            tasks: AtomicU64::new(0),
            busy_us: AtomicU64::new(0),
        });
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&stats));
        stats
    }

    /// Queues a task record; drops and counts it when the queue is full.
    pub(crate) fn task(&self, record: TaskRecord) {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return self.count_dropped(std::slice::from_ref(&record));
        }
        if let Err(TrySendError::Full(Message::Task(record))) =
            self.sender.try_send(Message::Task(record))
        {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.count_dropped(std::slice::from_ref(&record));
        }
    }

    /// Queues records a worker thread buffered; drops and counts them when the queue is full.
    pub(crate) fn tasks(&self, records: Vec<TaskRecord>) {
        let n = records.len();
        if self.queued.fetch_add(n, Ordering::Relaxed) + n > self.capacity {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            return self.count_dropped(&records);
        }
        if let Err(TrySendError::Full(Message::Tasks(records))) =
            self.sender.try_send(Message::Tasks(records))
        {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.count_dropped(&records);
        }
    }

    /// How many records a worker hands over at once, at most: [`LOCAL_BATCH`], or the batch
    /// of [`Upload::Batch`] or an eighth of the queue if smaller.
    pub(crate) fn batch(&self) -> usize {
        self.batch
    }

    /// An empty buffer for a worker's records: one the metrics thread gave back, or a new one
    /// (while the first batches are on their way).
    pub(crate) fn spare_buffer(&self) -> Vec<TaskRecord> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.batch))
    }

    /// Whether workers send each record as it is made (the `EachTask` strategy) rather than
    /// a few at a time.
    pub(crate) fn each_task(&self) -> bool {
        self.each_task
    }

    fn count_dropped(&self, records: &[TaskRecord]) {
        self.dropped_total
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let mut dropped = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        for record in records {
            *dropped.entry(root_of(&record.dag).to_owned()).or_default() += 1;
        }
    }

    /// Queues a run record (waiting for room: there is one per DAG, at its start and end).
    pub(crate) fn run(&self, record: RunRecord) {
        let _ = self
            .sender
            .send_timeout(Message::Run(record), Duration::from_secs(1));
    }

    /// Records dropped because the queue was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Uploads everything queued so far and waits for it (at most `timeout`).
    pub fn flush(&self, timeout: Duration) -> Result<(), MetricsError> {
        let (done, reply) = crossbeam_channel::bounded(1);
        let failed = |message: String| {
            MetricsError::Store(crate::DagError::Runtime(format!(
                "flushing metrics: {message}"
            )))
        };
        self.sender
            .send_timeout(Message::Flush(done), timeout)
            .map_err(|_| failed("the metrics thread is not running or its queue is full".into()))?;
        match reply.recv_timeout(timeout) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(failed(message)),
            Err(_) => Err(failed(format!("no answer within {timeout:?}"))),
        }
    }

    /// Uploads what is left and stops the uploader (graceful shutdown), waiting at most
    /// `timeout` for the upload. Idempotent; records queued afterwards are dropped.
    pub fn shutdown(&self, timeout: Duration) {
        let handle = self
            .uploader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(handle) = handle else {
            return;
        };
        let (done, reply) = crossbeam_channel::bounded(1);
        if self
            .sender
            .send_timeout(Message::Stop(done), timeout)
            .is_ok()
            && reply.recv_timeout(timeout).is_ok()
        {
            let _ = handle.join();
        }
        // Otherwise the uploader is stuck on a store that does not answer: it is left to end
        // on its own rather than holding up the shutdown.
    }

    fn take_dropped(&self) -> HashMap<String, u64> {
        std::mem::take(&mut *self.dropped.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Uploader {
    name: String,
    backend: Arc<dyn MetricsBackend>,
    io: tokio::runtime::Handle,
    upload: Upload,
    receiver: Receiver<Message>,
    workers: Arc<Mutex<Vec<Arc<WorkerStats>>>>,
    recorder: std::sync::Weak<Recorder>,
    /// Records not uploaded yet, in chunks of [`CHUNK`] allocated here (a chunk never grows,
    /// so a record is moved once on this thread; an in-memory backend keeps the chunks).
    pending: Vec<Vec<TaskRecord>>,
    pending_records: usize,
    /// Where emptied worker buffers go back (see [`Recorder::spare_buffer`]).
    give_back: Sender<Vec<TaskRecord>>,
    /// Cumulative digest per run: uploads replace the recorder's digest of a run.
    digests: BTreeMap<String, (Digest, Instant)>,
    /// Runs with records since the last upload.
    touched: std::collections::BTreeSet<String>,
    /// A stop found while draining the queue.
    stop: Option<Sender<Result<(), String>>>,
    /// Records in the queue (shared with the recorder).
    queued: Arc<AtomicUsize>,
    /// Flushes found while draining the queue.
    flushes: Vec<Sender<Result<(), String>>>,
    /// The `metrics` facade's handles, per task name, found by the address of the record's
    /// shared name (each worker thread has its own copy of a name; the facade's registry gives
    /// them the same counters). The name is kept, so that its address is not reused.
    facade: rustc_hash::FxHashMap<usize, (Arc<str>, FacadeHandles)>,
    bytes_uploaded: metrics::Counter,
    bytes_downloaded: metrics::Counter,
}

/// Records a worker thread buffers before it hands them over (but with `Upload::EachTask`, or
/// a smaller `Upload::Batch`): one queue operation per this many tasks.
pub(crate) const LOCAL_BATCH: usize = 128;

/// Emptied worker buffers kept for reuse.
const SPARE_BUFFERS: usize = 64;

/// Records per chunk of the uploader's pending records.
const CHUNK: usize = 4096;

/// How often the metrics thread looks at the queue while records are coming.
const POLL: Duration = Duration::from_millis(1);

/// How long after the last record the metrics thread keeps polling before it sleeps on the
/// queue.
const KEEP_POLLING: Duration = Duration::from_millis(20);

/// Digests of runs with no record for this long are forgotten (after their last upload).
const DIGEST_KEPT: Duration = Duration::from_secs(600);

impl Uploader {
    fn run(mut self) {
        let period = match self.upload {
            Upload::Every(period) => period,
            _ => Duration::from_secs(3600),
        };
        let mut next = Instant::now() + period;
        // While records keep coming, the thread polls the queue instead of sleeping on it: a
        // sleeping receiver is woken by each send, a system call and a context switch per task
        // on the worker's side. Polling lets workers queue without waking anyone.
        let mut polling_until = Instant::now();
        loop {
            if let Some(reply) = self.stop.take() {
                let result = self.upload().map_err(|e| e.to_string());
                for reply in self.flushes.drain(..) {
                    let _ = reply.send(result.clone());
                }
                let _ = reply.send(result);
                return;
            }
            if !self.flushes.is_empty() {
                let result = self.upload().map_err(|e| e.to_string());
                for reply in self.flushes.drain(..) {
                    let _ = reply.send(result.clone());
                }
            }
            let now = Instant::now();
            if now >= next {
                if matches!(self.upload, Upload::Every(_)) {
                    let _ = self.upload();
                }
                next = now + period;
            }
            let received = if now < polling_until {
                match self.receiver.try_recv() {
                    Ok(message) => Ok(message),
                    Err(TryRecvError::Empty) => {
                        std::thread::sleep(POLL);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => Err(()),
                }
            } else {
                match self
                    .receiver
                    .recv_timeout(next.saturating_duration_since(now))
                {
                    Ok(message) => Ok(message),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => Err(()),
                }
            };
            let Ok(message) = received else {
                let _ = self.upload(); // every recorder handle is gone
                return;
            };
            match message {
                Message::Task(_) | Message::Tasks(_) => {
                    polling_until = Instant::now() + KEEP_POLLING;
                    self.take(message);
                    // Whatever queued meanwhile is digested and uploaded with it.
                    self.drain();
                    let due = match self.upload {
                        Upload::EachTask => true,
                        Upload::Batch(n) => self.pending_records >= n,
                        Upload::Every(_) | Upload::OnShutdown => false,
                    };
                    if due {
                        let _ = self.upload();
                    }
                }
                Message::Run(run) => {
                    if let Err(e) = self.io.block_on(self.backend.put_run(&run)) {
                        warn(&e);
                    }
                }
                Message::Flush(reply) => {
                    self.drain();
                    self.flushes.push(reply);
                }
                Message::Stop(reply) => {
                    self.drain();
                    let _ = reply.send(self.upload().map_err(|e| e.to_string()));
                    return;
                }
            }
        }
    }

    /// Takes whatever is queued right now, without waiting.
    fn drain(&mut self) {
        while let Ok(message) = self.receiver.try_recv() {
            match message {
                Message::Task(_) | Message::Tasks(_) => self.take(message),
                Message::Run(run) => {
                    if let Err(e) = self.io.block_on(self.backend.put_run(&run)) {
                        warn(&e);
                    }
                }
                // Answered once what was queued before it is uploaded (see `run`).
                Message::Flush(reply) => self.flushes.push(reply),
                // Honoured once the current message is handled (see `run`).
                Message::Stop(reply) => self.stop = Some(reply),
            }
        }
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Task(record) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                self.add(record);
            }
            Message::Tasks(mut records) => {
                self.queued.fetch_sub(records.len(), Ordering::Relaxed);
                records.drain(..).for_each(|r| self.add(r));
                let _ = self.give_back.try_send(records);
            }
            _ => {}
        }
    }

    /// Digests one record (the facade, the counters and the run's digest) and keeps it for the
    /// next upload.
    fn add(&mut self, record: TaskRecord) {
        let name = Arc::as_ptr(&record.task) as *const u8 as usize;
        self.facade
            .entry(name)
            .or_insert_with(|| (Arc::clone(&record.task), FacadeHandles::new(&record.task)))
            .1
            .emit(&record);
        let run = root_of(&record.dag);
        let bytes_down = record.bytes_downloaded();
        if bytes_down > 0 {
            self.bytes_downloaded.increment(bytes_down);
        }
        let bytes_up = record.bytes_uploaded();
        if bytes_up > 0 {
            self.bytes_uploaded.increment(bytes_up);
        }
        let entry = match self.digests.get_mut(run) {
            Some(entry) => entry,
            None => self
                .digests
                .entry(run.to_owned())
                .or_insert_with(|| (Digest::default(), Instant::now())),
        };
        entry.0.add(&record);
        if !self.touched.contains(run) {
            self.touched.insert(run.to_owned());
        }
        self.pending_records += 1;
        match self.pending.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(record),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(record);
                self.pending.push(chunk);
            }
        }
    }

    fn upload(&mut self) -> Result<(), MetricsError> {
        if let Some(recorder) = self.recorder.upgrade() {
            for (run, dropped) in recorder.take_dropped() {
                metrics::counter!("dag_metrics_dropped_total").increment(dropped);
                let entry = self
                    .digests
                    .entry(run.clone())
                    .or_insert_with(|| (Digest::default(), Instant::now()));
                entry.0.dropped += dropped;
                self.touched.insert(run);
            }
        }
        let workers: Vec<WorkerRecord> = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|w| w.record())
            .collect();
        // Runs recorded since the last upload are fresh; the others age out after DIGEST_KEPT.
        let now = Instant::now();
        for run in &self.touched {
            if let Some(entry) = self.digests.get_mut(run) {
                entry.1 = now;
            }
        }
        self.pending_records = 0;
        let batch = Batch {
            recorder: self.name.clone(),
            tasks: std::mem::take(&mut self.pending),
            digests: std::mem::take(&mut self.touched)
                .into_iter()
                .filter_map(|run| {
                    let digest = self.digests.get(&run)?.0.clone();
                    Some((run, digest))
                })
                .collect(),
            workers,
        };
        let result = self.io.block_on(self.backend.put(batch));
        if let Err(e) = &result {
            warn(e);
        }
        self.digests
            .retain(|_, (_, touched)| touched.elapsed() < DIGEST_KEPT);
        result
    }
}

/// Says once per minute at most that uploads fail (records of failed uploads are lost: metrics
/// must never hold a worker up).
fn warn(error: &MetricsError) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
        *last = Some(Instant::now());
        eprintln!("dag: metrics upload failed (records are dropped): {error}");
    }
}

/// Counters and histograms through the `metrics` facade, per task name: whatever exporter the
/// user installed (Prometheus, StatsD) sees them; without one they cost next to nothing. They
/// are registered once per task name (install the exporter before the first `compute`) and fed
/// here, on the metrics thread, never on a worker's.
struct FacadeHandles {
    ok: metrics::Counter,
    retried: metrics::Counter,
    error: metrics::Counter,
    timed_out: metrics::Counter,
    run: metrics::Histogram,
    fetch: metrics::Histogram,
    store: metrics::Histogram,
    output: metrics::Histogram,
}

impl FacadeHandles {
    fn new(task: &Arc<str>) -> Self {
        let task = metrics::SharedString::from(task.to_string());
        let attempts = |outcome: &'static str| metrics::counter!("dag_task_attempts_total", "task" => task.clone(), "outcome" => outcome);
        FacadeHandles {
            ok: attempts("ok"),
            retried: attempts("retried"),
            error: attempts("error"),
            timed_out: attempts("timed_out"),
            run: metrics::histogram!("dag_task_run_seconds", "task" => task.clone()),
            fetch: metrics::histogram!("dag_task_fetch_seconds", "task" => task.clone()),
            store: metrics::histogram!("dag_task_store_seconds", "task" => task.clone()),
            output: metrics::histogram!("dag_task_output_bytes", "task" => task),
        }
    }

    fn emit(&self, record: &TaskRecord) {
        match record.outcome {
            Outcome::Ok => self.ok.increment(1),
            Outcome::Retried => self.retried.increment(1),
            Outcome::Error => self.error.increment(1),
            Outcome::TimedOut => self.timed_out.increment(1),
        }
        self.run.record(record.run_us as f64 / 1e6);
        if record.outcome != Outcome::Retried {
            self.fetch.record(record.fetch_us as f64 / 1e6);
            self.store.record(record.store_us as f64 / 1e6);
            self.output.record(record.output_bytes as f64);
        }
    }
}
