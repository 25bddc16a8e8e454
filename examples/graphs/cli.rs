//! What the checked examples (`gemm`, `svd`, `image_tiles`) share on their command line.

/// Ends the program by `checked`'s verdict: status 0 when the check passed, 1 when it failed,
/// 2 (with the message) when the run itself failed.
pub fn exit_with(checked: Result<bool, Box<dyn std::error::Error>>) -> ! {
    match checked {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(2)
        }
    }
}

/// Reads `--name value` pairs (positive whole numbers) from `args` (the program's arguments
/// that `runtime_from_args` left, the program's name first), starting from the defaults in
/// `flags`.
pub fn numbers<const N: usize>(
    args: &[String],
    flags: [(&str, u64); N],
) -> Result<[u64; N], String> {
    let mut values = flags.map(|(_, default)| default);
    let usage = || {
        flags
            .iter()
            .map(|(flag, default)| format!("{flag} N (default {default})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut args = args.iter().skip(1);
    while let Some(flag) = args.next() {
        let Some(i) = flags.iter().position(|(name, _)| name == flag) else {
            return Err(format!("unknown argument {flag:?}; give {}", usage()));
        };
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        values[i] = value
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{flag} takes a positive whole number, not {value:?}"))?;
    }
    Ok(values)
}
