//! The lowered form of a graph that workers execute: [`Plan`], and [`lower`] which builds it.
//!
//! Lowering walks the graph reachable from the sink once, without recursion over the graph, and
//! numbers the nodes densely in topological order (every parent before its children, the sink
//! last). A node reached along several paths gets one index, so it runs once. The plan is plain
//! data (serde-serializable): it is what a Redis-backed DAG stores for workers elsewhere.
//!
//! A dynamic map (`list.map(|x| ..)`) lowers to one plan node whose [`MapTemplate`] holds the
//! per-element subgraph as a small plan of its own. Its arguments are the list and the outer
//! values the subgraph uses; at run time the engine instantiates the template once per element
//! into a child DAG (see [`crate::engine`]). Templates nest as deep as the closures in the source
//! code, which bounds the only recursion here.

use std::sync::Arc;

use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::error::DagError;
use crate::graph::scope::Scope;
use crate::graph::{Arg, NodeInner};
use crate::task::TaskPolicy;

mod validate;

pub use validate::MAX_NESTING;

/// The deepest nesting of MessagePack arrays and maps that [`Plan::decode`] accepts: enough for
/// every plan that [`Plan::validate`] accepts (a `.map` template level takes 3, an argument
/// template level at most 2: a map entry is a pair). Measured in a debug build, a level of a
/// plan takes at most about 4.5 KiB of stack while decoding, so this stays under 1 MiB of a
/// worker thread's 2 MiB; rmp-serde's own limit (1024) would not.
const MAX_DECODE_DEPTH: usize = 5 * MAX_NESTING + 8;

/// A lowered DAG: dense node indices in topological order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Distinct task names; [`PlanNode::task`] indexes this list.
    pub tasks: Vec<String>,
    /// The nodes, parents before children.
    pub nodes: Vec<PlanNode>,
    /// Index of the sink, whose output is the DAG's result (always the last node).
    pub sink: u32,
    /// For the child DAG of an expanded map: the map node it completes in its parent DAG.
    pub parent: Option<ParentLink>,
    /// The signature of each task as the client compiled it ([`TaskDef::signature`](crate::task::TaskDef::signature)),
    /// parallel to `tasks`: a worker built from other code detects the difference. Empty means
    /// unchecked (a map's child plan, made by a worker that already checked its parent's).
    #[serde(default)]
    pub signatures: Vec<String>,
    /// The submitting runtime's retry policy defaults
    /// ([`RuntimeBuilder::retries`](crate::RuntimeBuilder::retries) and its siblings), so that
    /// workers in other processes apply them as the client's own workers do.
    #[serde(default)]
    pub policy: TaskPolicy,
}

/// Where a child DAG's result goes: node `node` of DAG `dag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    /// The parent DAG's id.
    pub dag: String,
    /// The map node of the parent that the child's result completes.
    pub node: u32,
}

/// One node of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanNode {
    /// Index into [`Plan::tasks`].
    pub task: u32,
    /// One template per parameter, saying how to assemble that parameter's bytes. For a map
    /// node: the list, then the outer values its template uses.
    pub args: Vec<ArgTemplate>,
    /// Distinct nodes that take this node's output as an input.
    pub children: Vec<u32>,
    /// Number of distinct nodes whose outputs this node takes.
    pub parents: u32,
    /// For a dynamic map node, the subgraph to run per element.
    pub map: Option<Box<MapTemplate>>,
    /// For a node of an expanded map, the index of its element (errors say `task[i]`).
    pub element: Option<u32>,
}

/// The per-element subgraph of a dynamic map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapTemplate {
    /// The subgraph's nodes in topological order; [`ArgTemplate::Parent`] indexes this list,
    /// [`ArgTemplate::Element`] is the element and [`ArgTemplate::Outer`] the map's outer values.
    pub nodes: Vec<PlanNode>,
    /// What one element's result is: a template node, the element itself or an outer value.
    pub body: ArgTemplate,
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
    /// In a [`MapTemplate`]: the element the subgraph runs on.
    Element,
    /// In a [`MapTemplate`]: the map node's argument `1 + k` (the k-th outer value).
    Outer(u32),
}

impl ArgTemplate {
    /// Calls `f` with every parent this template refers to (repeats included).
    ///
    /// Recursive, since it runs for every node the engine steps and a stack would cost an
    /// allocation each time: the depth is bounded by how deep [`Plan::decode`] lets a stored plan
    /// nest (and [`MAX_NESTING`] for a validated one), and by the parameter types for a plan this
    /// program lowered.
    pub fn for_each_parent(&self, f: &mut impl FnMut(u32)) {
        match self {
            ArgTemplate::Parent(p) => f(*p),
            ArgTemplate::List(items) => items.iter().for_each(|a| a.for_each_parent(f)),
            ArgTemplate::Map(entries) => entries.iter().for_each(|(_, a)| a.for_each_parent(f)),
            ArgTemplate::Const(_) | ArgTemplate::Element | ArgTemplate::Outer(_) => {}
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
    /// Decodes a plan from its MessagePack encoding (as [`rmp_serde::to_vec`] writes it).
    ///
    /// Meant for bytes read from a store, which anyone with access to the store could have
    /// written: besides rmp-serde's own guards (lengths are checked against the bytes present,
    /// and pre-allocations are capped), the nesting depth is limited so that decoding cannot
    /// overflow the stack. The result still has to pass [`validate`](Self::validate) before the
    /// engine runs it.
    ///
    /// ```
    /// use dag::plan::Plan;
    ///
    /// // An array header claiming 2^32-1 elements, with nothing after it.
    /// assert!(Plan::decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
    /// ```
    pub fn decode(bytes: &[u8]) -> Result<Plan, String> {
        let mut decoder = rmp_serde::Deserializer::from_read_ref(bytes);
        // rmp-serde fails when its counter reaches 0: allow exactly MAX_DECODE_DEPTH levels.
        decoder.set_max_depth(MAX_DECODE_DEPTH + 1);
        Plan::deserialize(&mut decoder).map_err(|e| match e {
            rmp_serde::decode::Error::DepthLimitExceeded => format!(
                "it nests arrays and maps deeper than {MAX_DECODE_DEPTH} levels, deeper than any \
                 plan this program writes"
            ),
            other => other.to_string(),
        })
    }

    /// Nodes with no parents: where execution starts.
    pub fn roots(&self) -> impl Iterator<Item = u32> + '_ {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.parents == 0)
            .map(|(i, _)| i as u32)
    }

    /// The node at `index`.
    ///
    /// Panics if there is none: for an index that came from a store (an invocation read from a
    /// stream), use [`checked_node`](Self::checked_node).
    pub fn node(&self, index: u32) -> &PlanNode {
        &self.nodes[index as usize]
    }

    /// The node at `index`, or [`DagError::InvalidGraph`] saying there is none: for an index that
    /// came from a store (an invocation), which a validated plan does not vouch for.
    ///
    /// ```
    /// # let plan = {
    /// #     use dag::prelude::*;
    /// #     #[task]
    /// #     fn inc(x: i64) -> i64 { x + 1 }
    /// #     inc(1).plan()?
    /// # };
    /// assert!(plan.checked_node(0).is_ok());
    /// let error = plan.checked_node(7).unwrap_err().to_string();
    /// assert!(error.contains("node 7 but the plan has 1 node"), "{error}");
    /// # Ok::<(), dag::DagError>(())
    /// ```
    pub fn checked_node(&self, index: u32) -> Result<&PlanNode, DagError> {
        self.nodes.get(index as usize).ok_or_else(|| {
            DagError::InvalidGraph(format!(
                "an invocation names node {index} but the plan has {} node{}; was it written by \
                 other code or tampered with?",
                self.nodes.len(),
                if self.nodes.len() == 1 { "" } else { "s" }
            ))
        })
    }

    /// The task name of node `index`, with `[i]` for a node of a map's element `i`.
    ///
    /// Never panics, since error paths call it with whatever index they were given: for an index
    /// the plan lacks (or a node naming a task it lacks) the name says so.
    pub fn task_name(&self, index: u32) -> String {
        let Some(node) = self.nodes.get(index as usize) else {
            return format!("<node {index}, not in the plan>");
        };
        let Some(name) = self.tasks.get(node.task as usize) else {
            return format!("<task {} of node {index}, not in the plan>", node.task);
        };
        match node.element {
            Some(i) => format!("{name}[{i}]"),
            None => name.clone(),
        }
    }
}

/// Fills in every node's `children` and `parents` from the `Parent` references of its args.
///
/// For nodes this program built (lowering, map expansion): every reference must name a node of
/// `nodes` (it indexes them). A plan read from a store is checked by [`Plan::validate`] instead.
pub fn link(nodes: &mut [PlanNode]) {
    // Two passes, so that each node's list of children is allocated once at its exact size
    // (pushing one child at a time would reserve room for 4): first the distinct parents of
    // every node, flattened, then the children.
    let mut parents = Vec::new();
    let mut all_parents: Vec<u32> = Vec::new();
    let mut children = vec![0u32; nodes.len()];
    for node in nodes.iter_mut() {
        node.distinct_parents_into(&mut parents);
        node.parents = parents.len() as u32;
        for &parent in &parents {
            children[parent as usize] += 1;
        }
        all_parents.extend_from_slice(&parents);
    }
    for (node, &count) in nodes.iter_mut().zip(&children) {
        node.children.reserve_exact(count as usize);
    }
    drop(children);
    let mut all_parents = all_parents.into_iter();
    for child in 0..nodes.len() {
        for parent in all_parents.by_ref().take(nodes[child].parents as usize) {
            nodes[parent as usize].children.push(child as u32);
        }
    }
}

/// Lowers the graph reachable from `sink` into a [`Plan`].
///
/// Fails with [`DagError::Codec`] if a constant argument could not be encoded, and with
/// [`DagError::InvalidGraph`] if a map's element is used outside its closure.
pub fn lower(sink: &Arc<NodeInner>) -> Result<Plan, DagError> {
    if sink.scope != Scope::TOP {
        return Err(misplaced_element());
    }
    let mut lowering = Lowering::default();
    let order = lowering.order(&[sink], Scope::TOP)?;
    let nodes = lowering.plan_nodes(&order, Scope::TOP)?;
    Ok(Plan {
        tasks: lowering.tasks,
        sink: (nodes.len() - 1) as u32,
        nodes,
        parent: None,
        signatures: lowering.signatures,
        policy: TaskPolicy::default(),
    })
}

/// Node address -> index. Keys are pointers, so a fast non-cryptographic hash is safe and (at a
/// million nodes) several times cheaper than the default SipHash.
type NodeIndex = FxHashMap<*const NodeInner, u32>;

/// A plan index that no plan node has: the reference to a map fused into the map that takes
/// its list (which never reads it).
const FUSED: u32 = u32::MAX;

/// The nodes of one scope that a root needs, in topological order.
///
/// Only nodes that several others use (and the roots) are looked up by address, in `index`:
/// a node held by one `Arc` is reached along one path only, once, so its index travels to the
/// node that uses it through `deps` instead. At a million nodes that saves a hash table of
/// a million entries and three lookups per node.
struct ScopeOrder<'g> {
    /// The nodes in walk order, parents before children, including the maps fused away.
    nodes: Vec<&'g NodeInner>,
    /// Plan index of every shared node and root of this scope.
    index: NodeIndex,
    /// Per node of `nodes`, the plan indices of the dependencies of its own scope in the order
    /// [`Lowering::dependencies`] lists them: `deps[dep_start[i]..dep_start[i + 1]]`.
    deps: Vec<u32>,
    dep_start: Vec<u32>,
    /// Nodes of enclosing scopes that this scope's nodes use, in first-use order.
    outer: Vec<&'g NodeInner>,
    /// Map nodes whose only use is as the list of another map: they are fused into it (see
    /// [`compose`]) instead of becoming plan nodes.
    fused_away: FxHashSet<*const NodeInner>,
}

impl ScopeOrder<'_> {
    /// The order of a template with no nodes of its own.
    fn empty<'g>(outer: Vec<&'g NodeInner>) -> ScopeOrder<'g> {
        ScopeOrder {
            nodes: Vec::new(),
            index: NodeIndex::default(),
            deps: Vec::new(),
            dep_start: vec![0],
            outer,
            fused_away: FxHashSet::default(),
        }
    }

    /// The dependencies' plan indices of the node at walk position `position`.
    fn deps_of(&self, position: usize) -> &[u32] {
        let (start, end) = (self.dep_start[position], self.dep_start[position + 1]);
        &self.deps[start as usize..end as usize]
    }
}

/// A step of [`Lowering::order`]'s walk.
enum Frame<'g> {
    /// Reach `node` from a node that uses it; `shared` if other nodes may use it too.
    Visit(&'g NodeInner, bool),
    /// The `deps` dependencies of `node` are numbered (their indices are the last `deps` values
    /// on the value stack): number the node.
    Finish {
        node: &'g NodeInner,
        shared: bool,
        deps: usize,
    },
}

#[derive(Default)]
struct Lowering<'g> {
    tasks: Vec<String>,
    signatures: Vec<String>,
    task_index: FxHashMap<&'static str, u32>,
    /// Per map node: its template's order (computed once, on the first visit).
    templates: FxHashMap<*const NodeInner, ScopeOrder<'g>>,
}

fn misplaced_element() -> DagError {
    DagError::InvalidGraph(
        "a `.map` element is used outside the closure that received it; build everything that \
         depends on the element inside the closure and use the map's result outside"
            .into(),
    )
}

impl<'g> Lowering<'g> {
    /// Post-order walk from `roots` over the nodes of `scope`, with an explicit stack: parents
    /// come out before children. Nodes of enclosing scopes are collected as outer references.
    ///
    /// Each walked node leaves its walk position on a value stack for the node that reached
    /// it, which takes its dependencies' positions from there when it is numbered: so only
    /// shared nodes need the address index.
    fn order(&mut self, roots: &[&'g NodeInner], scope: Scope) -> Result<ScopeOrder<'g>, DagError> {
        let mut stack: Vec<Frame<'g>> = roots.iter().rev().map(|r| Frame::Visit(r, true)).collect();
        let mut index = NodeIndex::default();
        let mut nodes = Vec::new();
        let mut values: Vec<u32> = Vec::new();
        let mut dep_index: Vec<u32> = Vec::new();
        let mut dep_start: Vec<u32> = vec![0];
        let mut outer = Vec::new();
        let mut outer_seen = FxHashSet::default();
        let mut deps: Vec<(&'g NodeInner, bool)> = Vec::new();
        // Per map node of this scope: how often it is used, and whether its one use so far is
        // as the list of another map.
        let mut map_uses: FxHashMap<*const NodeInner, (u32, bool)> = FxHashMap::default();
        while let Some(frame) = stack.pop() {
            let (node, shared) = match frame {
                Frame::Finish { node, shared, deps } => {
                    let position = nodes.len() as u32;
                    let first = values.len() - deps;
                    dep_index.extend(values.drain(first..));
                    dep_start.push(dep_index.len() as u32);
                    if shared {
                        index.insert(node as *const NodeInner, position);
                    }
                    nodes.push(node);
                    values.push(position);
                    continue;
                }
                Frame::Visit(node, shared) => (node, shared),
            };
            // A shared node reached again is done: no cycle can reach a node being walked.
            if shared {
                if let Some(&position) = index.get(&(node as *const NodeInner)) {
                    values.push(position);
                    continue;
                }
            }
            self.dependencies(node, &mut deps)?;
            for (position, &(dep, _)) in deps.iter().enumerate() {
                if dep.is_map() && dep.scope == scope {
                    let uses = map_uses
                        .entry(dep as *const NodeInner)
                        .or_insert((0, false));
                    uses.0 += 1;
                    uses.1 = node.is_map() && position == 0;
                }
            }
            let finish = stack.len();
            stack.push(Frame::Finish {
                node,
                shared,
                deps: 0,
            });
            let mut walked = 0;
            for &(dep, dep_shared) in deps.iter().rev() {
                if dep.is_element() && dep.scope == scope {
                    continue; // the element itself: an input of the template, not a node
                }
                if dep.scope == scope {
                    stack.push(Frame::Visit(dep, dep_shared));
                    walked += 1;
                } else if dep.scope.depth < scope.depth {
                    if outer_seen.insert(dep as *const NodeInner) {
                        outer.push(dep);
                    }
                } else {
                    return Err(misplaced_element());
                }
            }
            if let Frame::Finish { deps, .. } = &mut stack[finish] {
                *deps = walked;
            }
        }
        // `.map(f).map(g)`: when the first map's list is used by nothing but the second map, the
        // two become one map of `g(f(x))`, so each element goes on without waiting for the
        // whole first list.
        let fused_away: FxHashSet<*const NodeInner> = map_uses
            .into_iter()
            .filter(|&(node, (count, as_list))| {
                count == 1 && as_list && !roots.iter().any(|r| std::ptr::eq(*r, node))
            })
            .map(|(node, _)| node)
            .collect();
        if !fused_away.is_empty() {
            // Walk positions become plan indices: the fused maps have none.
            let mut next = 0;
            let plan_index: Vec<u32> = nodes
                .iter()
                .map(|n| {
                    if fused_away.contains(&(*n as *const NodeInner)) {
                        FUSED
                    } else {
                        next += 1;
                        next - 1
                    }
                })
                .collect();
            for i in index.values_mut().chain(dep_index.iter_mut()) {
                *i = plan_index[*i as usize];
            }
        }
        Ok(ScopeOrder {
            nodes,
            index,
            deps: dep_index,
            dep_start,
            outer,
            fused_away,
        })
    }

    /// The nodes `node` needs before it can run, each with whether other nodes may use it too:
    /// its argument nodes; for a map node, its list and the outer nodes its template uses
    /// (counted as shared: maps are few, and their template's outer nodes are reached through
    /// the template).
    fn dependencies(
        &mut self,
        node: &'g NodeInner,
        deps: &mut Vec<(&'g NodeInner, bool)>,
    ) -> Result<(), DagError> {
        deps.clear();
        if node.is_map() {
            let (list, _) = map_parts(node)?;
            deps.push((list, true));
            let template = self.template_order(node)?;
            deps.extend(template.outer.iter().map(|&n| (n, true)));
            return Ok(());
        }
        for arg in &node.args {
            push_arg_nodes(arg, deps).map_err(|error| name_task(error, node.task.name))?;
        }
        Ok(())
    }

    /// The order of a map node's template, computed on first use.
    fn template_order(&mut self, map: &'g NodeInner) -> Result<&ScopeOrder<'g>, DagError> {
        let key = map as *const NodeInner;
        if !self.templates.contains_key(&key) {
            let (_, body) = map_parts(map)?;
            let order = if body.scope == map.bound && !body.is_element() {
                self.order(&[body], map.bound)?
            } else if body.scope == map.bound || body.scope.depth < map.bound.depth {
                // The body is the element itself or an outer node: no per-element tasks.
                let outer = if body.is_element() {
                    vec![]
                } else {
                    vec![body]
                };
                ScopeOrder::empty(outer)
            } else {
                return Err(misplaced_element());
            };
            self.templates.insert(key, order);
        }
        Ok(&self.templates[&key])
    }

    fn task(&mut self, def: &'static crate::task::TaskDef) -> u32 {
        *self.task_index.entry(def.name).or_insert_with(|| {
            self.tasks.push(def.name.to_owned());
            self.signatures.push(def.signature.to_owned());
            (self.tasks.len() - 1) as u32
        })
    }

    /// The plan nodes of a scope's order, linked.
    fn plan_nodes(
        &mut self,
        order: &ScopeOrder<'g>,
        scope: Scope,
    ) -> Result<Vec<PlanNode>, DagError> {
        let refs = Refs::new(order, scope);
        let mut nodes = Vec::with_capacity(order.nodes.len() - order.fused_away.len());
        // Lowered maps that were fused away, waiting for the map that takes their list.
        let mut pending: FxHashMap<*const NodeInner, (Vec<ArgTemplate>, MapTemplate)> =
            FxHashMap::default();
        for (position, &node) in order.nodes.iter().enumerate() {
            let key = node as *const NodeInner;
            let task = self.task(node.task);
            // The plan indices of the node's dependencies, taken in the order it lists them.
            let mut deps = order.deps_of(position).iter().copied();
            let (args, map) = if node.is_map() {
                let (list, _) = map_parts(node)?;
                let list_ref = refs.node(list, &mut deps)?;
                let template = self.map_template(node)?;
                let mut outer_args = Vec::new();
                for outer in &self.templates[&key].outer {
                    outer_args.push(refs.node(outer, &mut deps)?);
                }
                let (args, template) = match pending.remove(&(list as *const NodeInner)) {
                    Some((first_args, first)) => compose(first_args, first, outer_args, template),
                    None => {
                        let mut args = vec![list_ref];
                        args.extend(outer_args);
                        (args, template)
                    }
                };
                if order.fused_away.contains(&key) {
                    pending.insert(key, (args, template));
                    continue;
                }
                (args, Some(Box::new(template)))
            } else {
                // Sized up front: collecting through a `Result` would start at 4 templates
                // (160 bytes) for the one argument most nodes have.
                let mut args = Vec::with_capacity(node.args.len());
                for arg in &node.args {
                    args.push(
                        refs.arg(arg, &mut deps)
                            .map_err(|error| name_task(error, node.task.name))?,
                    );
                }
                (args, None)
            };
            nodes.push(PlanNode {
                task,
                args,
                children: Vec::new(),
                parents: 0,
                map,
                element: None,
            });
        }
        link(&mut nodes);
        Ok(nodes)
    }

    /// Lowers a map node's template (its order was computed while walking the graph).
    fn map_template(&mut self, map: &'g NodeInner) -> Result<MapTemplate, DagError> {
        let key = map as *const NodeInner;
        self.template_order(map)?;
        // Take the order out while lowering it, since lowering may visit nested templates.
        let order = self.templates.remove(&key).expect("computed above");
        let lowered = self.plan_nodes(&order, map.bound);
        let (_, body) = map_parts(map)?;
        let body = Refs::new(&order, map.bound).root(body);
        self.templates.insert(key, order);
        Ok(MapTemplate {
            nodes: lowered?,
            body: body?,
        })
    }
}

/// Fuses map `first` into the map that takes its list: one template running the first map's
/// subgraph and then the second's on its result. The fused map's arguments are the first map's
/// (its list and outer values) followed by the second's outer values.
fn compose(
    first_args: Vec<ArgTemplate>,
    first: MapTemplate,
    second_outer_args: Vec<ArgTemplate>,
    second: MapTemplate,
) -> (Vec<ArgTemplate>, MapTemplate) {
    let node_offset = first.nodes.len() as u32;
    let outer_offset = first_args.len() as u32 - 1;
    let shift = |arg: &ArgTemplate| shift_arg(arg, node_offset, outer_offset, &first.body);
    let mut nodes = first.nodes.clone();
    for node in second.nodes {
        nodes.push(PlanNode {
            args: node.args.iter().map(shift).collect(),
            ..node
        });
    }
    let body = shift(&second.body);
    link_template(&mut nodes);
    let mut args = first_args;
    args.extend(second_outer_args);
    (args, MapTemplate { nodes, body })
}

/// Renumbers the second template's references for [`compose`]: its element is the first
/// template's result.
fn shift_arg(arg: &ArgTemplate, nodes: u32, outer: u32, element: &ArgTemplate) -> ArgTemplate {
    match arg {
        ArgTemplate::Const(bytes) => ArgTemplate::Const(bytes.clone()),
        ArgTemplate::Parent(j) => ArgTemplate::Parent(j + nodes),
        ArgTemplate::Outer(k) => ArgTemplate::Outer(k + outer),
        ArgTemplate::Element => element.clone(),
        ArgTemplate::List(items) => ArgTemplate::List(
            items
                .iter()
                .map(|a| shift_arg(a, nodes, outer, element))
                .collect(),
        ),
        ArgTemplate::Map(entries) => ArgTemplate::Map(
            entries
                .iter()
                .map(|(k, a)| (k.clone(), shift_arg(a, nodes, outer, element)))
                .collect(),
        ),
    }
}

/// Recomputes a template's children and parent counts from scratch.
fn link_template(nodes: &mut [PlanNode]) {
    for node in nodes.iter_mut() {
        node.children.clear();
        node.parents = 0;
    }
    link(nodes);
}

/// Says which task a constant that failed to encode belongs to.
fn name_task(error: DagError, task: &str) -> DagError {
    match error {
        DagError::Codec {
            action, message, ..
        } => DagError::Codec {
            action,
            what: format!("a constant argument of task `{task}`"),
            message,
        },
        other => other,
    }
}

/// Appends the nodes of one argument, in order, each with whether anything else holds it (a
/// node held by one `Arc` is used by this argument alone). Collections of nodes are at most as
/// deep as the parameter's type, so this recursion is bounded by the source code, not by the
/// graph.
fn push_arg_nodes<'g>(arg: &'g Arg, deps: &mut Vec<(&'g NodeInner, bool)>) -> Result<(), DagError> {
    match arg {
        Arg::Node(parent) => deps.push((parent, Arc::strong_count(parent) > 1)),
        Arg::List(items) => {
            for item in items {
                push_arg_nodes(item, deps)?;
            }
        }
        Arg::Map(entries) => {
            for (_, item) in entries {
                push_arg_nodes(item, deps)?;
            }
        }
        Arg::Const(_) => {}
        Arg::Invalid(error) => return Err((**error).clone()),
    }
    Ok(())
}

/// The list and the closure's result of a map node.
fn map_parts(map: &NodeInner) -> Result<(&NodeInner, &NodeInner), DagError> {
    match map.args.as_slice() {
        [Arg::Node(list), Arg::Node(body)] => Ok((list, body)),
        [.., Arg::Invalid(error)] => Err((**error).clone()),
        _ => Err(DagError::InvalidGraph("a map node is malformed".into())),
    }
}

/// Turns argument nodes into references within one scope.
struct Refs<'a> {
    index: &'a NodeIndex,
    outer: FxHashMap<*const NodeInner, u32>,
    scope: Scope,
}

impl<'a> Refs<'a> {
    /// References within `order`'s scope: its nodes by index, its outer nodes by position.
    fn new(order: &'a ScopeOrder<'_>, scope: Scope) -> Self {
        Refs {
            index: &order.index,
            outer: order
                .outer
                .iter()
                .enumerate()
                .map(|(k, n)| (*n as *const NodeInner, k as u32))
                .collect(),
            scope,
        }
    }

    /// The reference to `node`, a dependency of the node being lowered: the element, the next
    /// of that node's dependency indices (`deps`, see [`ScopeOrder::deps`]), or an outer value.
    fn node(
        &self,
        node: &NodeInner,
        deps: &mut impl Iterator<Item = u32>,
    ) -> Result<ArgTemplate, DagError> {
        if node.is_element() && node.scope == self.scope {
            Ok(ArgTemplate::Element)
        } else if node.scope == self.scope {
            // The walk numbered it and handed its index over: one per dependency, in order.
            deps.next().map(ArgTemplate::Parent).ok_or_else(|| {
                DagError::InvalidGraph("lowering lost track of a node's dependencies".into())
            })
        } else {
            self.outer(node)
        }
    }

    /// The reference to a root of the order (a template's body), found by address.
    fn root(&self, node: &NodeInner) -> Result<ArgTemplate, DagError> {
        if node.is_element() && node.scope == self.scope {
            Ok(ArgTemplate::Element)
        } else if let Some(&i) = self.index.get(&(node as *const NodeInner)) {
            Ok(ArgTemplate::Parent(i))
        } else {
            self.outer(node)
        }
    }

    fn outer(&self, node: &NodeInner) -> Result<ArgTemplate, DagError> {
        match self.outer.get(&(node as *const NodeInner)) {
            Some(&k) => Ok(ArgTemplate::Outer(k)),
            None => Err(misplaced_element()),
        }
    }

    fn arg(
        &self,
        arg: &Arg,
        deps: &mut impl Iterator<Item = u32>,
    ) -> Result<ArgTemplate, DagError> {
        // Collections of nodes are at most as deep as the parameter's type, so this recursion is
        // bounded by the source code, not by the graph.
        Ok(match arg {
            Arg::Const(bytes) => ArgTemplate::Const(bytes.clone()),
            Arg::Node(node) => self.node(node, deps)?,
            Arg::List(items) => {
                let mut list = Vec::with_capacity(items.len());
                for item in items {
                    list.push(self.arg(item, deps)?);
                }
                ArgTemplate::List(list)
            }
            Arg::Map(entries) => {
                let mut map = Vec::with_capacity(entries.len());
                for (key, item) in entries {
                    map.push((key.clone(), self.arg(item, deps)?));
                }
                ArgTemplate::Map(map)
            }
            Arg::Invalid(error) => return Err((**error).clone()),
        })
    }
}
