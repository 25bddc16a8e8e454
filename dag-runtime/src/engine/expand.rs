//! Expanding a dynamic map when its list is ready.
//!
//! The worker that gets a map node ready splits the list's bytes into elements (no decoding) and
//! instantiates the map's template once per element into a *child DAG*: an ordinary plan, stored
//! once, whose nodes are the elements' subgraphs plus one `dag::collect` sink that gathers their
//! results in input order. Any worker anywhere can then run the child's tasks like any other
//! DAG's. The child's sink completes the map node in the parent DAG (see `finish_node`), so the
//! parent carries on exactly as if the map had been one task. A fan-out of any width costs a
//! fixed number of store calls: one fetch of the inputs and one plan upload.

use std::sync::Arc;

use bytes::Bytes;

use super::assemble::Inputs;
use super::execute::Failed;
use super::{LoadedDag, WorkerContext};
use crate::codec::split_array;
use crate::error::DagError;
use crate::plan::{link, ArgTemplate, MapTemplate, ParentLink, Plan, PlanNode};
use crate::store::DagId;
use crate::task::builtin;

/// What expanding a map node gave.
pub(crate) enum Expansion {
    /// The list was empty: this is the map's output (an empty list), no child DAG needed.
    Empty(Bytes),
    /// The child DAG is stored; its roots are ready to run.
    Child {
        child: Arc<LoadedDag>,
        roots: Vec<u32>,
    },
    /// The map's arguments are not what a map takes: the map node fails.
    Failed(Failed),
}

/// Expands map node `index` of `dag`, whose inputs are `inputs`. `Err` is a store error.
pub(crate) fn expand(
    ctx: &WorkerContext,
    dag: &Arc<LoadedDag>,
    index: u32,
    template: &MapTemplate,
    inputs: &Inputs,
) -> Result<Expansion, DagError> {
    let (elements, outer) = match split_list(dag, index, inputs) {
        Ok(split) => split,
        Err(message) => return Ok(Expansion::Failed(message.into())),
    };
    if elements.is_empty() {
        return Ok(Expansion::Empty(Bytes::from_static(&[0x90]))); // an empty MessagePack array
    }
    // Node indices are u32: the child plan (the template per element, plus the sink) must fit.
    let fits = elements
        .len()
        .checked_mul(template.nodes.len())
        .is_some_and(|n| n < u32::MAX as usize);
    if !fits {
        return Ok(Expansion::Failed(
            format!(
                "the map's list has {} elements and its subgraph {} nodes: more than the 2^32 \
                 nodes a DAG can have",
                elements.len(),
                template.nodes.len()
            )
            .into(),
        ));
    }
    let child_plan = Arc::new(instantiate(
        template,
        &elements,
        &outer,
        &dag.plan,
        ParentLink {
            dag: dag.id.to_string(),
            node: index,
        },
    ));
    let child_id = DagId::from(format!("{}.{index}", dag.id).as_str());
    let child =
        LoadedDag::resolve(child_id, Arc::clone(&child_plan))?.with_parent(Arc::clone(dag), index);
    ctx.io
        .block_on(ctx.store.put_plan(&child.id, &child_plan))?;
    Ok(Expansion::Child {
        roots: child_plan.roots().collect(),
        child: Arc::new(child),
    })
}

/// The map's list split into its elements' bytes, and the outer values its subgraph uses.
fn split_list(
    dag: &LoadedDag,
    index: u32,
    inputs: &Inputs,
) -> Result<(Vec<Bytes>, Vec<Bytes>), String> {
    let mut args = inputs.assemble_all(&dag.node(index).args)?;
    if args.is_empty() {
        return Err("a map node has no list argument".into());
    }
    let list = args.remove(0);
    let elements =
        split_array(&list).map_err(|e| format!("the value given to `.map` is not a list: {e}"))?;
    Ok((elements, args))
}

/// The child plan: the template once per element, then a `dag::collect` sink.
fn instantiate(
    template: &MapTemplate,
    elements: &[Bytes],
    outer: &[Bytes],
    parent_plan: &Plan,
    parent: ParentLink,
) -> Plan {
    let mut tasks = parent_plan.tasks.to_vec();
    let collect = match tasks.iter().position(|t| t == builtin::COLLECT.name) {
        Some(i) => i as u32,
        None => {
            tasks.push(builtin::COLLECT.name.to_owned());
            (tasks.len() - 1) as u32
        }
    };
    let width = template.nodes.len();
    let mut nodes = Vec::with_capacity(elements.len() * width + 1);
    let mut results = Vec::with_capacity(elements.len());
    for (i, element) in elements.iter().enumerate() {
        let instance = Instance {
            base: (i * width) as u32,
            element,
            outer,
        };
        for node in &template.nodes {
            nodes.push(PlanNode {
                task: node.task,
                args: node.args.iter().map(|a| instance.arg(a)).collect(),
                children: Vec::new(),
                parents: 0,
                // A nested map's template refers to its own node's arguments, which are
                // rewritten above, so it is copied as it is.
                map: node.map.clone(),
                element: Some(i as u32),
            });
        }
        results.push(instance.arg(&template.body));
    }
    nodes.push(PlanNode {
        task: collect,
        args: vec![ArgTemplate::List(results)],
        children: Vec::new(),
        parents: 0,
        map: None,
        element: None,
    });
    link(&mut nodes);
    Plan {
        tasks,
        sink: (nodes.len() - 1) as u32,
        nodes,
        parent: Some(parent),
        signatures: Vec::new(),
        policy: parent_plan.policy,
    }
}

/// One element's copy of the template.
struct Instance<'a> {
    base: u32,
    element: &'a Bytes,
    outer: &'a [Bytes],
}

impl Instance<'_> {
    fn arg(&self, template: &ArgTemplate) -> ArgTemplate {
        match template {
            ArgTemplate::Const(bytes) => ArgTemplate::Const(bytes.clone()),
            ArgTemplate::Parent(j) => ArgTemplate::Parent(self.base + j),
            ArgTemplate::Element => ArgTemplate::Const(self.element.clone()),
            ArgTemplate::Outer(k) => ArgTemplate::Const(self.outer[*k as usize].clone()),
            ArgTemplate::List(items) => {
                ArgTemplate::List(items.iter().map(|a| self.arg(a)).collect())
            }
            ArgTemplate::Map(entries) => ArgTemplate::Map(
                entries
                    .iter()
                    .map(|(k, a)| (k.clone(), self.arg(a)))
                    .collect(),
            ),
        }
    }
}
