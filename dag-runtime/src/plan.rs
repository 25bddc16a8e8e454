//! The lowered form of a graph that workers execute: [`Plan`], and [`lower`] which builds it.
//!
//! Lowering walks the graph reachable from the sink once, without recursion, and numbers the
//! nodes densely in topological order (every parent before its children, the sink last). A node
//! reached along several paths gets one index, so it runs once. The plan is plain data
//! (serde-serializable): it is what a Redis-backed DAG stores for workers on other machines.

use std::sync::Arc;

use bytes::Bytes;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::DagError;
use crate::graph::{Arg, NodeInner};

/// A lowered DAG: dense node indices in topological order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Distinct task names; [`PlanNode::task`] indexes this list.
    pub tasks: Vec<String>,
    /// The nodes, parents before children.
    pub nodes: Vec<PlanNode>,
    /// Index of the sink, whose output is the DAG's result (always the last node).
    pub sink: u32,
}

/// One node of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanNode {
    /// Index into [`Plan::tasks`].
    pub task: u32,
    /// One template per parameter, saying how to assemble that parameter's bytes.
    pub args: Vec<ArgTemplate>,
    /// Distinct nodes that take this node's output as an input.
    pub children: Vec<u32>,
    /// Number of distinct nodes whose outputs this node takes.
    pub parents: u32,
}

/// How to assemble one parameter's MessagePack bytes from constants and parents' outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArgTemplate {
    /// These bytes as they are.
    Const(Bytes),
    /// The output of node `n`.
    Parent(u32),
    /// A MessagePack array of the elements.
    List(Vec<ArgTemplate>),
    /// A MessagePack map from the keys to the values.
    Map(Vec<(String, ArgTemplate)>),
}

impl ArgTemplate {
    /// Calls `f` with every parent this template refers to (repeats included).
    pub fn for_each_parent(&self, f: &mut impl FnMut(u32)) {
        match self {
            ArgTemplate::Const(_) => {}
            ArgTemplate::Parent(p) => f(*p),
            ArgTemplate::List(items) => items.iter().for_each(|a| a.for_each_parent(f)),
            ArgTemplate::Map(entries) => entries.iter().for_each(|(_, a)| a.for_each_parent(f)),
        }
    }
}

impl PlanNode {
    /// The distinct parents of this node, in ascending order.
    pub fn distinct_parents(&self) -> Vec<u32> {
        let mut parents = Vec::new();
        self.distinct_parents_into(&mut parents);
        parents
    }

    /// Like [`distinct_parents`](Self::distinct_parents), reusing `parents`' allocation.
    pub fn distinct_parents_into(&self, parents: &mut Vec<u32>) {
        parents.clear();
        for arg in &self.args {
            arg.for_each_parent(&mut |p| parents.push(p));
        }
        parents.sort_unstable();
        parents.dedup();
    }
}

impl Plan {
    /// Nodes with no parents: where execution starts.
    pub fn roots(&self) -> impl Iterator<Item = u32> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.parents == 0)
            .map(|(i, _)| i as u32)
    }

    /// The node at `index`.
    pub fn node(&self, index: u32) -> &PlanNode {
        &self.nodes[index as usize]
    }

    /// The task name of node `index`.
    pub fn task_name(&self, index: u32) -> &str {
        &self.tasks[self.node(index).task as usize]
    }
}

/// Lowers the graph reachable from `sink` into a [`Plan`].
///
/// Fails with [`DagError::Codec`] if a constant argument could not be encoded.
pub fn lower(sink: &Arc<NodeInner>) -> Result<Plan, DagError> {
    let (order, index) = topological_order(sink);

    let mut task_index: FxHashMap<&'static str, u32> = FxHashMap::default();
    let mut tasks = Vec::new();
    let mut nodes = Vec::with_capacity(order.len());
    for node in &order {
        let task = *task_index.entry(node.task.name).or_insert_with(|| {
            tasks.push(node.task.name.to_owned());
            (tasks.len() - 1) as u32
        });
        let args = node
            .args
            .iter()
            .map(|arg| template(arg, &index, node.task.name))
            .collect::<Result<Vec<_>, _>>()?;
        nodes.push(PlanNode {
            task,
            args,
            children: Vec::new(),
            parents: 0,
        });
    }
    drop(index);

    let mut parents = Vec::new();
    for child in 0..nodes.len() {
        nodes[child].distinct_parents_into(&mut parents);
        nodes[child].parents = parents.len() as u32;
        for &parent in &parents {
            nodes[parent as usize].children.push(child as u32);
        }
    }

    Ok(Plan {
        tasks,
        sink: (nodes.len() - 1) as u32,
        nodes,
    })
}

/// Marks a node whose parents are being walked but that has no index yet.
const IN_PROGRESS: u32 = u32::MAX;

/// Node address -> plan index. Keys are pointers, so a fast non-cryptographic hash is safe and
/// (at a million nodes) several times cheaper than the default SipHash.
type NodeIndex = FxHashMap<*const NodeInner, u32>;

/// Post-order walk from the sink with an explicit stack: parents come out before children.
/// Returns the nodes in that order and each node's position in it.
fn topological_order(sink: &Arc<NodeInner>) -> (Vec<&NodeInner>, NodeIndex) {
    // `false`: first visit, push the parents; `true`: the parents are done, number the node.
    let mut stack: Vec<(&NodeInner, bool)> = vec![(sink, false)];
    let mut index = NodeIndex::default();
    let mut order = Vec::new();
    while let Some((node, parents_done)) = stack.pop() {
        let key = node as *const NodeInner;
        if parents_done {
            index.insert(key, order.len() as u32);
            order.push(node);
            continue;
        }
        if index.contains_key(&key) {
            continue;
        }
        index.insert(key, IN_PROGRESS);
        stack.push((node, true));
        for arg in node.args.iter().rev() {
            push_parents(arg, &mut stack, &index);
        }
    }
    (order, index)
}

fn push_parents<'g>(arg: &'g Arg, stack: &mut Vec<(&'g NodeInner, bool)>, index: &NodeIndex) {
    // Collections of nodes are at most as deep as the parameter's type, so this recursion is
    // bounded by the source code, not by the graph.
    match arg {
        Arg::Node(parent) => {
            if !index.contains_key(&Arc::as_ptr(parent)) {
                stack.push((parent, false));
            }
        }
        Arg::List(items) => items
            .iter()
            .rev()
            .for_each(|a| push_parents(a, stack, index)),
        Arg::Map(entries) => entries
            .iter()
            .rev()
            .for_each(|(_, a)| push_parents(a, stack, index)),
        Arg::Const(_) | Arg::Invalid(_) => {}
    }
}

fn template(arg: &Arg, index: &NodeIndex, task: &str) -> Result<ArgTemplate, DagError> {
    Ok(match arg {
        Arg::Const(bytes) => ArgTemplate::Const(bytes.clone()),
        Arg::Node(parent) => ArgTemplate::Parent(index[&Arc::as_ptr(parent)]),
        Arg::List(items) => ArgTemplate::List(
            items
                .iter()
                .map(|a| template(a, index, task))
                .collect::<Result<_, _>>()?,
        ),
        Arg::Map(entries) => ArgTemplate::Map(
            entries
                .iter()
                .map(|(k, a)| Ok((k.clone(), template(a, index, task)?)))
                .collect::<Result<_, DagError>>()?,
        ),
        Arg::Invalid(message) => {
            return Err(DagError::Codec {
                action: "encode",
                what: format!("a constant argument of task `{task}`"),
                message: message.clone(),
            })
        }
    })
}
