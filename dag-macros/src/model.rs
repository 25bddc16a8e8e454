//! Checking a `#[task]` function and describing it for code generation.

use proc_macro2::Span;
use syn::visit::Visit;
use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::attr::Options;
use crate::Errors;

/// A checked `#[task]` function.
pub struct Task {
    pub options: Options,
    /// The function as the user wrote it; its body becomes the task body.
    pub function: ItemFn,
    pub params: Vec<Param>,
    pub output: Output,
}

/// One parameter of the task.
pub struct Param {
    /// Name of the wrapper's parameter: the user's identifier, or `__dag_arg_<i>` for a pattern.
    pub ident: Ident,
    /// The name shown in error messages.
    pub display: String,
    pub ty: Type,
}

/// What the body returns.
pub enum Output {
    /// A plain value (including `()`); the node's type.
    Value(Type),
    /// `Result<R, E>`: the node's type is `R`, and an `Err` fails the task.
    Result { ok: Type },
}

impl Output {
    /// The `T` of the `Node<T>` that calling the task returns.
    pub fn node_type(&self) -> &Type {
        match self {
            Output::Value(ty) => ty,
            Output::Result { ok } => ok,
        }
    }
}

impl Task {
    pub fn from_fn(options: Options, function: ItemFn) -> syn::Result<Task> {
        let mut errors = Errors::default();
        let sig = &function.sig;
        if let Some(t) = &sig.constness {
            errors.spanned(t, "a task cannot be a `const fn`; remove `const`");
        }
        if let Some(t) = &sig.unsafety {
            errors.spanned(
                t,
                "a task cannot be `unsafe`; wrap the unsafe code in a safe function",
            );
        }
        if let Some(abi) = &sig.abi {
            errors.spanned(abi, "a task cannot have an `extern` ABI");
        }
        if let Some(v) = &sig.variadic {
            errors.spanned(v, "a task cannot be variadic");
        }
        if !sig.generics.params.is_empty() {
            errors.spanned(
                &sig.generics,
                "a task cannot be generic: workers find it by name and decode its arguments, so \
                 every type must be concrete; write one task per type",
            );
        } else if let Some(clause) = &sig.generics.where_clause {
            // `Generics` prints without its where clause, so span the clause's own tokens.
            let (token, predicates) = (&clause.where_token, &clause.predicates);
            errors.spanned(
                quote::quote!(#token #predicates),
                "a task cannot have a `where` clause: its types are concrete, so there \
                 is nothing to bound; remove it",
            );
        }

        let mut params = Vec::new();
        for (i, input) in sig.inputs.iter().enumerate() {
            match input {
                FnArg::Receiver(receiver) => errors.spanned(
                    receiver,
                    "a task cannot take `self`: it runs on workers that have no instance; make \
                     it a free function and pass the data as an argument",
                ),
                FnArg::Typed(typed) => {
                    check_owned(&typed.ty, "parameter", &mut errors);
                    let (ident, display) = match &*typed.pat {
                        Pat::Ident(p) => (p.ident.clone(), p.ident.to_string()),
                        _ => (
                            Ident::new(&format!("__dag_arg_{i}"), Span::call_site()),
                            format!("#{i}"),
                        ),
                    };
                    params.push(Param {
                        ident,
                        display,
                        ty: (*typed.ty).clone(),
                    });
                }
            }
        }

        let output = match &sig.output {
            ReturnType::Default => Output::Value(syn::parse_quote!(())),
            ReturnType::Type(_, ty) => {
                check_owned(ty, "return type", &mut errors);
                match result_ok_type(ty) {
                    Some(ok) => Output::Result { ok },
                    None => Output::Value((**ty).clone()),
                }
            }
        };

        errors.finish()?;
        Ok(Task {
            options,
            function,
            params,
            output,
        })
    }

    pub fn is_async(&self) -> bool {
        self.function.sig.asyncness.is_some()
    }
}

/// `Result<R, ..>` (any path ending in `Result`, so aliases like `io::Result<R>` work) gives `R`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty.clone()),
        _ => None,
    })
}

/// Rejects types a worker could not rebuild from bytes: borrowed, `impl Trait`, inferred.
fn check_owned(ty: &Type, what: &str, errors: &mut Errors) {
    struct Checker<'e> {
        what: &'e str,
        errors: &'e mut Errors,
    }
    impl<'ast> Visit<'ast> for Checker<'_> {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            self.errors.spanned(
                r,
                &format!(
                    "a task {} cannot be borrowed: values are decoded from bytes on the worker, \
                     so use an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)",
                    self.what
                ),
            );
        }
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.errors.spanned(
                t,
                &format!(
                    "a task {} cannot be `impl Trait`: name a concrete, serializable type",
                    self.what
                ),
            );
        }
        fn visit_type_infer(&mut self, t: &'ast syn::TypeInfer) {
            self.errors
                .spanned(t, &format!("a task {} must name its type", self.what));
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            self.errors.push(syn::Error::new(
                l.span(),
                format!(
                    "a task {} cannot hold a lifetime: use an owned type",
                    self.what
                ),
            ));
        }
    }
    Checker { what, errors }.visit_type(ty);
}
