//! Runs an in-process Redis until interrupted, printing its URL (for `redis-cli` or
//! `redis-benchmark -p PORT`).

fn main() -> std::io::Result<()> {
    let redis = dag_testing::InProcessRedis::start()?;
    println!("{}", redis.url());
    loop {
        std::thread::park();
    }
}
