//! `keys_matching` on a server (the in-process one, or redis-server with `DAG_TEST_REDIS=real`):
//! every matching key, sorted, however many SCAN steps.

use dag_test_support::{connect, keys_matching, TestRedis};

#[test]
fn keys_matching_finds_every_matching_key_sorted() {
    let server = TestRedis::start();
    let mut conn = connect(&server.url());
    assert_eq!(keys_matching(&mut conn, "*"), Vec::<String>::new());
    // More keys than one SCAN step returns.
    let mut pipe = redis::pipe();
    for i in (0..2500).rev() {
        pipe.cmd("SET")
            .arg(format!("dag:{{d1}}:{i:04}"))
            .arg(i)
            .ignore();
    }
    pipe.cmd("SET")
        .arg("dag:{d2}:status")
        .arg("running")
        .ignore();
    pipe.cmd("SET").arg("dags").arg("x").ignore();
    let _: () = pipe.query(&mut conn).unwrap();

    let d1 = keys_matching(&mut conn, "dag:{d1}:*");
    let expected: Vec<String> = (0..2500).map(|i| format!("dag:{{d1}}:{i:04}")).collect();
    assert_eq!(d1, expected);
    assert_eq!(keys_matching(&mut conn, "dag:{d2}:*"), ["dag:{d2}:status"]);
    assert_eq!(keys_matching(&mut conn, "*").len(), 2502);
}
