//! `.map` on a list node: a fan-out whose width is known only at run time.

use super::scope::{self, Scope};
use super::{Arg, Node, NodeInner};
use crate::task::builtin;

/// A type `.map` can fan out over: a list. Implemented for `Vec<T>`.
#[diagnostic::on_unimplemented(
    message = "`.map` fans out over a list, but this node produces a `{Self}`",
    label = "`.map` needs a `Node<Vec<T>>`",
    note = "make the task return a `Vec<T>` to map over its elements; to transform a single \
            value, pass the node to another task"
)]
pub trait List {
    /// The element type.
    type Element;
}

impl<T> List for Vec<T> {
    type Element = T;
}

impl<L> Node<L> {
    /// Applies `body` to every element of the list this node produces, in parallel, and gives
    /// the results as a list in input order.
    ///
    /// The list's length is known only when it has been computed, so `body` runs once, now, on
    /// a placeholder `Node<T>` standing for "an element", and returns the per-element subgraph
    /// (one task or several; it may use nodes and constants from outside the closure, which run
    /// once and are shared). At run time the worker that produces the list expands that subgraph
    /// once per element. Maps chain and nest; an empty list gives an empty `Vec`.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn split(text: String) -> Vec<String> {
    ///     text.split_whitespace().map(str::to_owned).collect()
    /// }
    /// #[task]
    /// fn length(word: String) -> usize { word.len() }
    /// #[task]
    /// fn scale(x: usize, by: usize) -> usize { x * by }
    /// #[task]
    /// fn total(xs: Vec<usize>) -> usize { xs.iter().sum() }
    ///
    /// let factor = scale(1, 10);                        // outside the closure: runs once
    /// let lengths = split("a bb ccc").map(|word| scale(length(word), &factor));
    /// assert_eq!(lengths.compute()?, vec![10, 20, 30]);
    /// assert_eq!(total(lengths).compute()?, 60);        // a map's result is a Vec<R> node
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn map<R, F>(&self, body: F) -> Node<Vec<R>>
    where
        L: List,
        F: FnOnce(Node<L::Element>) -> Node<R>,
    {
        let guard = scope::enter();
        let bound = guard.scope;
        let element = Node::<L::Element>::from_inner(NodeInner {
            task: &builtin::ELEMENT,
            args: Vec::new(),
            scope: bound,
            bound: Scope::TOP,
        });
        let result = body(element);
        drop(guard);

        let mut args = vec![
            Arg::Node(self.inner().clone()),
            Arg::Node(result.into_inner()),
        ];
        // The map node lives in the scope where it is built (inside an enclosing closure, it is
        // part of that closure's subgraph), or deeper if its list is.
        let scope = match scope::current().innermost(self.inner().scope) {
            Ok(scope) => scope,
            Err(()) => {
                args.push(Arg::Invalid(Box::new(crate::DagError::InvalidGraph(
                    "`.map` is called on the element of a closure that is not open here".into(),
                ))));
                Scope::TOP
            }
        };
        Node::from_inner(NodeInner {
            task: &builtin::MAP,
            args,
            scope,
            bound,
        })
    }
}
