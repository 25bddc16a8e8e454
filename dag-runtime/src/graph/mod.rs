//! The lazy graph a user builds: [`Node`] handles and the arguments that connect them.
//!
//! Calling a `#[task]` function records a node (which task, with which arguments) and returns a
//! typed [`Node<T>`] handle; nothing runs until `compute`. Arguments are converted by
//! [`IntoArg`], which is what lets a parameter of type `Vec<T>` accept a `Vec<Node<T>>`.

mod arg;
mod compute;
mod map;
mod node;
pub(crate) mod scope;

pub use arg::{Arg, IntoArg};
pub use map::List;
pub use node::{Node, NodeInner};
