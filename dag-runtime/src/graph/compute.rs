//! Running a graph: `Node::compute` and its siblings, on the default runtime or a given one.

use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::DagError;
use crate::graph::Node;
use crate::plan::{lower, Plan};
use crate::runtime::Runtime;

impl<T> Node<T> {
    /// Lowers the graph that ends in this node into the [`Plan`] that workers execute, without
    /// running it: useful to inspect a graph's size and shape.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn inc(x: i64) -> i64 { x + 1 }
    ///
    /// let x = inc(1);
    /// let plan = inc(inc(&x)).plan()?;
    /// assert_eq!(plan.nodes.len(), 3);
    /// assert_eq!(plan.roots().collect::<Vec<_>>(), vec![0]);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn plan(&self) -> Result<Plan, DagError> {
        lower(self.inner())
    }
}

impl<T: DeserializeOwned> Node<T> {
    /// Runs the graph that ends in this node on the default embedded runtime and returns its
    /// value, blocking until it is done.
    ///
    /// Works from any thread, including a worker thread of a multi-threaded tokio runtime; in
    /// async code prefer [`compute_async`](Node::compute_async).
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn square(x: i64) -> i64 { x * x }
    ///
    /// assert_eq!(square(square(3)).compute()?, 81);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn compute(&self) -> Result<T, DagError> {
        self.compute_on(&Runtime::global()?)
    }

    /// Like [`compute`](Node::compute), on `runtime`.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// fn square(x: i64) -> i64 { x * x }
    ///
    /// let runtime = Runtime::builder().workers(2).build()?;
    /// assert_eq!(square(4).compute_on(&runtime)?, 16);
    /// # Ok::<(), DagError>(())
    /// ```
    pub fn compute_on(&self, runtime: &Runtime) -> Result<T, DagError> {
        runtime.block_on(self.compute_async_on(runtime))?
    }

    /// Runs the graph on the default embedded runtime without blocking the caller's executor.
    ///
    /// ```
    /// use dag::prelude::*;
    ///
    /// #[task]
    /// async fn delayed(x: i64) -> i64 {
    ///     tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    ///     x
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// assert_eq!(delayed(5).compute_async().await?, 5);
    /// # Ok::<(), DagError>(())
    /// # }).unwrap();
    /// ```
    pub async fn compute_async(&self) -> Result<T, DagError> {
        self.compute_async_on(&Runtime::global()?).await
    }

    /// Like [`compute_async`](Node::compute_async), on `runtime`.
    pub async fn compute_async_on(&self, runtime: &Runtime) -> Result<T, DagError> {
        let bytes = runtime.run(self.inner()).await?;
        // The whole value and nothing more: bytes left over mean the result is not this type.
        codec::decode_exact(&bytes).map_err(|message| DagError::Codec {
            action: "decode",
            what: format!("the result of task `{}`", self.task_name()),
            message,
        })
    }
}
