//! Generating the code for a checked [`Task`].
//!
//! For `#[task] fn add(a: i64, b: i64) -> i64 { a + b }` the output is, in outline:
//!
//! ```text
//! fn add(a: impl IntoArg<i64>, b: impl IntoArg<i64>) -> Node<i64> {
//!     fn __dag_body(a: i64, b: i64) -> i64 { a + b }        // the user's body, unchanged
//!     fn __dag_run(args: Vec<Bytes>) -> TaskRun { .. }      // decode, call, encode
//!     static __DAG_TASK: TaskDef = TaskDef { name: "crate::module::add", .. };
//!     inventory::submit!(TaskRegistration(&__DAG_TASK));    // found by name at run time
//!     Node::__from_task(&__DAG_TASK, vec![a.into_arg(), b.into_arg()])
//! }
//! ```
//!
//! Everything is reached through `::dag::__private`, so the generated code works in any crate
//! that depends on `dag` alone.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::{Output, Task};

pub fn expand(task: &Task) -> TokenStream {
    let private = quote!(::dag::__private);
    let function = &task.function;
    let attrs = &function.attrs;
    let vis = &function.vis;
    let name = &function.sig.ident;
    let node_type = task.output.node_type();

    // Spanned at the parameter's type, so a wrong argument's "required by this bound" note
    // points at the parameter it was passed for.
    let wrapper_params = task.params.iter().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        let bound = quote_spanned!(ty.span()=> impl ::dag::__private::IntoArg<#ty>);
        quote!(#ident: #bound)
    });
    let into_args = task.params.iter().map(|p| {
        let (ident, ty) = (&p.ident, &p.ty);
        quote!(#private::IntoArg::<#ty>::into_arg(#ident))
    });

    let registered_name = match &task.options.name {
        Some(lit) => quote!(#lit),
        None => {
            let text = name.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #text))
        }
    };
    let param_names = task.params.iter().map(|p| &p.display);
    let signature = {
        let sig = &function.sig;
        quote!(#sig).to_string()
    };

    let policy = policy(task);
    let large_output = match task.options.large_output {
        Some(bytes) => {
            let bytes = bytes as usize;
            quote!(::core::option::Option::Some(#bytes))
        }
        None => quote!(::core::option::Option::None),
    };
    let is_async = task.is_async();
    let body = body_fn(task);
    let run = run_fn(task);

    quote! {
        #(#attrs)*
        #vis fn #name(#(#wrapper_params),*) -> #private::Node<#node_type> {
            #body
            #run
            static __DAG_TASK: #private::TaskDef = #private::TaskDef {
                name: #registered_name,
                params: &[#(#param_names),*],
                signature: #signature,
                is_async: #is_async,
                policy: #policy,
                large_output: #large_output,
                run: __dag_run,
            };
            #private::inventory::submit! { #private::TaskRegistration(&__DAG_TASK) }
            #private::Node::__from_task(&__DAG_TASK, ::std::vec![#(#into_args),*])
        }
    }
}

/// The task's own retry policy; `None` fields fall back to the runtime's defaults.
fn policy(task: &Task) -> TokenStream {
    let private = quote!(::dag::__private);
    let option_u32 = |v: Option<u32>| match v {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let option_duration = |v: Option<std::time::Duration>| match v {
        Some(d) => {
            let nanos = d.as_nanos() as u64;
            quote!(::core::option::Option::Some(::core::time::Duration::from_nanos(#nanos)))
        }
        None => quote!(::core::option::Option::None),
    };
    let retries = option_u32(task.options.retries);
    let backoff = option_duration(task.options.backoff);
    let timeout = option_duration(task.options.timeout);
    quote!(#private::TaskPolicy { retries: #retries, backoff: #backoff, timeout: #timeout })
}

/// The user's function, renamed, with its body untouched.
fn body_fn(task: &Task) -> TokenStream {
    let mut sig = task.function.sig.clone();
    sig.ident = format_ident!("__dag_body");
    let block = &task.function.block;
    quote!(#sig #block)
}

/// `__dag_run`: decode every parameter, call the body, encode its output.
fn run_fn(task: &Task) -> TokenStream {
    let private = quote!(::dag::__private);
    let values: Vec<_> = (0..task.params.len())
        .map(|i| format_ident!("__dag_value_{}", i))
        .collect();
    // Every parameter and the output type are named in a turbofish with the user's own type
    // tokens: their `TaskValue` bound is then checked once per type, and an unserializable type
    // is reported at the type itself rather than at `#[task]`.
    let decodes = task.params.iter().enumerate().map(|(i, p)| {
        let ty = &p.ty;
        quote!(#private::decode_arg::<#ty, _>(&__dag_args, #i, &__DAG_TASK)?)
    });
    let types = task.params.iter().map(|p| &p.ty);
    let call = if task.is_async() {
        quote!(__dag_body(#(#values),*).await)
    } else {
        quote!(__dag_body(#(#values),*))
    };
    let encode = match &task.output {
        Output::Value(ty) => quote!(#private::encode_output::<#ty, _>(&__dag_out, &__DAG_TASK)),
        Output::Result { ok } => {
            quote!(#private::encode_result::<#ok, _, _>(__dag_out, &__DAG_TASK))
        }
    };
    let finish = if task.is_async() {
        quote!(#private::pending(async move {
            let __dag_out = #call;
            #encode
        }))
    } else {
        quote!(#private::TaskRun::Done({
            let __dag_out = #call;
            #encode
        }))
    };
    quote! {
        fn __dag_run(__dag_args: ::std::vec::Vec<#private::Bytes>) -> #private::TaskRun {
            fn __dag_decode(
                __dag_args: &[#private::Bytes],
            ) -> ::core::result::Result<(#(#types,)*), #private::TaskFailure> {
                ::core::result::Result::Ok((#(#decodes,)*))
            }
            match __dag_decode(&__dag_args) {
                ::core::result::Result::Err(e) => #private::TaskRun::Done(::core::result::Result::Err(e)),
                ::core::result::Result::Ok((#(#values,)*)) => #finish,
            }
        }
    }
}
