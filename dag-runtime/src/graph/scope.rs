//! Scopes: which `.map` closure's element a node depends on.
//!
//! `list.map(|x| body)` runs the closure once, at build time, on a placeholder `x`. Every node
//! built from `x` (directly or through other such nodes) belongs to the closure's scope and is
//! replicated once per element at run time; nodes built only from constants and outer nodes stay
//! outside and run once. Scopes nest: a map inside a map's closure opens a deeper scope.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU32, Ordering};

/// A node's scope: `depth` 0 is the top level; a deeper scope is an inner `.map` closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    /// How many `.map` closures enclose the scope.
    pub depth: u32,
    /// Unique per closure call (0 for the top level).
    pub id: u32,
}

impl Scope {
    /// The top level: nodes that depend on no element.
    pub const TOP: Scope = Scope { depth: 0, id: 0 };

    /// The innermost of two scopes a node depends on, or `Err` if they are unrelated scopes of
    /// the same depth (an element used outside its closure).
    pub fn innermost(self, other: Scope) -> Result<Scope, ()> {
        if self.depth == other.depth && self.id != other.id {
            Err(())
        } else if other.depth > self.depth {
            Ok(other)
        } else {
            Ok(self)
        }
    }
}

thread_local! {
    static OPEN: RefCell<Vec<Scope>> = const { RefCell::new(Vec::new()) };
}

/// Opens the scope of a `.map` closure about to run on this thread; [`ScopeGuard`] closes it.
pub fn enter() -> ScopeGuard {
    static NEXT_ID: AtomicU32 = AtomicU32::new(1);
    let scope = OPEN.with(|open| {
        let mut open = open.borrow_mut();
        let scope = Scope {
            depth: open.len() as u32 + 1,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        };
        open.push(scope);
        scope
    });
    ScopeGuard { scope }
}

/// The innermost scope open on this thread (the closure being built), or the top level.
pub fn current() -> Scope {
    OPEN.with(|open| open.borrow().last().copied().unwrap_or(Scope::TOP))
}

/// Closes its scope when dropped, even if the closure panics.
pub struct ScopeGuard {
    /// The scope this guard keeps open.
    pub scope: Scope,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        OPEN.with(|open| {
            open.borrow_mut().pop();
        });
    }
}
