//! `dag dashboard`: a read-only web UI of the runs in one Redis, served by the `dag` binary.
//!
//! | module | owns |
//! | --- | --- |
//! | `api` | the routes: pages, assets, the JSON API and its errors, the token check |
//! | `sources` | reading runs, their metrics and running DAGs' state from Redis, bounded in time |
//! | `graph` | the graph of one run as the page draws it (states, levels, groups) |
//! | `live` | the one reader of Redis that feeds every page's live updates |
//! | `assets` | the page, its script and style sheet, embedded |

mod api;
mod assets;
mod graph;
mod live;
mod sources;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::CliError;

/// Serves the dashboard of the Redis at `url` on `bind` until the process is interrupted.
pub fn serve(url: String, bind: &str, token: Option<String>) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| CliError::Bind {
                bind: bind.to_owned(),
                error: e,
            })?;
        let addr: SocketAddr = listener.local_addr().map_err(|e| CliError::Bind {
            bind: bind.to_owned(),
            error: e,
        })?;
        let sources = Arc::new(sources::Sources::new(url));
        let hub = live::Hub::start(Arc::clone(&sources));
        let token = token.filter(|t| !t.is_empty());
        let link = match &token {
            Some(token) => format!("http://{addr}/?token={token}"),
            None => format!("http://{addr}/"),
        };
        // The first line is the address (tests and scripts read it); the rest is for people.
        say(&format!("dag dashboard: {link}"));
        say(&format!("reading the runs of Redis at {}", sources.addr()));
        if addr.ip().is_loopback() {
            say("serving this machine only (--bind 0.0.0.0:PORT --token TOKEN serves others)");
        } else if token.is_none() {
            say(&format!(
                "warning: serving everyone who can reach {addr}, without a token (--token TOKEN)"
            ));
        }
        let app = Arc::new(api::App {
            sources,
            hub,
            token,
        });
        axum::serve(listener, api::router(app))
            .with_graceful_shutdown(interrupted())
            .await
            .map_err(CliError::Output)
    })
}

/// Prints a line for the person who started the dashboard; a closed stdout (the reader of the
/// address went away) does not stop the server.
fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
