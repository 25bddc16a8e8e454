//! The graph of one run as the page draws it: nodes with their state and details, edges, and a
//! level per node (the longest path from a root, the page's columns).
//!
//! Two sources, the same shape: while the run goes, its plan (every node) with the store's
//! snapshot of which finished; once it has ended (the plan is gone with the DAG's keys), the
//! task records of its metrics (the nodes that ran, linked through the inputs each fetched and
//! the parent whose output it got in memory). Above [`AGGREGATE_ABOVE`] nodes, nodes with the
//! same task name and level become one group node, so that a graph of 100,000 nodes stays
//! responsive; the page says so.

use std::collections::{BTreeMap, HashMap, HashSet};

use dag::metrics::{Kept, Outcome, PathStep, TaskRecord};
use dag::store::DagSnapshot;
use serde::Serialize;

/// Above this many nodes the graph is drawn by groups (task name and level).
pub const AGGREGATE_ABOVE: usize = 1_500;

/// A node's state, as the page colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Some parent has not finished.
    Waiting,
    /// Every parent finished: queued or running (the store does not tell them apart: that
    /// would cost a round trip per task start).
    Ready,
    /// An attempt failed and the task is being retried.
    Retried,
    /// Finished.
    Done,
    /// Failed: its last attempt failed, and with it the run.
    Failed,
}

/// One node (or, aggregated, one group of nodes).
#[derive(Debug, Clone, Serialize)]
pub struct NodeView {
    /// The node's index in its DAG's plan (aggregated: the group's index).
    pub id: u32,
    pub task: String,
    /// Longest path from a root: the column it is drawn in.
    pub level: u32,
    pub state: NodeState,
    /// Nodes it stands for (1 unless aggregated).
    pub count: u32,
    /// Aggregated: how many of its nodes are in each state.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub states: BTreeMap<NodeState, u32>,
    /// On the critical path of a finished run.
    pub critical: bool,
    /// The last attempt, once recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<AttemptView>,
    /// The failure that ended the run here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a dynamic map node: its child DAG's progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<MapView>,
}

/// What the metrics recorded of a node's last attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub worker: String,
    pub attempt: u32,
    pub outcome: Outcome,
    pub start_us: u64,
    pub end_us: u64,
    pub fetch_ms: f64,
    pub run_ms: f64,
    pub store_ms: f64,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub continuation: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_by: Option<Kept>,
}

/// The child DAG of a dynamic map node, drawn inside it.
#[derive(Debug, Clone, Serialize)]
pub struct MapView {
    /// The child DAG's id (`<run>.<node>`).
    pub dag: String,
    /// Its tasks recorded so far.
    pub tasks: u64,
    /// Of which finished.
    pub done: u64,
    /// Of which failed.
    pub failed: u64,
}

/// The graph of a run.
#[derive(Debug, Clone, Serialize)]
pub struct GraphView {
    /// `plan` (the run goes: every node) or `records` (it ended: the nodes that ran).
    pub source: &'static str,
    pub nodes: Vec<NodeView>,
    /// `[from, to]` by node `id`.
    pub edges: Vec<[u32; 2]>,
    /// Set when nodes were grouped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregated: Option<Aggregation>,
}

/// How a large graph was grouped.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregation {
    /// Nodes in the run's graph.
    pub nodes: usize,
    /// What a group is.
    pub by: &'static str,
    /// Per node index, its group: what the live updates (by node) are applied through.
    pub group_of: Vec<u32>,
}

/// One node as collected from either source, before grouping.
struct Collected {
    task: String,
    parents: Vec<u32>,
    state: NodeState,
}

/// The graph of run `id` from its live snapshot, if it is running, else from its records.
pub fn build(
    id: &str,
    snapshot: Option<&DagSnapshot>,
    records: &[TaskRecord],
    critical_path: &[PathStep],
    run_error: Option<&str>,
) -> GraphView {
    let last = last_attempts(id, records);
    let (source, nodes) = match snapshot {
        Some(snapshot) => ("plan", from_plan(snapshot, &last)),
        None => ("records", from_records(&last)),
    };
    let errors: HashMap<u32, String> = match snapshot {
        Some(snapshot) => snapshot
            .errors
            .iter()
            .map(|e| (e.node, e.message.clone()))
            .collect(),
        None => HashMap::new(),
    };
    let critical: HashSet<u32> = critical_path
        .iter()
        .filter(|step| step.dag == id)
        .map(|step| step.node)
        .collect();
    let maps = map_views(id, records);

    let levels = levels(&nodes);
    let mut views: Vec<NodeView> = nodes
        .iter()
        .map(|(&index, node)| {
            let state = if errors.contains_key(&index) {
                NodeState::Failed
            } else {
                node.state
            };
            let error = errors.get(&index).cloned().or_else(|| {
                (state == NodeState::Failed)
                    .then(|| run_error.map(str::to_owned))
                    .flatten()
            });
            NodeView {
                id: index,
                task: node.task.clone(),
                level: levels[&index],
                state,
                count: 1,
                states: BTreeMap::new(),
                critical: critical.contains(&index),
                attempt: last.get(&index).map(|r| attempt_view(r)),
                error,
                map: maps.get(&index).cloned(),
            }
        })
        .collect();
    let mut edges: Vec<[u32; 2]> = nodes
        .iter()
        .flat_map(|(&child, node)| node.parents.iter().map(move |&p| [p, child]))
        .filter(|[p, _]| nodes.contains_key(p))
        .collect();
    edges.sort_unstable();

    if views.len() <= AGGREGATE_ABOVE {
        return GraphView {
            source,
            nodes: views,
            edges,
            aggregated: None,
        };
    }
    let total = views.len();
    let max_index = views.iter().map(|v| v.id).max().unwrap_or(0) as usize;
    let (groups, group_of) = aggregate(&mut views, max_index);
    let mut group_edges: Vec<[u32; 2]> = edges
        .iter()
        .map(|&[p, c]| [group_of[p as usize], group_of[c as usize]])
        .filter(|[p, c]| p != c)
        .collect();
    group_edges.sort_unstable();
    group_edges.dedup();
    GraphView {
        source,
        nodes: groups,
        edges: group_edges,
        aggregated: Some(Aggregation {
            nodes: total,
            by: "task name and level",
            group_of,
        }),
    }
}

/// The last attempt of each node of DAG `id` (not of its maps' child DAGs).
fn last_attempts<'a>(id: &str, records: &'a [TaskRecord]) -> HashMap<u32, &'a TaskRecord> {
    let mut last: HashMap<u32, &TaskRecord> = HashMap::new();
    for record in records.iter().filter(|r| &*r.dag == id) {
        let entry = last.entry(record.node).or_insert(record);
        if (record.attempt, record.end_us) > (entry.attempt, entry.end_us) {
            *entry = record;
        }
    }
    last
}

fn from_plan(snapshot: &DagSnapshot, last: &HashMap<u32, &TaskRecord>) -> BTreeMap<u32, Collected> {
    let plan = &snapshot.plan;
    let mut parents: Vec<Vec<u32>> = vec![Vec::new(); plan.nodes.len()];
    for (index, node) in plan.nodes.iter().enumerate() {
        for &child in &node.children {
            if let Some(list) = parents.get_mut(child as usize) {
                list.push(index as u32);
            }
        }
    }
    let finished = |n: u32| {
        snapshot.finished.get(n as usize).copied().unwrap_or(false)
            || last.get(&n).is_some_and(|r| r.outcome == Outcome::Ok)
    };
    parents
        .into_iter()
        .enumerate()
        .map(|(index, parents)| {
            let index = index as u32;
            let state = if finished(index) {
                NodeState::Done
            } else if last
                .get(&index)
                .is_some_and(|r| r.outcome == Outcome::Retried)
            {
                NodeState::Retried
            } else if parents.iter().all(|&p| finished(p)) {
                NodeState::Ready
            } else {
                NodeState::Waiting
            };
            let collected = Collected {
                task: plan.task_name(index),
                parents,
                state,
            };
            (index, collected)
        })
        .collect()
}

fn from_records(last: &HashMap<u32, &TaskRecord>) -> BTreeMap<u32, Collected> {
    last.iter()
        .map(|(&index, record)| {
            let mut parents: Vec<u32> = record.inputs.iter().map(|i| i.node).collect();
            parents.extend(record.carried_from);
            parents.sort_unstable();
            parents.dedup();
            let state = match record.outcome {
                Outcome::Ok => NodeState::Done,
                Outcome::Retried => NodeState::Retried,
                Outcome::Error | Outcome::TimedOut => NodeState::Failed,
            };
            let collected = Collected {
                task: record.task.to_string(),
                parents,
                state,
            };
            (index, collected)
        })
        .collect()
}

/// Longest path from a root, per node: nodes come parents first (plan order), so one pass.
fn levels(nodes: &BTreeMap<u32, Collected>) -> HashMap<u32, u32> {
    let mut levels: HashMap<u32, u32> = HashMap::with_capacity(nodes.len());
    for (&index, node) in nodes {
        let level = node
            .parents
            .iter()
            .filter_map(|p| levels.get(p))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        levels.insert(index, level);
    }
    levels
}

fn attempt_view(record: &TaskRecord) -> AttemptView {
    AttemptView {
        worker: record.worker.to_string(),
        attempt: record.attempt,
        outcome: record.outcome,
        start_us: record.start_us,
        end_us: record.end_us,
        fetch_ms: record.fetch_us as f64 / 1e3,
        run_ms: record.run_us as f64 / 1e3,
        store_ms: record.store_us as f64 / 1e3,
        input_bytes: record.bytes_downloaded(),
        output_bytes: record.output_bytes,
        continuation: record.continuation,
        kept_by: record.kept_by,
    }
}

/// The progress of each map node's child DAG (`<id>.<node>`), from its records.
fn map_views(id: &str, records: &[TaskRecord]) -> HashMap<u32, MapView> {
    let prefix = format!("{id}.");
    let mut per_child: HashMap<&str, HashMap<u32, Outcome>> = HashMap::new();
    for record in records {
        let Some(rest) = record.dag.strip_prefix(&prefix) else {
            continue;
        };
        if rest.contains('.') {
            continue; // a map inside a map: shown inside its own map node's child DAG
        }
        let outcomes = per_child.entry(&record.dag).or_default();
        let entry = outcomes.entry(record.node).or_insert(record.outcome);
        if record.outcome != Outcome::Retried {
            *entry = record.outcome;
        }
    }
    per_child
        .into_iter()
        .filter_map(|(dag, outcomes)| {
            let node: u32 = dag[prefix.len()..].parse().ok()?;
            let count = |wanted: &[Outcome]| {
                outcomes.values().filter(|o| wanted.contains(o)).count() as u64
            };
            let view = MapView {
                dag: dag.to_owned(),
                tasks: outcomes.len() as u64,
                done: count(&[Outcome::Ok]),
                failed: count(&[Outcome::Error, Outcome::TimedOut]),
            };
            Some((node, view))
        })
        .collect()
}

/// Groups `views` by task name and level; returns the groups and each node's group.
fn aggregate(views: &mut [NodeView], max_index: usize) -> (Vec<NodeView>, Vec<u32>) {
    let mut index_of: HashMap<(String, u32), u32> = HashMap::new();
    let mut groups: Vec<NodeView> = Vec::new();
    let mut group_of = vec![0u32; max_index + 1];
    for view in views.iter_mut() {
        let key = (view.task.clone(), view.level);
        let group = *index_of.entry(key).or_insert_with(|| {
            groups.push(NodeView {
                id: groups.len() as u32,
                task: view.task.clone(),
                level: view.level,
                state: NodeState::Done,
                count: 0,
                states: BTreeMap::new(),
                critical: false,
                attempt: None,
                error: None,
                map: None,
            });
            groups.len() as u32 - 1
        });
        group_of[view.id as usize] = group;
        let g = &mut groups[group as usize];
        g.count += 1;
        *g.states.entry(view.state).or_default() += 1;
        g.critical |= view.critical;
        if g.error.is_none() {
            g.error = view.error.take();
        }
    }
    for g in &mut groups {
        g.state = group_state(&g.states);
    }
    (groups, group_of)
}

/// A group's colour: failed if any failed, else the least advanced state among its nodes.
pub fn group_state(states: &BTreeMap<NodeState, u32>) -> NodeState {
    if states.contains_key(&NodeState::Failed) {
        return NodeState::Failed;
    }
    states.keys().copied().next().unwrap_or(NodeState::Waiting)
}
