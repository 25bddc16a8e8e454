//! Parsing `#[task(name = "...")]`.

use syn::parse::{Parse, ParseStream};
use syn::{LitStr, Token};

mod kw {
    syn::custom_keyword!(name);
}

/// The options given inside `#[task(...)]`.
#[derive(Default)]
pub struct Options {
    /// `name = "..."`: the registered name, instead of `module::path::function`.
    pub name: Option<LitStr>,
}

impl Parse for Options {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut options = Options::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let keyword: kw::name = input.parse()?;
                input.parse::<Token![=]>()?;
                let value: LitStr = input.parse()?;
                if options.name.is_some() {
                    return Err(syn::Error::new_spanned(
                        keyword,
                        "`name` is given twice; keep one",
                    ));
                }
                if value.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(
                        value,
                        "a task name cannot be empty",
                    ));
                }
                options.name = Some(value);
            } else {
                let _ = lookahead;
                return Err(syn::Error::new(
                    input.span(),
                    "unknown option; #[task] accepts `name = \"...\"`",
                ));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(options)
    }
}
