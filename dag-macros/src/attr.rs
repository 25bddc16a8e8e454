//! Parsing the options of `#[task(...)]`: `name`, `retries`, `backoff`, `timeout`.

use std::time::Duration;

use syn::parse::{Parse, ParseStream};
use syn::{LitInt, LitStr, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(timeout);
}

const KNOWN: &str =
    "#[task] accepts `name = \"...\"`, `retries = N`, `backoff = \"100ms\"` and `timeout = \"30s\"`";

/// The options given inside `#[task(...)]`.
#[derive(Default)]
pub struct Options {
    /// `name = "..."`: the registered name, instead of `module::path::function`.
    pub name: Option<LitStr>,
    /// `retries = N`: attempts after the first before the task counts as failed.
    pub retries: Option<u32>,
    /// `backoff = "100ms"`: delay before the first retry, doubled for each further one.
    pub backoff: Option<Duration>,
    /// `timeout = "30s"`: how long one attempt may take.
    pub timeout: Option<Duration>,
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
                if value.value().trim().is_empty() {
                    return Err(syn::Error::new_spanned(
                        value,
                        "a task name cannot be empty",
                    ));
                }
                set_once(&mut options.name, value, keyword, "name")?;
            } else if lookahead.peek(kw::retries) {
                let keyword: kw::retries = input.parse()?;
                input.parse::<Token![=]>()?;
                let value: LitInt = input.parse()?;
                let retries = value.base10_parse::<u32>().map_err(|_| {
                    syn::Error::new_spanned(&value, "`retries` takes a whole number, e.g. 3")
                })?;
                set_once(&mut options.retries, retries, keyword, "retries")?;
            } else if lookahead.peek(kw::backoff) {
                let keyword: kw::backoff = input.parse()?;
                input.parse::<Token![=]>()?;
                let value = parse_duration(&input.parse()?)?;
                set_once(&mut options.backoff, value, keyword, "backoff")?;
            } else if lookahead.peek(kw::timeout) {
                let keyword: kw::timeout = input.parse()?;
                input.parse::<Token![=]>()?;
                let literal: LitStr = input.parse()?;
                let value = parse_duration(&literal)?;
                if value.is_zero() {
                    return Err(syn::Error::new_spanned(
                        literal,
                        "a timeout of zero would fail every attempt; give a positive duration",
                    ));
                }
                set_once(&mut options.timeout, value, keyword, "timeout")?;
            } else {
                let _ = lookahead;
                return Err(syn::Error::new(
                    input.span(),
                    format!("unknown option; {KNOWN}"),
                ));
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(options)
    }
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    keyword: impl quote::ToTokens,
    name: &str,
) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            keyword,
            format!("`{name}` is given twice; keep one"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// `"250ms"`, `"30s"`, `"2m"`, `"1h"`, `"1.5s"`: a number and one unit.
fn parse_duration(literal: &LitStr) -> syn::Result<Duration> {
    let text = literal.value();
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => f64::NAN,
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && seconds_per_unit.is_finite() => {
            Ok(Duration::from_secs_f64(n * seconds_per_unit))
        }
        _ => Err(syn::Error::new_spanned(
            literal,
            "expected a duration such as \"250ms\", \"30s\", \"2m\" or \"1h\" \
             (units: us, ms, s, m, h)",
        )),
    }
}
