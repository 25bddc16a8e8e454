//! A libtest-style front end for test executables with their own `main` (`harness = false`).
//!
//! The process tests (`tests/workers.rs`, `tests/faults.rs`) are also the worker processes they
//! start: their `main` calls `dag::worker::run_if_worker()` before anything else, so they cannot
//! use the `main` libtest generates. [`run_tests`] gives them libtest's command line and output,
//! as far as cargo, CI and a developer use them:
//!
//! - name filters: a test runs if its name contains one of them, or with `--exact` equals one;
//!   `--skip FILTER` (repeatable) leaves out the tests it matches, in the same way;
//! - `--list` prints one `name: test` line per selected test, then a blank line and
//!   `N tests, 0 benchmarks` (only the name lines with `--format terse`), and runs nothing;
//! - `--ignored` runs only the tests marked [`Test::ignore`], `--include-ignored` runs them too;
//! - `-q`/`--quiet` and `--format pretty|terse` choose the output;
//! - `--nocapture`, `--no-capture`, `--show-output`, `--test-threads N`, `--color WHEN`,
//!   `--report-time`, `--test` and `-Z unstable-options` are accepted: output is never captured,
//!   tests run one at a time (each starts servers and processes of its own), and each result
//!   line carries the test's time as with `--report-time`;
//! - `-h`/`--help` prints the usage; any other flag is an error (exit code 101, as libtest).
//!
//! Each test runs once per Redis backend of [`backends`](crate::backends) (the in-process
//! server, and `redis-server` when it is on `PATH`), named `<test> [<backend>]` when there are
//! several, with [`TestRedis::start`](crate::TestRedis::start) starting that backend.
//!
//! Each test runs on a thread named after the test, so that a panic message names it as
//! libtest's do (`thread '<name>' panicked at ...`); the panic is caught, the test reported
//! `FAILED` with its message, and the next test runs. The last line is libtest's summary, which
//! CI's log reader parses, and the process exits with code 101 if a test failed:
//!
//! ```text
//! test result: ok. 8 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 41.20s
//! ```
//!
//! ```no_run
//! use dag_test_support::harness::{run_tests, Test};
//!
//! fn two_and_two_make_four() {
//!     assert_eq!(2 + 2, 4);
//! }
//!
//! mod slow {
//!     pub fn a_long_check() {}
//! }
//!
//! const TESTS: &[Test] = &dag_test_support::tests![two_and_two_make_four, slow::a_long_check];
//!
//! fn main() {
//!     // dag::worker::run_if_worker(); first, in a test that starts worker processes
//!     run_tests(TESTS);
//! }
//! ```

use std::any::Any;
use std::io::Write;
use std::time::{Duration, Instant};

use crate::Backend;

/// The exit code of a failed run or a bad command line, as libtest's.
const FAILURE_EXIT_CODE: i32 = 101;

/// One test of a `harness = false` executable: a name and a function that panics on failure.
#[derive(Clone, Copy, Debug)]
pub struct Test {
    name: &'static str,
    run: fn(),
    ignored: bool,
}

impl Test {
    /// A test named `name` that runs `run`; usually written with [`tests!`](crate::tests),
    /// which takes the name from the function.
    ///
    /// ```
    /// use dag_test_support::harness::Test;
    ///
    /// fn shared_node_runs_once() {}
    /// let test = Test::new("shared_node_runs_once", shared_node_runs_once);
    /// assert_eq!(test.name(), "shared_node_runs_once");
    /// ```
    pub const fn new(name: &'static str, run: fn()) -> Test {
        Test {
            name,
            run,
            ignored: false,
        }
    }

    /// The test, marked as libtest's `#[ignore]` marks one: it runs only with `--ignored` or
    /// `--include-ignored`.
    ///
    /// ```
    /// use dag_test_support::harness::Test;
    ///
    /// fn a_day_long_soak() {}
    /// let test = Test::new("a_day_long_soak", a_day_long_soak).ignore();
    /// assert!(test.is_ignored());
    /// ```
    pub const fn ignore(self) -> Test {
        Test {
            ignored: true,
            ..self
        }
    }

    /// The test's name, as filters match it and the output shows it.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Whether the test is marked with [`ignore`](Self::ignore).
    pub const fn is_ignored(&self) -> bool {
        self.ignored
    }
}

/// An array of [`Test`]s from paths of test functions, each named by the last segment of its
/// path (`interrupt::ctrl_c_cancels` is the test `ctrl_c_cancels`). It can initialise a `const`.
///
/// ```
/// use dag_test_support::harness::Test;
///
/// fn first() {}
/// mod more {
///     pub fn second() {}
/// }
/// const TESTS: &[Test] = &dag_test_support::tests![first, more::second];
/// assert_eq!(TESTS[1].name(), "second");
/// ```
#[macro_export]
macro_rules! tests {
    ($($path:path),* $(,)?) => {
        [$($crate::harness::Test::new(
            $crate::harness::last_segment(::core::stringify!($path)),
            $path,
        )),*]
    };
}

/// The last `::`-separated segment of a path written as text, without surrounding spaces.
#[doc(hidden)]
pub const fn last_segment(path: &'static str) -> &'static str {
    let bytes = path.as_bytes();
    let mut start = bytes.len();
    while start > 0 && bytes[start - 1] != b':' {
        start -= 1;
    }
    let (_, name) = bytes.split_at(start);
    match std::str::from_utf8(name.trim_ascii()) {
        Ok(name) => name,
        Err(_) => panic!("a path is valid UTF-8 up to its last `:`"),
    }
}

/// Runs the tests selected by this process's command line, as libtest would, and exits with
/// code 101 if one failed or the command line is wrong (see the [module docs](self)).
///
/// ```no_run
/// fn it_works() {}
///
/// fn main() {
///     dag_test_support::harness::run_tests(&dag_test_support::tests![it_works]);
/// }
/// ```
pub fn run_tests(tests: &[Test]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error}\n\n{USAGE}");
            std::process::exit(FAILURE_EXIT_CODE);
        }
    };
    if options.help {
        println!("{USAGE}");
        return;
    }
    let mut out = std::io::stdout();
    if options.list {
        list(&options, tests, &mut out);
        return;
    }
    let summary = run(&options, tests, &crate::backends(), &mut out);
    if summary.failed > 0 {
        std::process::exit(FAILURE_EXIT_CODE);
    }
}

const USAGE: &str = "\
Usage: <test executable> [OPTIONS] [FILTERS...]

Runs the tests whose names contain one of FILTERS (all without FILTERS), one at a time.

Options:
    --exact             filters match whole names only
    --skip FILTER       leave out the tests FILTER matches (repeatable)
    --list              list the selected tests instead of running them
    --ignored           run only the ignored tests
    --include-ignored   run the ignored tests too
    -q, --quiet         one character per test (the same as --format terse)
    --format pretty|terse
    --nocapture, --no-capture, --show-output, --test-threads N, --color auto|always|never,
    --report-time, --test, -Z unstable-options
                        accepted for libtest compatibility: output is never captured and
                        tests run one at a time
    -h, --help          this text";

/// Which tests `--ignored` and `--include-ignored` select.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum RunIgnored {
    /// Ignored tests are reported as ignored (the default).
    #[default]
    No,
    /// Only the ignored tests (`--ignored`).
    Only,
    /// All tests (`--include-ignored`).
    Also,
}

/// The command line, as far as this harness acts on it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    ignored: RunIgnored,
    terse: bool,
    help: bool,
}

impl Options {
    /// Parses libtest's arguments (`--name value` and `--name=value` both).
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> Result<String, String> {
                match &inline {
                    Some(value) => Ok(value.clone()),
                    None => args
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("`{flag}` needs a value")),
                }
            };
            match flag {
                "--exact" => options.exact = true,
                "--list" => options.list = true,
                "--ignored" => options.ignored = RunIgnored::Only,
                "--include-ignored" => options.ignored = RunIgnored::Also,
                "-q" | "--quiet" => options.terse = true,
                "-h" | "--help" => options.help = true,
                "--skip" => options.skip.push(value()?),
                "--format" => match value()?.as_str() {
                    "pretty" => options.terse = false,
                    "terse" => options.terse = true,
                    other => {
                        return Err(format!(
                            "`--format {other}` is not supported by this test harness \
                             (pretty or terse)"
                        ))
                    }
                },
                "--color" => match value()?.as_str() {
                    "auto" | "always" | "never" => {}
                    other => {
                        return Err(format!(
                            "`--color` takes auto, always or never, not `{other}`"
                        ))
                    }
                },
                "--test-threads" => {
                    let threads = value()?;
                    if !threads.parse::<usize>().is_ok_and(|n| n > 0) {
                        return Err(format!(
                            "`--test-threads` takes a positive number, not `{threads}`"
                        ));
                    }
                }
                "-Z" => {
                    value()?;
                }
                "--nocapture" | "--no-capture" | "--show-output" | "--report-time" | "--test" => {}
                flag if flag.starts_with("-Z") => {}
                flag if flag.starts_with('-') => {
                    return Err(format!("unknown option `{flag}`"));
                }
                filter => options.filters.push(filter.to_owned()),
            }
        }
        Ok(options)
    }

    /// Whether `filter` selects the test named `name`.
    fn matches(&self, filter: &str, name: &str) -> bool {
        if self.exact {
            name == filter
        } else {
            name.contains(filter)
        }
    }

    /// Whether the name filters, `--skip` and `--ignored` keep `test` (libtest's
    /// `filter_tests`); the others count as filtered out.
    fn selects(&self, test: &Test) -> bool {
        (self.filters.is_empty() || self.filters.iter().any(|f| self.matches(f, test.name)))
            && !self.skip.iter().any(|f| self.matches(f, test.name))
            && (self.ignored != RunIgnored::Only || test.ignored)
    }
}

/// What a run of the tests came to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Summary {
    passed: usize,
    failed: usize,
    ignored: usize,
    filtered_out: usize,
}

/// Prints the selected tests as libtest's `--list` does.
fn list(options: &Options, tests: &[Test], out: &mut impl Write) {
    let selected: Vec<&Test> = tests.iter().filter(|t| options.selects(t)).collect();
    for test in &selected {
        let _ = writeln!(out, "{}: test", test.name);
    }
    if !options.terse {
        if !selected.is_empty() {
            let _ = writeln!(out);
        }
        let count = selected.len();
        let plural = if count == 1 { "" } else { "s" };
        let _ = writeln!(out, "{count} test{plural}, 0 benchmarks");
    }
}

/// Runs the selected tests one at a time, each once per Redis backend of `backends` (named
/// `<test> [<backend>]` when there are several), printing libtest's lines to `out`.
fn run(options: &Options, tests: &[Test], backends: &[Backend], out: &mut impl Write) -> Summary {
    let started = Instant::now();
    let selected: Vec<&Test> = tests.iter().filter(|t| options.selects(t)).collect();
    let mut summary = Summary {
        filtered_out: tests.len() - selected.len(),
        ..Summary::default()
    };
    let plural = if selected.len() == 1 { "" } else { "s" };
    let _ = writeln!(out, "\nrunning {} test{plural}", selected.len());
    let mut failures: Vec<(String, String)> = Vec::new();
    for test in selected {
        if test.ignored && options.ignored == RunIgnored::No {
            summary.ignored += 1;
            report(options, out, test.name, "ignored", 'i', None);
            continue;
        }
        for &backend in backends {
            let name = if backends.len() > 1 {
                format!("{} [{}]", test.name, backend.name())
            } else {
                test.name.to_owned()
            };
            let began = Instant::now();
            match run_one(test, backend) {
                Ok(()) => {
                    summary.passed += 1;
                    report(options, out, &name, "ok", '.', Some(began.elapsed()));
                }
                Err(message) => {
                    summary.failed += 1;
                    report(options, out, &name, "FAILED", 'F', Some(began.elapsed()));
                    failures.push((name, message));
                }
            }
        }
    }
    if options.terse {
        let _ = writeln!(out);
    }
    if !failures.is_empty() {
        let _ = writeln!(out, "\nfailures:\n");
        for (name, message) in &failures {
            let _ = writeln!(out, "---- {name} ----\n{message}\n");
        }
        let _ = writeln!(out, "failures:");
        for (name, _) in &failures {
            let _ = writeln!(out, "    {name}");
        }
    }
    let _ = writeln!(
        out,
        "\ntest result: {}. {} passed; {} failed; {} ignored; 0 measured; {} filtered out; \
         finished in {:.2}s\n",
        if summary.failed == 0 { "ok" } else { "FAILED" },
        summary.passed,
        summary.failed,
        summary.ignored,
        summary.filtered_out,
        started.elapsed().as_secs_f64()
    );
    let _ = out.flush();
    summary
}

/// Prints a test's line once it has run (`test <name> ... ok <1.234s>`, as libtest's
/// `--report-time`: a whole line, although the worker processes a test starts share stdout), or
/// its character in terse output.
fn report(
    options: &Options,
    out: &mut impl Write,
    name: &str,
    result: &str,
    terse: char,
    time: Option<Duration>,
) {
    if options.terse {
        let _ = write!(out, "{terse}");
    } else {
        let _ = match time {
            Some(time) => writeln!(out, "test {name} ... {result} <{:.3}s>", time.as_secs_f64()),
            None => writeln!(out, "test {name} ... {result}"),
        };
    }
    let _ = out.flush();
}

/// Runs `test` on a thread named after it, with [`TestRedis::start`](crate::TestRedis::start)
/// starting `backend` there; its panic message if it panicked.
fn run_one(test: &Test, backend: Backend) -> Result<(), String> {
    let run = test.run;
    let thread = std::thread::Builder::new()
        .name(test.name.to_owned())
        .spawn(move || crate::with_backend(backend, run))
        .map_err(|e| format!("could not start the test's thread: {e}"))?;
    thread.join().map_err(|payload| panic_message(&*payload))
}

/// The text a panic was raised with (`panic!("...")` or `panic!("{}", ...)`).
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passes() {}

    fn fails() {
        panic!("the answer is {}", 41);
    }

    fn never_runs() {
        unreachable!("ignored tests do not run");
    }

    const TESTS: &[Test] = &crate::tests![passes, self::fails, never_runs];

    fn options(args: &[&str]) -> Result<Options, String> {
        Options::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    fn output(args: &[&str], tests: &[Test]) -> (String, Option<Summary>) {
        let options = options(args).unwrap();
        let mut out = Vec::new();
        let summary = if options.list {
            list(&options, tests, &mut out);
            None
        } else {
            Some(run(&options, tests, &[Backend::InProcess], &mut out))
        };
        (String::from_utf8(out).unwrap(), summary)
    }

    #[test]
    fn the_macro_names_tests_by_the_last_segment_of_their_path() {
        let names: Vec<&str> = TESTS.iter().map(Test::name).collect();
        assert_eq!(names, ["passes", "fails", "never_runs"]);
        assert_eq!(last_segment("a :: b :: c"), "c");
        assert_eq!(last_segment("plain"), "plain");
    }

    #[test]
    fn filters_select_by_substring_or_exactly() {
        let only = |args: &[&str]| -> Vec<&str> {
            let options = options(args).unwrap();
            TESTS
                .iter()
                .filter(|t| options.selects(t))
                .map(Test::name)
                .collect()
        };
        assert_eq!(only(&[]), ["passes", "fails", "never_runs"]);
        assert_eq!(only(&["s"]), ["passes", "fails", "never_runs"]);
        assert_eq!(only(&["ail", "pass"]), ["passes", "fails"]);
        assert_eq!(only(&["--exact", "fail"]), Vec::<&str>::new());
        assert_eq!(only(&["--exact", "fails"]), ["fails"]);
        assert_eq!(only(&["--skip", "fail", "--skip=never"]), ["passes"]);
    }

    #[test]
    fn list_prints_names_and_the_count_as_libtest() {
        let (text, _) = output(&["--list", "pass"], TESTS);
        assert_eq!(text, "passes: test\n\n1 test, 0 benchmarks\n");
        let (text, _) = output(&["--list", "--format", "terse"], TESTS);
        assert_eq!(text, "passes: test\nfails: test\nnever_runs: test\n");
        let (text, _) = output(&["--list", "nothing"], TESTS);
        assert_eq!(text, "0 tests, 0 benchmarks\n");
    }

    #[test]
    fn a_panic_fails_its_test_by_name_and_the_others_run() {
        let tests = [TESTS[0], TESTS[1], TESTS[2].ignore()];
        let (text, summary) = output(&["--nocapture", "--test-threads", "1"], &tests);
        assert_eq!(
            summary,
            Some(Summary {
                passed: 1,
                failed: 1,
                ignored: 1,
                filtered_out: 0
            })
        );
        assert!(
            text.starts_with("\nrunning 3 tests\ntest passes ... ok <"),
            "{text}"
        );
        assert!(text.contains("test fails ... FAILED <"), "{text}");
        assert!(text.contains("test never_runs ... ignored\n"), "{text}");
        assert!(
            text.contains("---- fails ----\nthe answer is 41\n\nfailures:\n    fails\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "\ntest result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; \
                 0 filtered out; finished in "
            ),
            "{text}"
        );
    }

    #[test]
    fn ignored_tests_run_with_ignored_or_include_ignored() {
        let tests = [TESTS[0], TESTS[0].ignore()];
        let (text, summary) = output(&["--ignored"], &tests);
        let summary = summary.unwrap();
        assert_eq!((summary.passed, summary.filtered_out), (1, 1), "{text}");
        let (_, summary) = output(&["--include-ignored", "-q"], &tests);
        assert_eq!(summary.unwrap().passed, 2);
    }

    #[test]
    fn the_summary_line_is_libtests() {
        let (text, summary) = output(&["--exact", "passes"], TESTS);
        assert_eq!(summary.unwrap().filtered_out, 2);
        let last = text.trim_end().lines().last().unwrap();
        assert!(
            last.starts_with(
                "test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 2 filtered out; \
                 finished in "
            ) && last.ends_with('s'),
            "{last}"
        );
    }

    #[test]
    fn unknown_flags_and_bad_values_are_errors() {
        assert_eq!(
            options(&["--bogus"]).unwrap_err(),
            "unknown option `--bogus`"
        );
        assert!(options(&["--format", "json"]).is_err());
        assert!(options(&["--test-threads", "0"]).is_err());
        assert!(options(&["--skip"]).is_err());
        assert!(options(&["--color=never", "-Z", "unstable-options", "--show-output"]).is_ok());
    }
}
