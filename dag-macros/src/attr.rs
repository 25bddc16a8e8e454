//! Parsing the options of `#[task(...)]`: `name`, `retries`, `backoff`, `timeout`,
//! `large_output`.
//!
//! Every option is `keyword = value`. [`parse_options`] reads them one at a time and hands each
//! to the parse of [`Options`], which offers it to every known option in turn
//! ([`KeywordOption::parse`]); an option is its field, its custom keyword and its [`Value`]
//! (the literal it is written as and the check of that literal). So adding an option is a field,
//! a keyword and one line in `Options::parse`, plus its value's check.
//!
//! Every error is spanned at the offending token and collected: after a bad option the parser
//! skips to the next comma and goes on, so the user sees every problem at once.

use std::time::Duration;

use proc_macro2::TokenTree;
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{LitInt, LitStr, Token};

use crate::Errors;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(retries);
    syn::custom_keyword!(backoff);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(large_output);
}

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
    /// `large_output = "4MiB"`: the size from which the output counts as large (clustering,
    /// delayed I/O).
    pub large_output: Option<u64>,
}

impl Parse for Options {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut options = Options::default();
        parse_options(input, |option| {
            option.parse::<kw::name, _, _>(&mut options.name, TASK_NAME);
            option.parse::<kw::retries, _, _>(&mut options.retries, RETRIES);
            option.parse::<kw::backoff, _, _>(&mut options.backoff, DURATION);
            option.parse::<kw::timeout, _, _>(&mut options.timeout, TIMEOUT);
            option.parse::<kw::large_output, _, _>(&mut options.large_output, SIZE);
        })?;
        Ok(options)
    }
}

/// How an option's value is written, and the check that turns what was written into the value.
struct Value<L, T> {
    /// What the value must be, for the error on a value of another kind: "`retries` takes
    /// {kind}, e.g. ...".
    kind: &'static str,
    /// A typical value, shown after `keyword = ` in error messages.
    example: &'static str,
    /// Checks the literal; the error is reported at the literal.
    check: fn(&L) -> Result<T, String>,
}

const TASK_NAME: Value<LitStr, LitStr> = Value {
    kind: "a string",
    example: "\"...\"",
    check: task_name,
};
const RETRIES: Value<LitInt, u32> = Value {
    kind: "a whole number",
    example: "3",
    check: retry_count,
};
const DURATION: Value<LitStr, Duration> = Value {
    kind: "a duration in a string",
    example: "\"100ms\"",
    check: duration,
};
const TIMEOUT: Value<LitStr, Duration> = Value {
    kind: "a duration in a string",
    example: "\"30s\"",
    check: positive_duration,
};

const SIZE: Value<LitStr, u64> = Value {
    kind: "a size in a string",
    example: "\"4MiB\"",
    check: size,
};

/// Reads the comma-separated options in `input`, offering each to `each` (which calls
/// [`KeywordOption::parse`] once per known option). An option no call took is reported as
/// unknown, with the list of the accepted ones. Returns every error found, combined.
fn parse_options(input: ParseStream, mut each: impl FnMut(&mut KeywordOption)) -> syn::Result<()> {
    let mut errors = Errors::default();
    while !input.is_empty() {
        let mut option = KeywordOption {
            input,
            errors: &mut errors,
            taken: false,
            accepted: Vec::new(),
        };
        each(&mut option);
        if !option.taken {
            let accepted = listed(&option.accepted);
            let message = match input.fork().parse::<syn::Ident>() {
                Ok(unknown) => format!("unknown option `{unknown}`; #[task] accepts {accepted}"),
                Err(_) => format!("expected an option; #[task] accepts {accepted}"),
            };
            errors.push(input.error(message));
            skip_to_comma(input);
        } else if !input.is_empty() && !input.peek(Token![,]) {
            errors.push(input.error("expected `,` between options"));
            skip_to_comma(input);
        }
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
    }
    errors.finish()
}

/// The option at the current position of the input, offered to each known option in turn.
struct KeywordOption<'a, 'i> {
    input: ParseStream<'i>,
    errors: &'a mut Errors,
    /// Whether one of the known options has read it.
    taken: bool,
    /// `keyword = example` of each known option offered so far, for the unknown-option error.
    accepted: Vec<String>,
}

impl KeywordOption<'_, '_> {
    /// If the option is `K = value`, reads it into `slot`: `value` says how the value is
    /// written and checked. A repeated option, a value of another kind and a value that fails
    /// its check are errors, collected; the parser then goes on after the option.
    fn parse<K, L, T>(&mut self, slot: &mut Option<T>, value: Value<L, T>)
    where
        K: Parse + ToTokens + Default,
        L: Parse + ToTokens,
    {
        let keyword_name = K::default().into_token_stream().to_string();
        self.accepted
            .push(format!("`{keyword_name} = {}`", value.example));
        if self.taken || self.input.fork().parse::<K>().is_err() {
            return;
        }
        self.taken = true;
        if let Err(e) = self.read::<K, L, T>(slot, &keyword_name, value) {
            self.errors.push(e);
            skip_to_comma(self.input);
        }
    }

    fn read<K, L, T>(
        &mut self,
        slot: &mut Option<T>,
        keyword_name: &str,
        value: Value<L, T>,
    ) -> syn::Result<()>
    where
        K: Parse + ToTokens,
        L: Parse + ToTokens,
    {
        let keyword: K = self.input.parse()?;
        let equals = self.input.parse::<Token![=]>();
        if equals.is_err() || self.input.is_empty() || self.input.peek(Token![,]) {
            return Err(syn::Error::new_spanned(
                keyword,
                format!(
                    "`{keyword_name}` needs a value, e.g. `{keyword_name} = {}`",
                    value.example
                ),
            ));
        }
        // Literal parsers may consume a literal of another kind before failing: report the
        // error at the value, not at what follows it.
        let value_start = self.input.fork();
        let literal: L = self.input.parse().map_err(|_| {
            value_start.error(format!(
                "`{keyword_name}` takes {}, e.g. `{keyword_name} = {}`",
                value.kind, value.example
            ))
        })?;
        if slot.is_some() {
            return Err(syn::Error::new_spanned(
                keyword,
                format!("`{keyword_name}` is given twice; keep one"),
            ));
        }
        let checked = (value.check)(&literal).map_err(|e| syn::Error::new_spanned(&literal, e))?;
        *slot = Some(checked);
        Ok(())
    }
}

/// `a`, `a and b`, `a, b and c`.
fn listed(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// Skips what is left of the current option, so that parsing resumes at the next one.
fn skip_to_comma(input: ParseStream) {
    while !input.is_empty() && !input.peek(Token![,]) {
        let _ = input.parse::<TokenTree>();
    }
}

fn task_name(literal: &LitStr) -> Result<LitStr, String> {
    if literal.value().trim().is_empty() {
        return Err("a task name cannot be empty".into());
    }
    Ok(literal.clone())
}

fn retry_count(literal: &LitInt) -> Result<u32, String> {
    literal
        .base10_parse::<u32>()
        .map_err(|_| format!("`retries` takes a whole number from 0 to {}", u32::MAX))
}

fn positive_duration(literal: &LitStr) -> Result<Duration, String> {
    match duration(literal)? {
        zero if zero.is_zero() => {
            Err("a timeout of zero would fail every attempt; give a positive duration".into())
        }
        positive => Ok(positive),
    }
}

/// `"250ms"`, `"30s"`, `"2m"`, `"1h"`, `"1.5s"`: a number and one unit.
fn duration(literal: &LitStr) -> Result<Duration, String> {
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
        _ => Err(
            "expected a duration such as \"250ms\", \"30s\", \"2m\" or \"1h\" \
                  (units: us, ms, s, m, h)"
                .into(),
        ),
    }
}

/// `"4MiB"`, `"512KB"`, `"1000000"`: a whole number of bytes and an optional unit (B, KB, MB,
/// GB: powers of 1000; KiB, MiB, GiB: powers of 1024).
fn size(literal: &LitStr) -> Result<u64, String> {
    let text = literal.value();
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let per_unit: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => 0,
    };
    match number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
    {
        Some(bytes) if per_unit > 0 => Ok(bytes),
        _ => Err(
            "expected a size such as \"4MiB\", \"512KB\" or \"1000000\" \
                  (units: B, KB, MB, GB, KiB, MiB, GiB)"
                .into(),
        ),
    }
}
