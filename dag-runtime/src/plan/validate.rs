//! Checking that a [`Plan`] read from a store is one this program could have written.
//!
//! A Redis-backed DAG keeps its plan where anyone with access to the server can rewrite it, and
//! the engine indexes nodes, tasks and outputs by the numbers the plan holds. [`Plan::validate`]
//! checks every such number once, when a plan is loaded, so that the engine can index without a
//! panic (a panic on a worker thread strands the DAG; a second one on its error path kills the
//! worker). What it checks is what [`lower`](super::lower) and the map expansion guarantee by
//! construction; the rules are listed on the method.
//!
//! The cost is linear in the plan's size (sorting each node's own parents aside), with explicit
//! stacks instead of recursion. A map template's `children` and `parents` are not checked: they
//! are never read, since expansion links the instantiated nodes afresh.

use std::time::Duration;

use super::{ArgTemplate, MapTemplate, Plan, PlanNode};
use crate::error::DagError;

/// How deeply argument templates and map templates may nest in a valid plan.
///
/// Lowering nests argument templates as deep as a parameter's collection type (at most
/// `Vec<Vec<T>>` or `HashMap<String, T>` today) and map templates as deep as `.map` closures
/// nest in the source code, so a real plan stays far below this.
pub const MAX_NESTING: usize = 32;

/// The longest retry backoff a valid plan may carry (about 136 years): anything longer is not a
/// delay anyone chose, and the doubling of a longer one could overflow.
const MAX_BACKOFF: Duration = Duration::from_secs(u32::MAX as u64);

/// What is wrong with a plan, without where: [`Check`] adds the location.
type Problem = String;

impl Plan {
    /// Checks that this plan is consistent, so that the engine may index it without panicking.
    ///
    /// Call it on every plan read from a store, before running any of it. It checks that:
    ///
    /// - the plan has nodes, and the sink is the last one;
    /// - every node (also in map templates) names a task the plan lists;
    /// - a plan written by a client carries a signature per task (only a map's child plan,
    ///   written by a worker that checked its parent's, carries none);
    /// - every [`ArgTemplate::Parent`] names an earlier node (parents before children, so no
    ///   cycle);
    /// - `children` and `parents` agree with the templates: node `c` lists `p` as a child exactly
    ///   when `c`'s templates name `p`, and `parents` counts the distinct parents;
    /// - [`ArgTemplate::Element`] and [`ArgTemplate::Outer`] appear only in map templates,
    ///   `Outer(k)` names one of the map node's outer values, and a map node has its list
    ///   argument;
    /// - argument templates and map templates nest no deeper than [`MAX_NESTING`], so the
    ///   recursive code that walks them (expanding maps, cloning and dropping a plan) has a
    ///   bounded depth;
    /// - the retry backoff is not absurdly long (at most 2^32 seconds), so that doubling it
    ///   cannot overflow.
    ///
    /// Each failure is a [`DagError::InvalidGraph`] that names the node (and the map template,
    /// for a node inside one) and what is wrong, e.g. "the stored plan of this DAG is
    /// inconsistent: node 7 names task 12 but the plan has 3 tasks; was it written by other code
    /// or tampered with?". The cost is linear in the plan's size, without recursion.
    ///
    /// A map's child plan also names a node of its parent DAG's plan; check that link with
    /// [`validate_parent_link`](Self::validate_parent_link) once both plans are loaded.
    ///
    /// ```
    /// use dag::plan::{ArgTemplate, Plan, PlanNode};
    ///
    /// let node = |args, children, parents| PlanNode {
    ///     task: 0, args, children, parents, map: None, element: None,
    /// };
    /// let mut plan = Plan {
    ///     tasks: vec!["inc".into()],
    ///     nodes: vec![
    ///         node(vec![ArgTemplate::Const(vec![1].into())], vec![1], 0),
    ///         node(vec![ArgTemplate::Parent(0)], vec![], 1),
    ///     ],
    ///     sink: 1,
    ///     parent: None,
    ///     signatures: vec!["fn inc(x: i64) -> i64".into()],
    ///     policy: Default::default(),
    /// };
    /// assert!(plan.validate().is_ok());
    ///
    /// plan.nodes[1].task = 12; // what a tampered store could hold
    /// let error = plan.validate().unwrap_err().to_string();
    /// assert!(error.contains("node 1 names task 12 but the plan has 1 task"), "{error}");
    /// ```
    pub fn validate(&self) -> Result<(), DagError> {
        self.check().map_err(inconsistent)
    }

    /// Checks that this child plan of a map links to a map node of `parent`, the plan of the
    /// DAG its [`parent`](Plan::parent) link names. A plan without a parent link passes.
    ///
    /// Both plans should have passed [`validate`](Self::validate).
    pub fn validate_parent_link(&self, parent: &Plan) -> Result<(), DagError> {
        let Some(link) = &self.parent else {
            return Ok(());
        };
        match parent.nodes.get(link.node as usize) {
            None => Err(inconsistent(format!(
                "it completes node {} of DAG {} but that plan has {} nodes",
                link.node,
                link.dag,
                parent.nodes.len()
            ))),
            Some(node) if node.map.is_none() => Err(inconsistent(format!(
                "it completes node {} of DAG {}, which is not a `.map`",
                link.node, link.dag
            ))),
            Some(_) => Ok(()),
        }
    }

    fn check(&self) -> Result<(), Problem> {
        let Some(last) = self.nodes.len().checked_sub(1) else {
            return Err("it has no nodes".into());
        };
        if u32::try_from(self.nodes.len()).is_err() {
            return Err(format!(
                "it has {} nodes, more than a plan can index",
                self.nodes.len()
            ));
        }
        if self.sink as usize != last {
            return Err(format!(
                "its sink is node {} but the last of its {} nodes is node {last}",
                self.sink,
                self.nodes.len()
            ));
        }
        if self.signatures.is_empty() && self.parent.is_none() {
            // Without signatures a worker cannot tell a task of other code from its own.
            let problem = "it carries no task signatures, which only a map's child plan may omit";
            return Err(format!("{problem}, and it is not one"));
        }
        if !self.signatures.is_empty() && self.signatures.len() != self.tasks.len() {
            return Err(format!(
                "it lists {} tasks but {} task signatures",
                self.tasks.len(),
                self.signatures.len()
            ));
        }
        if let Some(backoff) = self.policy.backoff.filter(|b| *b > MAX_BACKOFF) {
            return Err(format!(
                "its retry backoff of {backoff:?} is longer than any delay anyone chose"
            ));
        }
        let mut check = Check {
            tasks: self.tasks.len(),
            args: Vec::new(),
            parents: Vec::new(),
        };
        check.scopes(&self.nodes)?;
        check.links(&self.nodes)
    }
}

/// The error for a plan that fails a check: says it is the stored plan, what is wrong, and what
/// probably happened.
fn inconsistent(problem: Problem) -> DagError {
    DagError::InvalidGraph(format!(
        "the stored plan of this DAG is inconsistent: {problem}; was it written by other code \
         or tampered with?"
    ))
}

/// The nodes of one scope: the plan's own, or a map template's.
struct Scope<'p> {
    nodes: &'p [PlanNode],
    /// For a template: its body, and how many outer values its map node passes. `None` for the
    /// plan's own nodes, where a template's element and outer values mean nothing.
    template: Option<(&'p ArgTemplate, usize)>,
    /// The map nodes leading to this template, outermost first (empty for the plan's own nodes):
    /// where an error is.
    path: Vec<u32>,
}

impl Scope<'_> {
    /// Names node `index` of this scope for an error message.
    fn node_name(&self, index: usize) -> String {
        if self.path.is_empty() {
            return format!("node {index}");
        }
        format!("node {index} of the `.map` template of {}", self.map_name())
    }

    /// Names the map node whose template this scope is.
    fn map_name(&self) -> String {
        let (first, rest) = self.path.split_first().unwrap_or((&0, &[]));
        let mut name = format!("node {first}");
        for inner in rest {
            name = format!("template node {inner} of {name}");
        }
        name
    }
}

/// Scratch space of the checks, reused across nodes so that a million small nodes allocate a
/// few buffers, not a million.
struct Check<'p> {
    tasks: usize,
    /// The explicit stack of argument templates still to look at, with their nesting depth.
    args: Vec<(&'p ArgTemplate, usize)>,
    /// The parent references of the node whose links are being checked.
    parents: Vec<u32>,
}

/// What an argument template may refer to where it appears.
#[derive(Clone, Copy)]
struct Refs {
    /// `Parent(p)` needs `p < parents_below`: the node's own index (parents come first) or, for
    /// a template's body, the number of template nodes.
    parents_below: usize,
    /// `None` outside map templates; in one, how many outer values `Outer(k)` may name.
    outer: Option<usize>,
    /// Whether this is a template's body (its result), which may name any template node.
    body: bool,
}

impl<'p> Check<'p> {
    /// Checks the nodes of the plan and, with a stack of scopes instead of recursion, of every
    /// map template nested in them: tasks, argument templates, map nodes.
    fn scopes(&mut self, nodes: &'p [PlanNode]) -> Result<(), Problem> {
        let mut scopes = vec![Scope {
            nodes,
            template: None,
            path: Vec::new(),
        }];
        while let Some(scope) = scopes.pop() {
            let outer = scope.template.map(|(_, outer)| outer);
            if let Some((body, _)) = scope.template {
                let refs = Refs {
                    parents_below: scope.nodes.len(),
                    outer,
                    body: true,
                };
                self.arg(body, refs).map_err(|problem| {
                    format!(
                        "the result of the `.map` template of {} {problem}",
                        scope.map_name()
                    )
                })?;
            }
            for (index, node) in scope.nodes.iter().enumerate() {
                let refs = Refs {
                    parents_below: index,
                    outer,
                    body: false,
                };
                self.node(node, refs).map_err(|problem| {
                    let separator = if problem.starts_with(':') { "" } else { " " };
                    format!("{}{separator}{problem}", scope.node_name(index))
                })?;
                if let Some(template) = &node.map {
                    if scope.path.len() >= MAX_NESTING {
                        return Err(format!(
                            "{} nests `.map` templates deeper than {MAX_NESTING} levels",
                            scope.node_name(index)
                        ));
                    }
                    let MapTemplate { nodes, body } = &**template;
                    let mut path = scope.path.clone();
                    path.push(index as u32);
                    scopes.push(Scope {
                        nodes,
                        // Checked in `node`: a map node has its list argument.
                        template: Some((body, node.args.len().saturating_sub(1))),
                        path,
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks one node's task and argument templates. The message continues the node's name
    /// ("node 3 names task ...").
    fn node(&mut self, node: &'p PlanNode, refs: Refs) -> Result<(), Problem> {
        if node.task as usize >= self.tasks {
            return Err(format!(
                "names task {} but the plan has {} task{}",
                node.task,
                self.tasks,
                if self.tasks == 1 { "" } else { "s" }
            ));
        }
        if node.map.is_some() && node.args.is_empty() {
            return Err("is a `.map` without the list to map over".into());
        }
        for (position, arg) in node.args.iter().enumerate() {
            self.arg(arg, refs)
                .map_err(|problem| format!(": argument {position} {problem}"))?;
        }
        Ok(())
    }

    /// Checks one argument template, with an explicit stack: a hostile plan may nest lists
    /// deeply. The message continues "argument 2 ...".
    fn arg(&mut self, arg: &'p ArgTemplate, refs: Refs) -> Result<(), Problem> {
        self.args.clear();
        self.args.push((arg, 1));
        while let Some((arg, depth)) = self.args.pop() {
            if depth > MAX_NESTING {
                return Err(format!(
                    "nests lists or maps deeper than {MAX_NESTING} levels"
                ));
            }
            match arg {
                ArgTemplate::Const(_) => {}
                ArgTemplate::Parent(p) => {
                    if *p as usize >= refs.parents_below {
                        return Err(match (refs.outer, refs.body) {
                            (None, _) => format!(
                                "takes the output of node {p}, which does not come before it \
                                 (parents come before their children)"
                            ),
                            (Some(_), false) => format!(
                                "takes the output of template node {p}, which does not come \
                                 before it (parents come before their children)"
                            ),
                            (Some(_), true) => format!(
                                "takes the output of template node {p} but the template has {} \
                                 nodes",
                                refs.parents_below
                            ),
                        });
                    }
                }
                ArgTemplate::Element => {
                    if refs.outer.is_none() {
                        return Err("takes a `.map` element outside any `.map` template".into());
                    }
                }
                ArgTemplate::Outer(k) => match refs.outer {
                    None => {
                        return Err(format!(
                            "takes outer value {k} of a `.map` outside any `.map` template"
                        ))
                    }
                    Some(outer) if *k as usize >= outer => {
                        return Err(format!(
                            "takes outer value {k} of its `.map` but the map node passes {outer}"
                        ))
                    }
                    Some(_) => {}
                },
                ArgTemplate::List(items) => {
                    self.args.extend(items.iter().map(|item| (item, depth + 1)));
                }
                ArgTemplate::Map(entries) => {
                    self.args
                        .extend(entries.iter().map(|(_, value)| (value, depth + 1)));
                }
            }
        }
        Ok(())
    }

    /// Checks that the plan's `children` and `parents` agree with the parent references of its
    /// templates (which `scopes` has checked).
    ///
    /// Each node's distinct parents, sorted, go into one flat array; every child entry `p -> c`
    /// must then be found among `c`'s parents, children lists must be free of repeats, and the
    /// two directions must hold as many edges: so they hold the same edges.
    fn links(&mut self, nodes: &'p [PlanNode]) -> Result<(), Problem> {
        // `start[c]..start[c + 1]` is the range of `flat` holding node c's distinct parents.
        let mut start = Vec::with_capacity(nodes.len() + 1);
        let mut flat = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            start.push(flat.len());
            self.parents.clear();
            for arg in &node.args {
                self.collect_parents(arg);
            }
            self.parents.sort_unstable();
            self.parents.dedup();
            if node.parents as usize != self.parents.len() {
                return Err(format!(
                    "node {index} counts {} parents but its arguments take the outputs of {} \
                     distinct nodes",
                    node.parents,
                    self.parents.len()
                ));
            }
            flat.extend_from_slice(&self.parents);
        }
        start.push(flat.len());

        // Node p is the last to have listed c as a child when `listed_by[c] == p`; `listed[c]`
        // counts the nodes that list c.
        let mut listed_by = vec![u32::MAX; nodes.len()];
        let mut listed = vec![0u32; nodes.len()];
        for (index, node) in nodes.iter().enumerate() {
            let parent = index as u32;
            for &child in &node.children {
                let c = child as usize;
                if c <= index || c >= nodes.len() {
                    return Err(format!(
                        "node {index} lists node {child} as a child, but children come after \
                         their parents and the plan has {} nodes",
                        nodes.len()
                    ));
                }
                if listed_by[c] == parent {
                    return Err(format!("node {index} lists node {child} as a child twice"));
                }
                listed_by[c] = parent;
                if flat[start[c]..start[c + 1]].binary_search(&parent).is_err() {
                    return Err(format!(
                        "node {index} lists node {child} as a child, but node {child} does not \
                         take its output"
                    ));
                }
                listed[c] += 1;
            }
        }
        // Each listing is one of c's distinct parents, without repeats: c is listed by all of
        // its parents exactly when the counts agree.
        for (index, &count) in listed.iter().enumerate() {
            let parents = &flat[start[index]..start[index + 1]];
            if count as usize != parents.len() {
                return Err(unlisted_parent(nodes, index, parents));
            }
        }
        Ok(())
    }

    /// Appends the parents `arg` names to `self.parents` (`arg` has passed [`Self::arg`], so its
    /// nesting is bounded; the stack is explicit all the same).
    fn collect_parents(&mut self, arg: &'p ArgTemplate) {
        self.args.clear();
        self.args.push((arg, 0));
        while let Some((arg, _)) = self.args.pop() {
            match arg {
                ArgTemplate::Parent(p) => self.parents.push(*p),
                ArgTemplate::List(items) => self.args.extend(items.iter().map(|a| (a, 0))),
                ArgTemplate::Map(entries) => self.args.extend(entries.iter().map(|(_, a)| (a, 0))),
                ArgTemplate::Const(_) | ArgTemplate::Element | ArgTemplate::Outer(_) => {}
            }
        }
    }
}

/// Names the parent of node `index` that does not list it as a child. Looks through each
/// parent's children once: at most every edge of the plan, once, on the error path.
fn unlisted_parent(nodes: &[PlanNode], index: usize, parents: &[u32]) -> Problem {
    let child = index as u32;
    let unlisted = parents.iter().find(|&&p| {
        nodes
            .get(p as usize)
            .is_some_and(|parent| !parent.children.contains(&child))
    });
    match unlisted {
        Some(parent) => format!(
            "node {index} takes the output of node {parent}, which does not list it as a child"
        ),
        None => format!("node {index}'s parents do not list it as their child"),
    }
}

#[cfg(test)]
mod tests;
