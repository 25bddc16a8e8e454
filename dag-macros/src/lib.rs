//! The `#[task]` attribute of the `dag` crate. Use it as `dag::task`; users never name this crate.
//!
//! The macro works in three stages, one file each:
//!
//! - `attr` parses the options inside `#[task(...)]`, through one generic `keyword = value`
//!   parser;
//! - `model` checks the function and describes it as a `model::Task`, collecting every error
//!   it finds (each a `syn::Error` spanned at the offending token);
//! - `expand` generates the node-building wrapper, the type-erased entry point and the
//!   registration.

use proc_macro::TokenStream;

mod attr;
mod expand;
mod model;

// Documented where users find it, on the re-export `dag::task` (`src/lib.rs` of `dag`): what a
// task function may be, and a section with an example per option. A doc comment here would be
// appended to that page.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    let function = match syn::parse::<syn::ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(e) => return fallback(e, item),
    };
    // Bad options do not stop the checks of the function: the user sees both at once.
    let mut errors = Errors::default();
    let options = syn::parse::<attr::Options>(args).unwrap_or_else(|e| {
        errors.push(e);
        attr::Options::default()
    });
    match (model::Task::from_fn(options, function), errors.finish()) {
        (Ok(task), Ok(())) => expand::expand(&task).into(),
        (Ok(_), Err(e)) | (Err(e), Ok(())) => fallback(e, item),
        (Err(function_errors), Err(mut all)) => {
            all.combine(function_errors);
            fallback(all, item)
        }
    }
}

/// On error, emit the error and the function unchanged, so the user sees our message rather
/// than a cascade of "cannot find function" errors at every call site.
fn fallback(error: syn::Error, item: TokenStream) -> TokenStream {
    let mut out: TokenStream = error.to_compile_error().into();
    out.extend(item);
    out
}

/// Collects every problem, so the user sees them all at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn spanned(&mut self, tokens: impl quote::ToTokens, message: &str) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Every error collected, combined into one; `Ok` if there was none.
    fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
