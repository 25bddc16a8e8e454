//! The HTTP routes: the pages, their assets, and the JSON API under `/api/` that the pages (and
//! scripts) read.
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /`, `GET /runs/{id}` | the page (one page; its script reads the address) |
//! | `GET /assets/{file}` | the page's script and style sheet |
//! | `GET /api/runs?limit=&name=&state=` | recent runs, newest first (JSON array) |
//! | `GET /api/runs/{id}` | one run: its row, report, graph and timeline (JSON object) |
//! | `GET /api/live` | server-sent events: the list of runs changed, or Redis is unreachable |
//! | `GET /api/runs/{id}/live` | server-sent events: the run's events as they happen |
//!
//! Errors are JSON objects `{"error": "..."}`: 404 for a run that does not exist, 503 while
//! Redis is unreachable, 401 without the token when one is set (the API only: the page and
//! its assets hold no data).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use super::assets;
use super::live::Hub;
use super::sources::{SourceError, Sources};

/// What every handler shares.
pub struct App {
    pub sources: Arc<Sources>,
    pub hub: Arc<Hub>,
    /// Required on every request when set.
    pub token: Option<String>,
}

/// The dashboard's routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(assets::page))
        .route("/runs/{id}", get(assets::page))
        .route("/assets/{file}", get(assets::asset))
        .route("/api/runs", get(runs))
        .route("/api/runs/{id}", get(run))
        .route("/api/live", get(live_runs))
        .route("/api/runs/{id}/live", get(live_run))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), authorize))
        .with_state(app)
}

/// A JSON error with its status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<SourceError> for ApiError {
    fn from(error: SourceError) -> Self {
        let status = match error {
            SourceError::NoSuchRun(_) => StatusCode::NOT_FOUND,
            SourceError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, error.to_string())
    }
}

/// The filters of `/api/runs`.
#[derive(Debug, Deserialize)]
struct RunsQuery {
    /// At most this many runs (default 50, at most 1,000).
    limit: Option<usize>,
    /// Only runs whose name contains this.
    name: Option<String>,
    /// Only runs in this state (`running`, `succeeded`, `failed`, `cancelled`).
    state: Option<String>,
}

async fn runs(
    State(app): State<Arc<App>>,
    Query(query): Query<RunsQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(50).min(1_000);
    let filtering = query.name.is_some() || query.state.is_some();
    // Filters apply to the most recent runs kept, not only to the first `limit`.
    let mut rows = app
        .sources
        .runs(if filtering { 1_000 } else { limit })
        .await?;
    if let Some(name) = query.name.as_deref().filter(|n| !n.is_empty()) {
        rows.retain(|row| row.name.contains(name));
    }
    if let Some(state) = query.state.as_deref().filter(|s| !s.is_empty()) {
        rows.retain(|row| row.state.as_str() == state);
    }
    rows.truncate(limit);
    Ok(Json(rows).into_response())
}

async fn run(State(app): State<Arc<App>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(app.sources.run(&id).await?).into_response())
}

async fn live_runs(State(app): State<Arc<App>>) -> impl IntoResponse {
    sse(app.hub.subscribe_runs())
}

async fn live_run(State(app): State<Arc<App>>, Path(id): Path<String>) -> impl IntoResponse {
    sse(app.hub.subscribe_run(&id))
}

/// A server-sent-event stream of `receiver`'s messages; a page that fell behind is told to
/// resync rather than left with a gap.
fn sse(
    receiver: broadcast::Receiver<Arc<str>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(receiver, |mut receiver| async move {
        let data: Arc<str> = match receiver.recv().await {
            Ok(message) => message,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                json!({"kind": "resync"}).to_string().into()
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().data(&*data)), receiver))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no such API: {}", request.uri().path()),
        )
        .into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            "not found: the dashboard's pages are / and /runs/{id}\n",
        )
            .into_response()
    }
}

/// With a token set, every request for data (`/api/...`) must carry it: `?token=...` (what
/// the page's address and its own requests carry) or `Authorization: Bearer ...`. The page and
/// its assets hold no data and load without it (a browser does not add the token to the
/// requests for a page's script and style sheet).
async fn authorize(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = app.token.as_deref() else {
        return next.run(request).await;
    };
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Decoded as a form: the page sends `encodeURIComponent(token)`.
    let in_query = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .is_ok_and(|Query(query)| query.get("token").map(String::as_str) == Some(token));
    if bearer == Some(token) || in_query {
        return next.run(request).await;
    }
    ApiError(
        StatusCode::UNAUTHORIZED,
        "this dashboard needs its token: open it as /?token=TOKEN, or send \
         `Authorization: Bearer TOKEN`"
            .into(),
    )
    .into_response()
}
