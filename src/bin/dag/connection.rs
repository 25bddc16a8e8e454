//! The CLI's own connection to Redis: checked first, so that a wrong URL or a server that is
//! down is reported at once (the metrics backend's connection retries for several seconds
//! before it gives up), and used for the reads the backend has no call for.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::error::{addr_of, CliError};

/// How long connecting may take before the server is reported unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to the Redis at `url` that has answered `PING`.
pub async fn connect(url: &str) -> Result<MultiplexedConnection, CliError> {
    let failed = |message: String| CliError::Redis {
        addr: addr_of(url),
        message,
    };
    let client = redis::Client::open(url).map_err(|e| {
        failed(format!(
            "not a Redis URL ({e}): expected redis://[:PASSWORD@]HOST:PORT[/DB]"
        ))
    })?;
    let unreachable = |e: String| {
        failed(format!(
            "cannot connect ({e}): is it running, and is the URL right?"
        ))
    };
    let mut connection =
        tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
            .await
            .map_err(|_| unreachable(format!("no answer in {} s", CONNECT_TIMEOUT.as_secs())))?
            .map_err(|e| unreachable(e.to_string()))?;
    redis::cmd("PING")
        .query_async::<()>(&mut connection)
        .await
        .map_err(|e| failed(format!("PING failed: {e}")))?;
    Ok(connection)
}
