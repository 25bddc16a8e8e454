use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use super::{Node, NodeInner};
use crate::codec;
use crate::error::DagError;

/// One argument of a recorded call: a constant, another node's output, or a collection of those.
#[doc(hidden)]
pub enum Arg {
    /// A constant, already encoded.
    Const(Bytes),
    /// The output of another node.
    Node(Arc<NodeInner>),
    /// A list whose elements are arguments (a `Vec<Node<T>>` for a `Vec<T>` parameter).
    List(Vec<Arg>),
    /// A string-keyed map whose values are arguments.
    Map(Vec<(String, Arg)>),
    /// A constant that failed to encode, or a misuse of a map element; `compute` reports it.
    /// Boxed: an error is rare and large, and every argument of every node would otherwise be
    /// as large as it (about 100 bytes instead of 40).
    Invalid(Box<DagError>),
}

impl Arg {
    fn constant<T: Serialize + ?Sized>(value: &T) -> Arg {
        match codec::encode(value) {
            Ok(bytes) => Arg::Const(bytes),
            Err(message) => Arg::Invalid(Box::new(DagError::Codec {
                action: "encode",
                what: "a constant argument".into(),
                message,
            })),
        }
    }
}

/// Something that can be passed where a task expects a `T`.
///
/// Implemented for the constant `T` itself, for `Node<T>` and `&Node<T>`, and for collections of
/// nodes standing for collections of values: `Vec<Node<T>>` or `&[Node<T>]` for `Vec<T>`,
/// `Vec<Vec<Node<T>>>` for `Vec<Vec<T>>`, and `HashMap<String, Node<T>>` or
/// `BTreeMap<String, Node<T>>` for `HashMap<String, T>`.
///
/// ```
/// use std::collections::HashMap;
/// use dag::prelude::*;
///
/// #[task]
/// fn one(x: i64) -> i64 { x }
/// #[task]
/// fn total(xs: Vec<i64>) -> i64 { xs.iter().sum() }
/// #[task]
/// fn lookup(table: HashMap<String, i64>, key: String) -> i64 { table[&key] }
///
/// let nodes = vec![one(1), one(2), one(3)];
/// assert_eq!(total(nodes.clone()).compute()?, 6);
/// assert_eq!(total(vec![4, 5]).compute()?, 9);       // a constant list
/// let table: HashMap<String, Node<i64>> = [("b".to_string(), one(7))].into();
/// assert_eq!(lookup(table, "b").compute()?, 7);
/// # Ok::<(), DagError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be passed as a task argument of type `{T}`",
    label = "expected `{T}`, `Node<{T}>` or `&Node<{T}>`",
    note = "a task argument is a constant of the parameter's type, a node producing it, or for \
            `Vec<T>` / `Vec<Vec<T>>` / `HashMap<String, T>` parameters a collection of such nodes"
)]
pub trait IntoArg<T> {
    /// Records this value as an argument.
    #[doc(hidden)]
    fn into_arg(self) -> Arg;
}

impl<T: Serialize> IntoArg<T> for T {
    fn into_arg(self) -> Arg {
        Arg::constant(&self)
    }
}

// Kept out of "the trait is implemented for" hints: it is the one impl for a different
// parameter type, so rustc would suggest it for every wrong argument, whatever the type.
#[diagnostic::do_not_recommend]
impl IntoArg<String> for &str {
    fn into_arg(self) -> Arg {
        Arg::constant(self)
    }
}

impl<T> IntoArg<T> for Node<T> {
    fn into_arg(self) -> Arg {
        Arg::Node(self.into_inner())
    }
}

impl<T> IntoArg<T> for &Node<T> {
    fn into_arg(self) -> Arg {
        Arg::Node(Arc::clone(self.inner()))
    }
}

impl<T> IntoArg<Vec<T>> for Vec<Node<T>> {
    fn into_arg(self) -> Arg {
        Arg::List(
            self.into_iter()
                .map(|n| Arg::Node(n.into_inner()))
                .collect(),
        )
    }
}

impl<T> IntoArg<Vec<T>> for &[Node<T>] {
    fn into_arg(self) -> Arg {
        Arg::List(
            self.iter()
                .map(|n| Arg::Node(Arc::clone(n.inner())))
                .collect(),
        )
    }
}

impl<T> IntoArg<Vec<Vec<T>>> for Vec<Vec<Node<T>>> {
    fn into_arg(self) -> Arg {
        Arg::List(self.into_iter().map(IntoArg::<Vec<T>>::into_arg).collect())
    }
}

impl<T, S: BuildHasher> IntoArg<HashMap<String, T>> for HashMap<String, Node<T>, S> {
    fn into_arg(self) -> Arg {
        Arg::Map(
            self.into_iter()
                .map(|(k, n)| (k, Arg::Node(n.into_inner())))
                .collect(),
        )
    }
}

impl<T> IntoArg<HashMap<String, T>> for BTreeMap<String, Node<T>> {
    fn into_arg(self) -> Arg {
        Arg::Map(
            self.into_iter()
                .map(|(k, n)| (k, Arg::Node(n.into_inner())))
                .collect(),
        )
    }
}

impl<T> IntoArg<BTreeMap<String, T>> for BTreeMap<String, Node<T>> {
    fn into_arg(self) -> Arg {
        IntoArg::<HashMap<String, T>>::into_arg(self)
    }
}
