//! A Redis server that restarts without persistence while worker processes serve it.

use super::*;

/// How many `done` events DAG `dag` has recorded (its events stream also starts with a
/// `submitted` event, written before the invocations are queued).
fn done_events(conn: &mut redis::Connection, dag: &str) -> usize {
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("dag:{{{dag}}}:events"))
        .arg("-")
        .arg("+")
        .query(conn)
        .unwrap_or_default();
    entries
        .iter()
        .filter(|(_, fields)| fields.iter().any(|(k, v)| k == "event" && v == "done"))
        .count()
}

pub fn a_redis_restart_fails_the_dag_and_the_workers_serve_the_next() {
    let mut server = TestRedis::start();
    let stream = "dag:restart-test";
    let mut workers = workers(2, &server.url(), stream);
    let pids = [workers[0].pid(), workers[1].pid()];
    let mut conn = connect(&server.url());
    assert!(
        eventually(Duration::from_secs(30), || ready_workers(&mut conn, stream)
            == 2),
        "both workers serve the stream"
    );
    let runtime = Runtime::builder()
        .redis(server.url())
        .worker_pool()
        .stream(stream)
        .build()
        .unwrap();

    // A DAG that takes a while: 32 leaves of 300 ms on 4 threads.
    let (sender, outcome) = std::sync::mpsc::channel();
    {
        let runtime = runtime.clone();
        std::thread::spawn(move || {
            let _ = sender.send(tree(32, 300).compute_on(&runtime));
        });
    }
    let mut dag = None;
    let under_way = eventually(Duration::from_secs(30), || {
        dag = submitted_dags(&mut conn).into_iter().next();
        dag.as_deref()
            .is_some_and(|d| done_events(&mut conn, d) > 0)
    });
    assert!(under_way, "the DAG runs on the workers");
    let dag = dag.expect("seen in `dags`");

    server.restart();
    let result = outcome
        .recv_timeout(Duration::from_secs(60))
        .expect("compute ends instead of hanging after the restart");
    let text = match result {
        Err(e) => e.to_string(),
        Ok(sum) => panic!("the DAG was lost with the restart, yet it returned {sum}"),
    };
    assert!(text.contains(&dag), "names the DAG: {text}");
    assert!(text.contains(&server.addr()), "names the server: {text}");
    assert!(text.contains("restart"), "says what happened: {text}");

    // The same worker processes serve a new DAG on the new server: they reconnected and
    // created the stream's group again.
    assert!(
        pids.iter().all(|&p| process_alive(p)),
        "the workers survived the restart"
    );
    let mut conn = connect(&server.url());
    let watcher = EventWatcher::start(&server.url());
    assert_eq!(
        compute(&tree(24, 40), &runtime).expect("a DAG submitted after the restart completes"),
        sum_1_to(24)
    );
    let (seen, events) = watcher.finish();
    assert!(events > 0, "the watcher saw the new DAG's events");
    let processes: BTreeSet<u32> = seen
        .iter()
        .filter_map(|w| w.rsplit(':').next()?.parse().ok())
        .collect();
    assert!(
        !processes.is_empty() && processes.iter().all(|p| pids.contains(p)),
        "the new DAG ran on the workers started before the restart {pids:?}: {seen:?}"
    );
    assert!(workers[0].wait_exit(Duration::ZERO).is_none());
    assert!(workers[1].wait_exit(Duration::ZERO).is_none());
    assert_eq!(keys_matching(&mut conn, DAG_KEYS), Vec::<String>::new());
    assert!(
        eventually(Duration::from_secs(10), || stream_len(&mut conn, stream)
            == 0),
        "every entry was acked"
    );
}
