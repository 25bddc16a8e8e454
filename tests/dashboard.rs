//! `dag dashboard`, run as a user runs it (the built binary) on a test Redis: its JSON API on
//! its own (status codes, shapes, a run that does not exist, a Redis that is down, the token),
//! its live stream, and its pages in a real browser (headless Chromium, when installed).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use dag::metrics::{MetricsStorage, Upload};
use dag::prelude::*;
use dag_test_support::TestRedis;
use serde_json::Value;

// ------------------------------------------------------------------------------- the graphs

#[task]
fn leaf(i: u64) -> u64 {
    i
}

#[task]
fn total(values: Vec<u64>) -> u64 {
    values.into_iter().sum()
}

#[task]
fn slow_step(x: u64, ms: u64) -> u64 {
    thread::sleep(Duration::from_millis(ms));
    x + 1
}

#[task]
fn explode(x: u64) -> Result<u64, String> {
    Err(format!("boom {x}: the input was refused"))
}

#[task]
fn numbers(n: u64) -> Vec<u64> {
    (0..n).collect()
}

#[task]
fn double(x: u64) -> u64 {
    2 * x
}

/// A runtime on `redis` that records metrics there, every task at once.
fn runtime(redis: &TestRedis) -> Runtime {
    Runtime::builder()
        .redis(redis.url())
        .workers(2)
        .metrics(MetricsStorage::dag_store().upload(Upload::EachTask))
        .build()
        .expect("the Redis runtime starts")
}

/// `leaves` leaves summed by one task: `leaves + 1` nodes.
fn fan_in(leaves: u64) -> Node<u64> {
    let leaves: Vec<Node<u64>> = (0..leaves).map(leaf).collect();
    total(leaves)
}

/// A chain of `steps` tasks of `ms` each after one leaf.
fn slow_chain(steps: usize, ms: u64) -> Node<u64> {
    let mut node = leaf(0);
    for _ in 0..steps {
        node = slow_step(&node, ms);
    }
    node
}

// ------------------------------------------------------------------------------ the server

/// A `dag dashboard` process on a free port, stopped when dropped.
struct Dashboard {
    child: Child,
    addr: String,
}

impl Dashboard {
    fn start(redis_url: &str, extra: &[&str]) -> Dashboard {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dag"))
            .args(["dashboard", "--redis", redis_url, "--bind", "127.0.0.1:0"])
            .args(extra)
            .env_remove("DAG_REDIS_URL")
            .env_remove("DAG_DASHBOARD_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the dag binary starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut first)
            .expect("the dashboard prints its address");
        let addr = first
            .trim()
            .strip_prefix("dag dashboard: http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        Dashboard { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path`: the status and the body.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).expect("the dashboard accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).expect("a whole response");
        let response = String::from_utf8(response).expect("UTF-8");
        let (head, body) = response.split_once("\r\n\r\n").expect("headers and body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            unchunk(body)
        } else {
            body.to_owned()
        };
        (status, body)
    }

    fn json(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.get(path, &[]);
        let value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        (status, value)
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Waits up to 30 s for `check` to give a value.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The id of the run named `name` in the list, once it is there in `state` (and with `tasks`
/// recorded, if given: a worker uploads its records in the background, so they may reach
/// Redis after the client had its result).
fn run_id(dashboard: &Dashboard, name: &str, state: &str, tasks: Option<u64>) -> String {
    eventually(&format!("a {state} run named {name}"), || {
        let (_, runs) = dashboard.json("/api/runs");
        runs.as_array()?
            .iter()
            .find(|run| {
                run["name"].as_str().is_some_and(|n| n.ends_with(name))
                    && run["state"] == state
                    && tasks.is_none_or(|tasks| run["tasks"] == tasks)
            })
            .map(|run| run["id"].as_str().unwrap().to_owned())
    })
}

fn states(run: &Value) -> Vec<String> {
    run["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap().to_owned())
        .collect()
}

// ------------------------------------------------------------------------------ API tests

#[test]
fn the_api_lists_runs_filters_them_and_shows_one() {
    let redis = TestRedis::start();
    let runtime = runtime(&redis);
    assert_eq!(fan_in(4).compute_on(&runtime).unwrap(), 6);
    let dashboard = Dashboard::start(&redis.url(), &[]);
    run_id(&dashboard, "total", "succeeded", Some(5));

    let (status, runs) = dashboard.json("/api/runs");
    assert_eq!(status, 200);
    let runs = runs.as_array().expect("an array");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    for field in [
        "id",
        "name",
        "state",
        "started_at",
        "makespan_ms",
        "tasks",
        "failures",
    ] {
        assert!(run.get(field).is_some(), "no {field} in {run}");
    }
    assert_eq!(run["state"], "succeeded");
    assert_eq!(run["tasks"], 5);
    assert_eq!(run["failures"], 0);
    let id = run["id"].as_str().unwrap();

    assert_eq!(
        dashboard.json("/api/runs?state=failed").1,
        Value::Array(vec![])
    );
    assert_eq!(
        dashboard.json("/api/runs?name=nothing-like-it").1,
        Value::Array(vec![])
    );
    assert_eq!(
        dashboard
            .json("/api/runs?name=total&state=succeeded")
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (status, view) = dashboard.json(&format!("/api/runs/{id}"));
    assert_eq!(status, 200);
    assert_eq!(view["run"]["id"], id);
    assert_eq!(view["report"]["tasks"], 5);
    assert_eq!(
        view["graph"]["source"], "records",
        "an ended run's plan is gone"
    );
    assert_eq!(view["graph"]["nodes"].as_array().unwrap().len(), 5);
    assert_eq!(view["graph"]["edges"].as_array().unwrap().len(), 4);
    assert!(states(&view).iter().all(|s| s == "done"), "{view}");
    let sink = &view["graph"]["nodes"][4];
    assert!(sink["task"].as_str().unwrap().ends_with("total"));
    assert_eq!(sink["level"], 1);
    assert!(sink["attempt"]["worker"].as_str().is_some());
    assert_eq!(view["timeline"].as_array().unwrap().len(), 5);
}

#[test]
fn a_run_that_does_not_exist_is_a_404_with_a_message() {
    let redis = TestRedis::start();
    let dashboard = Dashboard::start(&redis.url(), &[]);
    let (status, body) = dashboard.json("/api/runs/no-such-run");
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no run \"no-such-run\""),
        "{body}"
    );
    let (status, body) = dashboard.json("/api/nothing");
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("no such API"),
        "{body}"
    );
    assert_eq!(dashboard.get("/elsewhere", &[]).0, 404);
    let (status, page) = dashboard.get("/runs/no-such-run", &[]);
    assert_eq!(
        status, 200,
        "the page itself loads and says what is missing"
    );
    assert!(page.contains("/assets/app.js"));
}

#[test]
fn a_redis_that_is_down_is_a_503_with_a_message_and_the_page_still_loads() {
    // Port 1: nothing listens there (a freed port could be taken by another test's server).
    let port = 1;
    let dashboard = Dashboard::start(&format!("redis://127.0.0.1:{port}"), &[]);
    let (status, body) = dashboard.json("/api/runs");
    assert_eq!(status, 503);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("unreachable"), "{message}");
    assert_eq!(dashboard.json("/api/runs/abc").0, 503);
    let (status, page) = dashboard.get("/", &[]);
    assert_eq!(status, 200);
    assert!(page.contains("id=\"status\""));
    let (status, script) = dashboard.get("/assets/app.js", &[]);
    assert_eq!(status, 200);
    assert!(script.contains("showStatus"));
}

#[test]
fn the_dashboard_recovers_when_redis_restarts() {
    let mut redis = TestRedis::start();
    let dashboard = Dashboard::start(&redis.url(), &[]);
    assert_eq!(fan_in(2).compute_on(&runtime(&redis)).unwrap(), 1);
    let before = run_id(&dashboard, "total", "succeeded", Some(3));
    assert_eq!(dashboard.json(&format!("/api/runs/{before}")).0, 200);
    // Its connections drop, and every key is lost (no persistence).
    redis.restart();
    eventually("answers again once Redis is back", || {
        (dashboard.json("/api/runs").0 == 200).then_some(())
    });
    let runtime = runtime(&redis);
    assert_eq!(fan_in(3).compute_on(&runtime).unwrap(), 3);
    let after = run_id(&dashboard, "total", "succeeded", Some(4));
    eventually("the run's page answers", || {
        (dashboard.json(&format!("/api/runs/{after}")).0 == 200).then_some(())
    });
    assert_eq!(
        dashboard.json(&format!("/api/runs/{before}")).0,
        404,
        "its keys went"
    );
}

#[test]
fn with_a_token_every_api_request_needs_it() {
    let redis = TestRedis::start();
    let dashboard = Dashboard::start(&redis.url(), &["--token", "s3cret"]);
    let (status, body) = dashboard.json("/api/runs");
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    // The page and its assets hold no data: they load without it, and the page passes the
    // token of its address on to the API.
    assert_eq!(dashboard.get("/", &[]).0, 200);
    assert_eq!(dashboard.get("/assets/app.js", &[]).0, 200);
    assert_eq!(dashboard.get("/api/live", &[]).0, 401);
    assert_eq!(dashboard.get("/api/runs?token=wrong", &[]).0, 401);
    assert_eq!(dashboard.get("/api/runs?token=s3cret", &[]).0, 200);
    let bearer = [("Authorization", "Bearer s3cret")];
    assert_eq!(dashboard.get("/api/runs", &bearer).0, 200);

    // A token with characters a URL escapes, as the page sends it (encodeURIComponent).
    let odd = Dashboard::start(&redis.url(), &["--token", "a b+c/é&d"]);
    assert_eq!(
        odd.get("/api/runs?token=a%20b%2Bc%2F%C3%A9%26d", &[]).0,
        200
    );
    assert_eq!(odd.get("/api/runs?token=a%20b", &[]).0, 401);
}

#[test]
fn a_failed_run_shows_its_failed_node_and_message() {
    let redis = TestRedis::start();
    let runtime = runtime(&redis);
    let error = explode(leaf(7)).compute_on(&runtime).unwrap_err();
    assert!(error.to_string().contains("boom 7"), "{error}");
    let dashboard = Dashboard::start(&redis.url(), &[]);
    let id = run_id(&dashboard, "explode", "failed", Some(2));
    let (_, view) = dashboard.json(&format!("/api/runs/{id}"));
    assert_eq!(view["run"]["failures"], 1);
    let failed = view["graph"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["state"] == "failed")
        .unwrap_or_else(|| panic!("a failed node in {view}"));
    assert!(failed["task"].as_str().unwrap().ends_with("explode"));
    assert!(
        failed["error"].as_str().unwrap().contains("boom 7"),
        "{failed}"
    );
}

#[test]
fn a_running_dag_is_drawn_from_its_plan_and_its_events_are_pushed() {
    let redis = TestRedis::start();
    let runtime = runtime(&redis);
    let dashboard = Dashboard::start(&redis.url(), &[]);
    let running = thread::spawn(move || slow_chain(12, 250).compute_on(&runtime));
    let id = run_id(&dashboard, "slow_step", "running", None);

    // Subscribe, then read the snapshot: events after the subscription are not missed.
    let mut live = TcpStream::connect(&dashboard.addr).unwrap();
    live.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        live,
        "GET /api/runs/{id}/live HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let (status, view) = dashboard.json(&format!("/api/runs/{id}"));
    assert_eq!(status, 200);
    assert_eq!(
        view["graph"]["source"], "plan",
        "a running DAG is drawn whole"
    );
    assert_eq!(view["graph"]["nodes"].as_array().unwrap().len(), 13);
    let before = states(&view);
    assert!(before.iter().any(|s| s == "waiting"), "{before:?}");
    assert!(
        before.iter().filter(|s| *s == "ready").count() <= 1,
        "{before:?}"
    );

    let mut reader = BufReader::new(live);
    let mut done_events = 0;
    let mut line = String::new();
    while done_events < 3 {
        line.clear();
        reader
            .read_line(&mut line)
            .expect("the live stream goes on");
        assert!(!line.is_empty(), "the live stream ended");
        if let Some(data) = line.trim().strip_prefix("data:") {
            let message: Value = serde_json::from_str(data.trim()).unwrap();
            if message["kind"] == "event" && message["event"] == "done" {
                assert_eq!(message["dag"], id.as_str());
                assert!(message["node"].as_str().unwrap().parse::<u32>().is_ok());
                done_events += 1;
            }
        }
    }
    assert_eq!(running.join().unwrap().unwrap(), 12);
    let (_, view) = dashboard.json(&format!("/api/runs/{id}"));
    assert!(states(&view).iter().all(|s| s == "done"), "{view}");
}

#[test]
fn a_large_graph_is_drawn_by_groups() {
    let redis = TestRedis::start();
    let runtime = runtime(&redis);
    assert_eq!(fan_in(2_000).compute_on(&runtime).unwrap(), 1_999_000);
    let dashboard = Dashboard::start(&redis.url(), &[]);
    let id = run_id(&dashboard, "total", "succeeded", Some(2_001));
    let (_, view) = dashboard.json(&format!("/api/runs/{id}"));
    let aggregated = &view["graph"]["aggregated"];
    assert_eq!(aggregated["nodes"], 2_001, "{aggregated}");
    assert_eq!(aggregated["group_of"].as_array().unwrap().len(), 2_001);
    let groups = view["graph"]["nodes"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "leaves and the total");
    assert_eq!(groups[0]["count"], 2_000);
    assert_eq!(groups[0]["states"]["done"], 2_000);
    assert_eq!(view["graph"]["edges"], serde_json::json!([[0, 1]]));
}

#[test]
fn a_map_node_shows_its_child_dag() {
    let redis = TestRedis::start();
    let runtime = runtime(&redis);
    let doubled = numbers(5).map(double);
    assert_eq!(total(&doubled).compute_on(&runtime).unwrap(), 20);
    let dashboard = Dashboard::start(&redis.url(), &[]);
    let id = run_id(&dashboard, "total", "succeeded", None);
    // The records of the map's elements come in the background: wait for all five.
    let map = eventually("the map's five elements recorded", || {
        let (_, view) = dashboard.json(&format!("/api/runs/{id}"));
        let map = view["graph"]["nodes"]
            .as_array()?
            .iter()
            .find_map(|n| n.get("map"))?
            .clone();
        (map["done"].as_u64()? >= 5).then_some(map)
    });
    assert!(map["dag"].as_str().unwrap().starts_with(&format!("{id}.")));
    assert_eq!(map["failed"], 0);
}

// ------------------------------------------------------------------------- in a browser

/// Headless Chromium, if installed (Debian's `chromium`; `.ci/run` installs it).
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .output()
                .ok()?;
            let path = String::from_utf8(found.stdout).ok()?;
            (!path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
        })
}

/// A headless Chromium driven over DevTools: pages are checked once what the test waits for
/// is there, not after a fixed time.
struct Browser {
    _browser: headless_chrome::Browser,
    tab: std::sync::Arc<headless_chrome::Tab>,
}

impl Browser {
    fn launch(path: PathBuf) -> Browser {
        let options = headless_chrome::LaunchOptions {
            path: Some(path),
            sandbox: false,
            window_size: Some((1400, 1000)),
            idle_browser_timeout: Duration::from_secs(300),
            args: vec![std::ffi::OsStr::new("--disable-dev-shm-usage")],
            ..headless_chrome::LaunchOptions::default()
        };
        let browser = headless_chrome::Browser::new(options).expect("Chromium starts");
        let tab = browser.new_tab().expect("a tab");
        Browser {
            _browser: browser,
            tab,
        }
    }

    fn open(&self, url: &str) {
        self.tab
            .navigate_to(url)
            .and_then(|tab| tab.wait_until_navigated())
            .unwrap_or_else(|e| panic!("{url} loads: {e}"));
    }

    /// The value of `expression` in the page.
    fn eval(&self, expression: &str) -> Value {
        self.tab
            .evaluate(expression, false)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
            .value
            .unwrap_or(Value::Null)
    }

    /// Waits up to 30 s for `expression` to be true in the page.
    fn wait_for(&self, expression: &str) {
        eventually(expression, || {
            (self.eval(expression) == Value::Bool(true)).then_some(())
        });
    }

    /// How many elements match `selector`.
    fn count(&self, selector: &str) -> u64 {
        let expression = format!("document.querySelectorAll({selector:?}).length");
        self.eval(&expression).as_u64().unwrap_or(0)
    }

    fn text(&self, selector: &str) -> String {
        let expression = format!("document.querySelector({selector:?})?.textContent ?? ''");
        self.eval(&expression)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a screenshot as `name.png` among the test artifacts.
    fn screenshot(&self, name: &str) {
        let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
        std::fs::create_dir_all(&artifacts).unwrap();
        let png = self
            .tab
            .capture_screenshot(
                headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption::Png,
                None,
                None,
                true,
            )
            .expect("a screenshot");
        let path = artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

#[test]
fn the_pages_in_a_browser() {
    let Some(path) = chromium() else {
        eprintln!("skipped: no Chromium on PATH (apt-get install chromium; .ci/run installs it)");
        return;
    };
    let redis = TestRedis::start();
    let runtime = runtime(&redis);
    assert_eq!(fan_in(6).compute_on(&runtime).unwrap(), 15);
    explode(leaf(3)).compute_on(&runtime).unwrap_err();
    let dashboard = Dashboard::start(&redis.url(), &[]);
    let ok = run_id(&dashboard, "total", "succeeded", Some(7));
    let failed = run_id(&dashboard, "explode", "failed", Some(2));
    // Digests and records are separate writes of one upload: wait for the records too.
    eventually("the records of the run", || {
        let (_, view) = dashboard.json(&format!("/api/runs/{ok}"));
        (view["report"]["critical_path"].as_array()?.len() == 2).then_some(())
    });
    let browser = Browser::launch(path);

    // The list: both runs, with their states; it follows new runs without a reload.
    browser.open(&dashboard.url("/"));
    browser.wait_for("document.body.dataset.loaded === '1'");
    assert_eq!(
        browser.count(&format!("tr[data-run='{ok}'][data-state='succeeded']")),
        1
    );
    assert_eq!(
        browser.count(&format!("tr[data-run='{failed}'][data-state='failed']")),
        1
    );
    assert_eq!(fan_in(2).compute_on(&runtime).unwrap(), 1);
    browser.wait_for("document.querySelectorAll('tr[data-run]').length === 3");
    browser.screenshot("runs");
    // The filters: by state, then by name.
    browser.eval(
        "{ const s = document.querySelector('#filter-state'); s.value = 'failed'; \
         s.dispatchEvent(new Event('change')) }",
    );
    browser.wait_for("document.querySelectorAll('tr[data-run]').length === 1");
    assert_eq!(browser.count(&format!("tr[data-run='{failed}']")), 1);
    browser.eval(
        "{ const s = document.querySelector('#filter-state'); s.value = ''; \
         s.dispatchEvent(new Event('change')); \
         const n = document.querySelector('#filter-name'); n.value = 'total'; \
         n.dispatchEvent(new Event('input')) }",
    );
    browser.wait_for("document.querySelectorAll('tr[data-run]').length === 2");

    // A finished run: every node drawn and done, its critical path marked.
    browser.open(&dashboard.url(&format!("/runs/{ok}")));
    browser.wait_for("document.body.dataset.loaded === '1'");
    assert_eq!(browser.count(".node"), 7);
    assert_eq!(browser.count(".node[data-state='done']"), 7);
    let (_, view) = dashboard.json(&format!("/api/runs/{ok}"));
    assert!(
        browser.count(".node.critical") >= 2,
        "critical path: {}, nodes: {}",
        view["report"]["critical_path"],
        view["graph"]["nodes"]
    );
    assert_eq!(browser.count("#gantt rect"), 7, "one bar per attempt");
    assert_eq!(browser.count("#tasks tbody tr"), 2, "leaf and total");
    // Clicking a node shows its details.
    browser.eval(
        "document.querySelector('.node[data-node=\"6\"]').dispatchEvent(new MouseEvent('click'))",
    );
    let details = browser.text("#details");
    assert!(
        details.contains("total") && details.contains("worker"),
        "{details}"
    );
    browser.screenshot("run");

    // A failed run: the failed node, and its message.
    browser.open(&dashboard.url(&format!("/runs/{failed}")));
    browser.wait_for("document.body.dataset.loaded === '1'");
    assert_eq!(browser.count(".node[data-state='failed']"), 1);
    let errors = browser.text("#errors");
    assert!(errors.contains("boom 3: the input was refused"), "{errors}");
    browser.screenshot("failed");

    // A large graph: drawn by groups, and the page says so.
    assert_eq!(fan_in(2_000).compute_on(&runtime).unwrap(), 1_999_000);
    let large = eventually("the large run", || {
        let (_, runs) = dashboard.json("/api/runs");
        runs.as_array()?
            .iter()
            .find(|run| run["tasks"] == 2_001)
            .map(|run| run["id"].as_str().unwrap().to_owned())
    });
    browser.open(&dashboard.url(&format!("/runs/{large}")));
    browser.wait_for("document.body.dataset.loaded === '1'");
    assert_eq!(browser.count(".node"), 2, "2,001 nodes in two groups");
    let note = browser.text("#aggregated");
    assert!(note.contains("2001 nodes"), "{note}");
    browser.screenshot("large");

    // A map node holds its child DAG's progress.
    let doubled = numbers(4).map(double);
    assert_eq!(total(&doubled).compute_on(&runtime).unwrap(), 12);
    let mapped = eventually("the map run's elements recorded", || {
        let (_, runs) = dashboard.json("/api/runs");
        let id = runs.as_array()?.first()?["id"].as_str()?.to_owned();
        let (_, view) = dashboard.json(&format!("/api/runs/{id}"));
        let done = view["graph"]["nodes"]
            .as_array()?
            .iter()
            .find_map(|n| n["map"]["done"].as_u64())?;
        (done >= 4).then_some(id)
    });
    browser.open(&dashboard.url(&format!("/runs/{mapped}")));
    browser.wait_for("document.body.dataset.loaded === '1'");
    assert_eq!(browser.count("rect.map-bar"), 1);
    assert!(browser.text(".node").contains("map") || browser.count(".node text") > 0);
    let bar = browser.eval("document.querySelector('rect.map-bar').getAttribute('width')");
    assert!(
        bar.as_str()
            .and_then(|w| w.parse::<f64>().ok())
            .is_some_and(|w| w > 1.0),
        "{bar}"
    );

    // A run that goes on while the page is open: the page changes without reloading.
    let slow = thread::spawn(move || slow_chain(16, 300).compute_on(&runtime));
    let id = run_id(&dashboard, "slow_step", "running", None);
    browser.open(&dashboard.url(&format!("/runs/{id}")));
    browser.wait_for("document.body.dataset.loaded === '1'");
    assert_eq!(browser.count(".node"), 17, "a running DAG is drawn whole");
    let initial = browser.count(".node[data-state='done']");
    assert!(initial < 17, "{initial} done when the page loaded");
    browser.eval("window.__marker = 'same page'");
    browser.wait_for(&format!(
        "document.querySelectorAll(\".node[data-state='done']\").length >= {}",
        initial + 2
    ));
    assert!(browser.count(".node[data-state='waiting']") > 0);
    assert_eq!(browser.eval("window.__marker"), "same page", "no reload");
    browser.screenshot("live");
    assert_eq!(slow.join().unwrap().unwrap(), 16);
    // The sink has no `done` event: the page learns the end from the run's new state.
    browser.wait_for("document.querySelectorAll(\".node[data-state='done']\").length === 17");

    // With a token: the page passes it on to the API and to its links.
    let guarded = Dashboard::start(&redis.url(), &["--token", "s3cret"]);
    browser.open(&guarded.url("/?token=s3cret"));
    browser.wait_for("document.body.dataset.loaded === '1'");
    assert!(browser.count("tr[data-run]") >= 4);
    assert_eq!(
        browser.count("tr[data-run] a[href*='token=s3cret']"),
        browser.count("tr[data-run] a")
    );
    assert!(browser.text("#status").is_empty());

    // A Redis that is down: the page says so.
    // Port 1: nothing listens there (a freed port could be taken by another test's server).
    let port = 1;
    let down = Dashboard::start(&format!("redis://127.0.0.1:{port}"), &[]);
    browser.open(&down.url("/"));
    browser.wait_for("!document.querySelector('#status').hidden");
    let status = browser.text("#status");
    assert!(status.contains("unreachable"), "{status}");
    assert!(status.contains("127.0.0.1:1"), "{status}");
    browser.screenshot("redis-down");
}
