//! Live updates: one reader of Redis per dashboard, however many browsers watch.
//!
//! A single task follows the event streams of the runs some page is watching (one blocking
//! `XREAD` over all of them) and re-reads the list of runs once a second; it hands what it
//! reads to the pages' server-sent-event streams through broadcast channels. A page that falls
//! behind (a slow browser), or a reader that may have missed events (a stream keeps about the
//! last thousand), gets a `resync` message, and reloads its snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dag::metrics::{now_us, RunState};
use dag::store::{event_stream_key, DagId};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, Notify};

use super::sources::Sources;

/// How long one `XREAD` blocks: also the longest a new watcher waits to be followed.
const BLOCK: Duration = Duration::from_millis(500);
/// Entries one `XREAD` takes per stream; a full batch may mean the reader fell behind.
const BATCH: usize = 2_000;
/// The least time between two resyncs the reader asks of one run's pages: a run that goes
/// faster than the reader keeps up with reloads its snapshot at this pace, not continuously.
const RESYNC_EVERY: Duration = Duration::from_secs(2);
/// How often the list of runs is re-read.
const RUNS_EVERY: Duration = Duration::from_secs(1);
/// Messages a page may fall behind before it is told to resync.
const CHANNEL: usize = 1_024;
/// A new watcher replays this much of a run's recent events, so that none is lost between the
/// page's snapshot and its subscription (repeats are harmless: a node finishes once).
const REPLAY: Duration = Duration::from_secs(5);

/// What `XREAD` answers: per stream key, its entries (id, then field and value pairs); `None`
/// when the block timed out.
type XreadReply = Option<Vec<(String, Vec<(String, Vec<(String, String)>)>)>>;

/// The dashboard's one reader, and the pages subscribed to it.
pub struct Hub {
    runs: broadcast::Sender<Arc<str>>,
    watches: Mutex<HashMap<String, Watch>>,
    wake: Notify,
}

struct Watch {
    sender: broadcast::Sender<Arc<str>>,
    /// The id of the last event read from the run's stream.
    cursor: String,
    /// When its pages were last told to resync.
    resynced: Option<Instant>,
    /// A resync held back by the pace, sent once [`RESYNC_EVERY`] has passed.
    resync_due: bool,
}

impl Hub {
    /// Starts the reader on `sources`' Redis.
    pub fn start(sources: Arc<Sources>) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            runs: broadcast::channel(CHANNEL).0,
            watches: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        });
        tokio::spawn(read(Arc::clone(&hub), sources));
        hub
    }

    /// Messages about the list of runs: `{"kind":"runs"}` when it changed, `{"kind":
    /// "unavailable","message":...}` while Redis cannot be read.
    pub fn subscribe_runs(&self) -> broadcast::Receiver<Arc<str>> {
        self.runs.subscribe()
    }

    /// Messages about run `id`: `{"kind":"event", "dag", "id", "event", "node", ...}` per event
    /// of its stream, `{"kind":"resync"}` when the page should reload its snapshot.
    pub fn subscribe_run(&self, id: &str) -> broadcast::Receiver<Arc<str>> {
        let mut watches = self.watches.lock().expect("watches lock");
        let watch = watches.entry(id.to_owned()).or_insert_with(|| Watch {
            sender: broadcast::channel(CHANNEL).0,
            resynced: None,
            resync_due: false,
            cursor: format!(
                "{}-0",
                (now_us() / 1_000).saturating_sub(REPLAY.as_millis() as u64)
            ),
        });
        let receiver = watch.sender.subscribe();
        drop(watches);
        self.wake.notify_one();
        receiver
    }

    /// The streams to follow now, with their cursors; forgets runs nobody watches any more.
    fn streams(&self) -> Vec<(String, String)> {
        let mut watches = self.watches.lock().expect("watches lock");
        watches.retain(|_, watch| watch.sender.receiver_count() > 0);
        watches
            .iter()
            .map(|(id, watch)| (id.clone(), watch.cursor.clone()))
            .collect()
    }

    /// Hands event `message` (stream entry `cursor`) to run `id`'s pages.
    fn deliver(&self, id: &str, message: Value, cursor: &str) {
        let mut watches = self.watches.lock().expect("watches lock");
        if let Some(watch) = watches.get_mut(id) {
            watch.cursor = cursor.to_owned();
            let _ = watch.sender.send(message.to_string().into());
        }
    }

    /// Tells run `id`'s pages to reload their snapshot, at most once per [`RESYNC_EVERY`]
    /// unless `now` (the run's state changed: its end brings its metrics and errors).
    fn resync(&self, id: &str, now: bool) {
        let mut watches = self.watches.lock().expect("watches lock");
        if let Some(watch) = watches.get_mut(id) {
            if !now && watch.resynced.is_some_and(|at| at.elapsed() < RESYNC_EVERY) {
                watch.resync_due = true;
                return;
            }
            watch.send_resync();
        }
    }

    /// Sends the resyncs the pace held back whose time has come.
    fn resync_due(&self) {
        for watch in self.watches.lock().expect("watches lock").values_mut() {
            if watch.resync_due && watch.resynced.is_none_or(|at| at.elapsed() >= RESYNC_EVERY) {
                watch.send_resync();
            }
        }
    }

    fn to_everyone(&self, message: &Value) {
        let text: Arc<str> = message.to_string().into();
        let _ = self.runs.send(Arc::clone(&text));
        for watch in self.watches.lock().expect("watches lock").values() {
            let _ = watch.sender.send(Arc::clone(&text));
        }
    }
}

impl Watch {
    fn send_resync(&mut self) {
        self.resynced = Some(Instant::now());
        self.resync_due = false;
        let _ = self
            .sender
            .send(json!({"kind": "resync"}).to_string().into());
    }
}

/// The reader: runs until the process ends.
async fn read(hub: Arc<Hub>, sources: Arc<Sources>) {
    let mut connection: Option<MultiplexedConnection> = None;
    let mut last_runs: Option<Vec<crate::runs::RunRow>> = None;
    let mut last_poll = Instant::now() - RUNS_EVERY;
    let mut unavailable = false;
    loop {
        if last_poll.elapsed() >= RUNS_EVERY {
            last_poll = Instant::now();
            match sources.runs(50).await {
                Ok(rows) => {
                    if last_runs.as_ref() != Some(&rows) || unavailable {
                        // A run whose state changed: its pages reload (its end brings its
                        // metrics and errors); an ended run whose records are still arriving
                        // (workers upload them in the background): at a bounded pace.
                        for row in &rows {
                            let before = last_runs.iter().flatten().find(|old| old.id == row.id);
                            match before {
                                Some(old) if old.state != row.state => hub.resync(&row.id, true),
                                Some(old) if old != row && row.state != RunState::Running => {
                                    hub.resync(&row.id, false)
                                }
                                Some(_) => {}
                                None => hub.resync(&row.id, true),
                            }
                        }
                        let _ = hub.runs.send(json!({"kind": "runs"}).to_string().into());
                        last_runs = Some(rows);
                    }
                    if unavailable {
                        // Redis is back: every page reloads, and its banner goes.
                        let watched: Vec<String> =
                            hub.streams().into_iter().map(|(id, _)| id).collect();
                        for id in watched {
                            hub.resync(&id, true);
                        }
                    }
                    unavailable = false;
                }
                Err(error) => {
                    unavailable = true;
                    connection = None;
                    hub.to_everyone(&json!({"kind": "unavailable", "message": error.to_string()}));
                }
            }
        }
        hub.resync_due();
        let streams = hub.streams();
        if streams.is_empty() || unavailable {
            let _ = tokio::time::timeout(RUNS_EVERY, hub.wake.notified()).await;
            continue;
        }
        if connection.is_none() {
            connection = connect(sources.url()).await;
            if connection.is_none() {
                tokio::time::sleep(RUNS_EVERY).await;
                continue;
            }
        }
        let conn = connection.as_mut().expect("connected above");
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS");
        for (id, _) in &streams {
            cmd.arg(event_stream_key(&DagId::from(id.as_str())));
        }
        for (_, cursor) in &streams {
            cmd.arg(cursor);
        }
        let reply: redis::RedisResult<XreadReply> = cmd.query_async(conn).await;
        match reply {
            Ok(Some(replies)) => {
                for (key, entries) in replies {
                    let Some((id, _)) = streams
                        .iter()
                        .find(|(id, _)| event_stream_key(&DagId::from(id.as_str())) == key)
                    else {
                        continue;
                    };
                    let full = entries.len() >= BATCH;
                    for (entry, fields) in entries {
                        let mut message = Map::new();
                        message.insert("kind".into(), "event".into());
                        message.insert("dag".into(), id.clone().into());
                        message.insert("id".into(), entry.clone().into());
                        for (field, value) in fields {
                            message.insert(field, value.into());
                        }
                        hub.deliver(id, Value::Object(message), &entry);
                    }
                    if full {
                        hub.resync(id, false);
                    }
                }
            }
            Ok(None) => {}
            Err(_) => {
                connection = None;
                tokio::time::sleep(BLOCK).await;
            }
        }
    }
}

async fn connect(url: &str) -> Option<MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .ok()
}
