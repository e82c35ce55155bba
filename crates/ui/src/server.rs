//! The dashboard server: one page (HTML, CSS and JS built into the binary), a JSON API
//! over [`view`](crate::view), the operator's [`actions`](crate::actions), `/metrics`, and
//! `/api/live`, a server-sent event stream that says when the stores changed.
//!
//! Access: on a loopback address nothing is asked, but the `Host` header must name a
//! loopback host (no DNS rebinding); any other address needs a token, given as
//! `Authorization: Bearer …`, or once as `/?token=…` (kept in a cookie). Actions are
//! POSTs with an `x-skein-ui` header, which a cross-site page cannot send without a
//! preflight this server never answers.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::{Sources, metrics, view};
use skein_usecases::operator::{self, Decision};

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const COOKIE: &str = "skein_ui_token";
/// How often the stores are checked for changes made by other processes.
const WATCH_EVERY: Duration = Duration::from_millis(300);
/// How often the pages of a deployed stack redraw (each redraw reads DynamoDB and Step
/// Functions; Step Functions' API quotas are per account, shared with the running fleet).
const POLL_STACK_EVERY: Duration = Duration::from_secs(10);

/// How `skein ui` serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (127.0.0.1 by default).
    pub addr: SocketAddr,
    /// Required from clients when set; required to be set outside loopback.
    pub token: Option<String>,
    /// Who the operator is, recorded with approvals.
    pub user: String,
}

impl Config {
    /// Refuses a non-loopback address without a token.
    pub fn check(&self) -> Result<()> {
        if !self.addr.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(Error::PublicWithoutToken { addr: self.addr });
        }
        Ok(())
    }

    /// Checks the config and binds the listener.
    pub async fn bind(&self) -> Result<TcpListener> {
        self.check()?;
        TcpListener::bind(self.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: self.addr,
                source,
            })
    }
}

#[derive(Clone)]
struct App {
    sources: Sources,
    token: Option<Arc<str>>,
    loopback: bool,
    user: Arc<str>,
    changes: watch::Receiver<u64>,
}

/// Serves the dashboard on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    sources: Sources,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    config.check()?;
    let (tx, changes) = watch::channel(0u64);
    let watcher = match sources.dir.clone() {
        Some(dir) => tokio::spawn(watch_stores(dir, tx)),
        None => tokio::spawn(tick(tx)),
    };
    let app = App {
        sources,
        token: config.token.filter(|t| !t.is_empty()).map(Arc::from),
        loopback: config.addr.ip().is_loopback(),
        user: Arc::from(config.user.as_str()),
        changes,
    };
    let router = Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset(SCRIPT, "text/javascript") }),
        )
        .route("/app.css", get(|| async { asset(STYLE, "text/css") }))
        .route("/metrics", get(prometheus))
        .route("/api/datasets", get(datasets))
        .route("/api/runs", get(runs))
        .route("/api/runs/{id}", get(run))
        .route("/runs/{id}/report.html", get(run_report))
        .route("/api/executions/{id}", get(execution))
        .route("/api/live", get(live))
        .route("/api/datasets/{name}", get(dataset))
        .route("/api/datasets/{name}/approve", post(approve))
        .route("/api/datasets/{name}/reject", post(reject))
        .route("/api/datasets/{name}/rollback", post(rollback))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    served.map_err(|source| Error::Serve { source })
}

/// A deployed stack's catalog and executions say nothing when they change: the pages are
/// told to redraw every [`POLL_STACK_EVERY`].
async fn tick(tx: watch::Sender<u64>) {
    loop {
        tokio::time::sleep(POLL_STACK_EVERY).await;
        tx.send_modify(|n| *n += 1);
    }
}

/// Bumps the counter whenever another connection committed to one of the databases
/// (`PRAGMA data_version` changes exactly then).
async fn watch_stores(dir: std::path::PathBuf, tx: watch::Sender<u64>) {
    let open = |name: &str| -> Option<rusqlite::Connection> {
        let c = rusqlite::Connection::open_with_flags(
            dir.join(name),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        c.busy_timeout(Duration::from_secs(5)).ok()?;
        Some(c)
    };
    let conns: Vec<rusqlite::Connection> = ["catalog.db", "states.db", "queue.db"]
        .into_iter()
        .filter_map(open)
        .collect();
    let version = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap_or(-1)
    };
    let mut last: Vec<i64> = conns.iter().map(version).collect();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let now: Vec<i64> = conns.iter().map(version).collect();
        if now != last {
            last = now;
            tx.send_modify(|n| *n += 1);
        }
    }
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::UnknownRun { .. }
            | Error::UnknownExecution { .. }
            | Error::UnknownDataset { .. }
            | Error::Action(operator::Error::UnknownDataset { .. }) => StatusCode::NOT_FOUND,
            Error::Action(
                operator::Error::NotWaiting { .. }
                | operator::Error::RollbackRefused { .. }
                | operator::Error::LeaseHeld { .. },
            ) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{self}");
        }
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

fn query_token(uri: &axum::http::Uri) -> Option<&str> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v)
}

/// Equal strings, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return true; // HTTP/1.0 without Host: nothing to rebind
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn guard(State(app): State<App>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let mut set_cookie = None;
    match &app.token {
        None => {
            if app.loopback && !loopback_host(headers) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "this dashboard only answers requests for a loopback host (localhost, 127.0.0.1)",
                );
            }
        }
        Some(token) => {
            let bearer = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            let given = bearer
                .or_else(|| cookie_token(headers))
                .or_else(|| query_token(req.uri()));
            if !given.is_some_and(|g| same(g, token)) {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "this dashboard needs its token: open /?token=TOKEN once, or send Authorization: Bearer TOKEN",
                );
            }
            if query_token(req.uri()).is_some() {
                set_cookie = HeaderValue::from_str(&format!(
                    "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
                ))
                .ok();
            }
        }
    }
    if req.method() == axum::http::Method::POST && !headers.contains_key("x-skein-ui") {
        return refuse(
            StatusCode::FORBIDDEN,
            "actions need the x-skein-ui header (the dashboard's page sends it)",
        );
    }
    let mut response = next.run(req).await;
    if let Some(c) = set_cookie {
        response.headers_mut().insert(header::SET_COOKIE, c);
    }
    response
}

async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

async fn prometheus(State(app): State<App>) -> Result<Response> {
    let text = metrics::render(&app.sources).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn datasets(State(app): State<App>) -> Result<Response> {
    Ok(Json(json!({ "datasets": view::datasets(&app.sources).await? })).into_response())
}

async fn runs(State(app): State<App>) -> Result<Response> {
    Ok(Json(json!({ "runs": view::runs(&app.sources).await? })).into_response())
}

async fn run(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Result<Response> {
    Ok(Json(view::run(&app.sources, &id).await?).into_response())
}

async fn run_report(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Result<Response> {
    let html = crate::report::html(&app.sources, &id).await?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn execution(
    State(app): State<App>,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<Limit>,
) -> Result<Response> {
    let limit = q.limit.unwrap_or(500);
    let v = view::execution(&app.sources, &id, limit).await?;
    Ok(Json(v).into_response())
}

async fn live(
    State(app): State<App>,
) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let rx = app.changes.clone();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let n = *rx.borrow_and_update();
        Some((Ok(Event::default().event("change").data(n.to_string())), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize, Default)]
struct Reason {
    reason: Option<String>,
}

fn reason_of(body: Option<Json<Reason>>, default: &str) -> String {
    body.and_then(|Json(r)| r.reason)
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| default.to_string())
}

async fn dataset(State(app): State<App>, UrlPath(name): UrlPath<String>) -> Result<Response> {
    Ok(Json(view::dataset(&app.sources, &name).await?).into_response())
}

async fn approve(State(app): State<App>, UrlPath(name): UrlPath<String>) -> Result<Response> {
    let c = app.sources.catalog.as_ref();
    let callbacks = app.sources.callbacks.as_ref();
    let a = operator::answer_approval(c, callbacks, &name, Decision::Approve, &app.user).await?;
    Ok(Json(a).into_response())
}

async fn reject(
    State(app): State<App>,
    UrlPath(name): UrlPath<String>,
    body: Option<Json<Reason>>,
) -> Result<Response> {
    let reason = reason_of(body, "rejected");
    let c = app.sources.catalog.as_ref();
    let decision = Decision::Reject { reason: &reason };
    let callbacks = app.sources.callbacks.as_ref();
    let a = operator::answer_approval(c, callbacks, &name, decision, &app.user).await?;
    Ok(Json(a).into_response())
}

async fn rollback(
    State(app): State<App>,
    UrlPath(name): UrlPath<String>,
    body: Option<Json<Reason>>,
) -> Result<Response> {
    let reason = reason_of(body, &format!("requested by {} in skein ui", app.user));
    let run_id = skein_usecases::new_run_id();
    let r = operator::rollback(app.sources.catalog.as_ref(), &name, &run_id, &reason).await?;
    Ok(Json(r).into_response())
}
