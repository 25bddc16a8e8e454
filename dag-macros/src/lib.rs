//! The `#[task]` attribute of the `dag` crate. Use it as `dag::task`; users never name this crate.
//!
//! The macro works in three stages, one file each:
//!
//! - `attr` parses the options inside `#[task(...)]`;
//! - `model` checks the function and describes it as a `model::Task`, collecting every error
//!   it finds (each a `syn::Error` spanned at the offending token);
//! - `expand` generates the node-building wrapper, the type-erased entry point and the
//!   registration.

use proc_macro::TokenStream;

mod attr;
mod expand;
mod model;

/// See the documentation of `dag::task`.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    let options = match syn::parse::<attr::Options>(args) {
        Ok(options) => options,
        Err(e) => return fallback(e, item),
    };
    let function = match syn::parse::<syn::ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(e) => return fallback(e, item),
    };
    match model::Task::from_fn(options, function) {
        Ok(task) => expand::expand(&task).into(),
        Err(e) => fallback(e, item),
    }
}

/// On error, emit the error and the function unchanged, so the user sees our message rather
/// than a cascade of "cannot find function" errors at every call site.
fn fallback(error: syn::Error, item: TokenStream) -> TokenStream {
    let mut out: TokenStream = error.to_compile_error().into();
    out.extend(item);
    out
}
