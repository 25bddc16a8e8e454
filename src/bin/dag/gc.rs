//! `dag gc`: removes old runs' metrics and expired DAGs.

use dag::metrics::{MetricsBackend, RedisMetrics};
use dag::store::{RedisStore, Store};

use crate::error::{addr_of, CliError};

/// Collects both, metrics first (they need no scripts loaded), and says what it removed.
pub async fn gc(metrics: &RedisMetrics, url: &str) -> Result<String, CliError> {
    let runs = metrics.gc().await?;
    let store = RedisStore::connect(url).await?;
    let dags = store.gc().await?;
    Ok(format!(
        "removed the metrics of {runs} run{} older than their time to live\n\
         removed {dags} expired DAG{} from the store at {}\n",
        plural(runs),
        plural(dags),
        addr_of(url)
    ))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
