//! Data locality, WUKONG's two optimizations on top of decentralized scheduling: where a
//! completed node's output goes, and whether its children run where it already is.
//!
//! - **Task clustering.** When an output is large, its ready children run in this worker (in
//!   turn, or on the other threads of this process, the output in memory) instead of being
//!   handed to other workers, and the output is stored only if a child that needs it can still
//!   become ready elsewhere (one that is still waiting for another parent). The last parent of
//!   a fan-in already runs the child with its own output in memory, fetching only the others.
//! - **Delayed I/O.** When no child of a large output is ready yet, the worker holds the output
//!   for up to the configured delay instead of storing it, asking the store again (one round
//!   trip per check, with pauses that double) whether it has become the last missing parent of
//!   a child; if so it runs the child here, else it stores the output when the delay runs out.
//!
//! Several large parents of one child must not wait for each other. The store keeps at most one
//! holder per child, and ranks parents by output size, then by lower node index: a parent that
//! is outranked by the child's holder stores its output at once, and a holder that has been
//! outranked stores it at its next check. So only the highest-ranked parent of a child waits,
//! and only for parents that are still running (see `Keep::hold` and `complete.lua`).
//!
//! Correctness comes from the store: a kept output's children that are not ready are not
//! marked until the output is stored (`Marked::Ready::pending`), so no child can become ready
//! on another worker without the outputs it needs in the store. After a worker process dies,
//! the re-run of its invocation runs the task again and gets back the children it had claimed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rustc_hash::FxHashSet;

use super::fault::{self, FaultPoint};
use super::{LoadedDag, WorkerContext};
use crate::error::DagError;
use crate::metrics::{Kept, Placed};
use crate::store::{ChildRef, Keep, Marked};
use crate::units::{parse_duration, parse_size};

/// The locality settings of a runtime or a worker process: what counts as a large output, and
/// whether task clustering and delayed I/O apply to large outputs.
///
/// Set on [`RuntimeBuilder`](crate::RuntimeBuilder) with
/// [`large_output`](crate::RuntimeBuilder::large_output),
/// [`clustering`](crate::RuntimeBuilder::clustering) and
/// [`delayed_io`](crate::RuntimeBuilder::delayed_io); worker processes read them from
/// `DAG_LARGE_OUTPUT`, `DAG_CLUSTERING` and `DAG_DELAYED_IO` ([`Locality::from_env`]).
///
/// ```
/// use std::time::Duration;
/// use dag::Locality;
///
/// let locality = Locality::default();
/// assert_eq!(locality.large_output, 1 << 20);
/// assert!(locality.clustering);
/// assert_eq!(locality.delayed_io, None);
/// let holding = Locality { delayed_io: Some(Duration::from_millis(250)), ..locality };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locality {
    /// The size (bytes, serialized) from which an output is large; a task's own
    /// `#[task(large_output = "...")]` wins.
    pub large_output: usize,
    /// Task clustering of large outputs.
    pub clustering: bool,
    /// Delayed I/O of large outputs: the longest a worker holds one (`None`: off).
    pub delayed_io: Option<Duration>,
}

impl Default for Locality {
    fn default() -> Self {
        Locality {
            large_output: Locality::DEFAULT_LARGE_OUTPUT,
            clustering: true,
            delayed_io: None,
        }
    }
}

/// The longest pause between two checks of a held output.
const LONGEST_PAUSE: Duration = Duration::from_millis(20);

impl Locality {
    /// The default [`large_output`](Self::large_output): 1 MiB.
    pub const DEFAULT_LARGE_OUTPUT: usize = 1 << 20;
    /// A good [`delayed_io`](Self::delayed_io) wait where it helps (it is off by default: see
    /// the README's "Locality" for the measurements): 100 ms.
    pub const DEFAULT_DELAYED_IO: Duration = Duration::from_millis(100);

    /// Both optimizations off: every output is stored, one ready child continues here.
    pub const OFF: Locality = Locality {
        large_output: Locality::DEFAULT_LARGE_OUTPUT,
        clustering: false,
        delayed_io: None,
    };

    /// The defaults, overridden by `DAG_LARGE_OUTPUT` (bytes, or with a unit: `4MiB`),
    /// `DAG_CLUSTERING` (`0` or `1`) and `DAG_DELAYED_IO` (`0`, or the longest wait: `200ms`)
    /// where they are set.
    ///
    /// ```
    /// use dag::Locality;
    ///
    /// std::env::set_var("DAG_DELAYED_IO", "0");
    /// assert_eq!(Locality::from_env()?.delayed_io, None);
    /// std::env::set_var("DAG_LARGE_OUTPUT", "a lot");
    /// assert!(Locality::from_env().unwrap_err().contains("DAG_LARGE_OUTPUT"));
    /// # std::env::remove_var("DAG_LARGE_OUTPUT");
    /// # std::env::remove_var("DAG_DELAYED_IO");
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_env() -> Result<Locality, String> {
        Locality::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables read through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Locality, String> {
        let mut locality = Locality::default();
        if let Some(text) = var("DAG_LARGE_OUTPUT") {
            locality.large_output = parse_size(&text).ok_or_else(|| {
                format!(
                    "DAG_LARGE_OUTPUT={text:?} is not a size; give bytes, or a number with a unit \
                     such as 4MiB or 512KB"
                )
            })?;
        }
        if let Some(text) = var("DAG_CLUSTERING") {
            locality.clustering = match text.trim() {
                "1" | "true" | "on" => true,
                "0" | "false" | "off" => false,
                _ => return Err(format!("DAG_CLUSTERING={text:?}: give 1 (on) or 0 (off)")),
            };
        }
        if let Some(text) = var("DAG_DELAYED_IO") {
            locality.delayed_io =
                match text.trim() {
                    "0" | "off" | "false" => None,
                    wait => Some(parse_duration(wait).filter(|d| !d.is_zero()).ok_or_else(
                        || {
                            format!(
                        "DAG_DELAYED_IO={text:?}: give 0 (off) or the longest wait, such as 200ms"
                    )
                        },
                    )?),
                };
        }
        Ok(locality)
    }

    /// These settings as the environment variables [`from_env`](Self::from_env) reads, for
    /// worker processes started by a runtime.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("DAG_LARGE_OUTPUT".into(), self.large_output.to_string()),
            (
                "DAG_CLUSTERING".into(),
                u8::from(self.clustering).to_string(),
            ),
            (
                "DAG_DELAYED_IO".into(),
                match self.delayed_io {
                    Some(wait) => format!("{}ms", wait.as_millis().max(1)),
                    None => "0".into(),
                },
            ),
        ]
    }

    /// What a completion of an output `size` bytes long by `dag`'s `node` may keep out of the
    /// store.
    fn keep(&self, dag: &LoadedDag, node: u32, size: usize) -> Keep {
        let threshold = dag
            .plan
            .nodes
            .get(node as usize)
            .filter(|n| n.map.is_none())
            .and_then(|_| dag.task_of(node).large_output)
            .unwrap_or(self.large_output);
        if size < threshold {
            return Keep::NOTHING;
        }
        Keep {
            output: self.clustering || self.delayed_io.is_some(),
            hold: self.delayed_io.map(|_| size as u64),
        }
    }
}

/// A node's completion: the children that became ready through it, and whether they must all
/// run in this process (their output is not in the store, or clustering keeps them here).
pub(crate) struct Marking {
    pub ready: Vec<u32>,
    pub stay: bool,
    pub placed: Placed,
}

/// Marks `node` of `dag` finished for its `children` with `output`, keeping the output out of
/// the store where the settings allow, holding it when delayed I/O applies. `None` if the DAG
/// has ended. `in_process` says whether handed-on children get the output in memory; `idle`
/// whether this worker has nothing else to run: only an idle worker holds an output (a worker
/// holding one output while another waits on its list could wait for itself).
#[allow(clippy::too_many_arguments)]
pub(crate) fn complete(
    ctx: &WorkerContext,
    dag: &LoadedDag,
    node: u32,
    output: &Bytes,
    children: &[ChildRef],
    claim: &str,
    in_process: bool,
    idle: bool,
) -> Result<Option<Marking>, DagError> {
    let WorkerContext {
        store,
        io,
        locality,
        ..
    } = ctx;
    let mut keep = if store.in_process() {
        Keep::NOTHING // nothing moves: nothing to save
    } else {
        locality.keep(dag, node, output.len())
    };
    if !idle {
        keep.hold = None;
    }
    let call = |children: &[ChildRef], keep: Keep| {
        io.block_on(store.complete_with(&dag.id, node, output.clone(), children, claim, keep))
    };
    let mut marked = call(children, keep)?;
    let (mut held, mut timed_out) = (false, false);
    if marked == Marked::Held {
        held = true;
        let deadline = Instant::now() + locality.delayed_io.unwrap_or_default();
        let mut pause = Duration::from_millis(1);
        while marked == Marked::Held {
            let now = Instant::now();
            if now >= deadline {
                timed_out = true;
                // Stores, marks, and ends this node's holds.
                let stored = Keep {
                    output: false,
                    hold: keep.hold,
                };
                marked = call(children, stored)?;
                break;
            }
            fault::reached(FaultPoint::WhileKept);
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(LONGEST_PAUSE);
            marked = call(children, keep)?;
        }
    }
    if keep.output {
        fault::reached(FaultPoint::WhileKept);
    }
    let (mut ready, pending) = match marked {
        Marked::Ready { ready, pending } => (ready, pending),
        Marked::Ended => return Ok(None),
        Marked::Held => return Err(held_anyway(dag, node)),
    };
    let stored = timed_out || !keep.output || !pending.is_empty();
    if !pending.is_empty() {
        // Children still waiting for other parents may run elsewhere: the output goes to the
        // store before they are marked.
        let pending: FxHashSet<u32> = pending.into_iter().collect();
        let pending: Vec<ChildRef> = children
            .iter()
            .filter(|c| pending.contains(&c.node))
            .copied()
            .collect();
        match call(&pending, Keep::NOTHING)? {
            Marked::Ready { ready: more, .. } => ready.extend(more),
            Marked::Ended => return Ok(None),
            Marked::Held => return Err(held_anyway(dag, node)),
        }
    }
    let size = output.len() as u64;
    let clustered = keep.output && locality.clustering;
    let stay = !stored || clustered;
    // Children beyond the usual one continuation that run here rather than in another process.
    let extra_here = if stay && !in_process {
        ready.len().saturating_sub(1) as u64
    } else {
        0
    };
    let mut placed = Placed {
        here: if stay { ready.len() as u32 } else { 0 },
        ..Placed::default()
    };
    if !stored && held {
        placed.kept_by = Some(Kept::DelayedIo);
        placed.saved_by_delayed_io = size * (1 + ready.len() as u64);
    } else if !stored {
        placed.kept_by = Some(Kept::Clustering);
        placed.saved_by_clustering = size * (1 + extra_here);
    } else {
        placed.saved_by_clustering = size * extra_here;
    }
    Ok(Some(Marking {
        ready,
        stay,
        placed,
    }))
}

/// The error for a store that answered "held" to a call that asked it to store.
fn held_anyway(dag: &LoadedDag, node: u32) -> DagError {
    DagError::Store(format!(
        "the store held node {node} of DAG {} although it was asked to store its output",
        dag.id
    ))
}
