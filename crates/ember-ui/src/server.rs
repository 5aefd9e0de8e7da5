//! The HTTP server: one thread of its own running a single-threaded tokio runtime, so the UI
//! takes no worker thread of the job and a slow client waits on its own connection only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use ember::ContextHandle;
use futures_util::Stream;
use serde_json::Value;

use crate::dashboard::Boards;
use crate::store::{Shared, Store};
use crate::{html, metrics, rest};

/// What every handler reads.
#[derive(Clone)]
pub(crate) struct App {
    pub shared: Shared,
    pub boards: Arc<Boards>,
    pub skipped: Arc<ember::operator::SkipCounters>,
    pub token: Option<String>,
    pub kill: bool,
    pub context: ContextHandle,
}

impl App {
    fn now(&self) -> u64 {
        self.context.now_millis().unwrap_or(0)
    }
}

/// The cookie a browser gets after opening a page with `?token=`, so links keep working.
const COOKIE: &str = "ember_ui_token";

/// Every path needs the token, when one is set: `Authorization: Bearer`, `?token=` or the cookie.
async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    let Some(token) = app.token.as_deref() else { return next.run(req).await };
    let header_ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == token);
    let cookie_ok = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .any(|c| c.trim().strip_prefix(COOKIE).and_then(|c| c.strip_prefix('=')) == Some(token));
    let query_ok = query_values(req.uri().query(), "token").iter().any(|t| t == token);
    if !(header_ok || cookie_ok || query_ok) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"ember\"")],
            "this Ember UI needs a token: send `Authorization: Bearer <ui.token>` or open the page with `?token=<ui.token>`\n",
        )
            .into_response();
    }
    let mut resp = next.run(req).await;
    if query_ok && !cookie_ok {
        if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict")) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

fn not_found(what: String) -> Response {
    (StatusCode::NOT_FOUND, what + "\n").into_response()
}

/// JSON as Spark's REST API writes it: pretty-printed.
fn json(v: Value) -> Response {
    let body = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Runs `f` on the store of application `app`, or answers 404 for another id.
fn with_app(app: &App, id: &str, f: impl FnOnce(&Store) -> Response) -> Response {
    let s = app.shared.lock();
    if s.app_id != id {
        return not_found(format!("no such application `{id}`: this UI serves `{}`", s.app_id));
    }
    f(&s)
}

fn batch_or_404(s: &Store, id: &str, f: impl FnOnce(&crate::store::Batch) -> Response) -> Response {
    match id.parse::<u64>().ok().and_then(|t| s.batches.get(&t)) {
        Some(b) => f(b),
        None => not_found(format!("no batch `{id}` among the batches this UI keeps (ui.retained_batches)")),
    }
}

/// Server-sent events: one right away (what changed between the page's rendering and this
/// connection is not lost), then one whenever the job or a dashboard changed, at most every
/// 200 ms. Each client holds one pending event at most, so a slow one costs nothing.
fn changes(app: &App) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let state = (app.shared.changes.subscribe(), app.boards.changes.subscribe(), true);
    let stream = futures_util::stream::unfold(state, |(mut job, mut boards, first)| async move {
        if !first {
            tokio::select! {
                r = job.changed() => r.ok()?,
                r = boards.changed() => r.ok()?,
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        job.borrow_and_update();
        boards.borrow_and_update();
        let version = *job.borrow();
        Some((Ok(Event::default().event("message").data(version.to_string())), (job, boards, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The values of `key` in a query string, percent-decoded.
pub(crate) fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn id_of(query: Option<&str>) -> String {
    query_values(query, "id").into_iter().next().unwrap_or_default()
}

pub(crate) fn router(app: App) -> Router {
    let api = "/api/v1/applications/{app}/streaming";
    let mut r = Router::new()
        .route("/", get(|| async { Redirect::to("/streaming/") }))
        .route("/streaming", get(|| async { Redirect::to("/streaming/") }))
        .route(
            "/streaming/",
            get(|State(app): State<App>| async move {
                let s = app.shared.lock();
                let body = html::streaming(&s, app.now());
                Html(html::page("Streaming Statistics", &s.app_name, "/streaming/fragment", "/events", &body, app.kill))
            }),
        )
        .route(
            "/streaming/fragment",
            get(|State(app): State<App>| async move { Html(html::streaming(&app.shared.lock(), app.now())) }),
        )
        .route(
            "/streaming/batch/",
            get(|State(app): State<App>, RawQuery(q): RawQuery| async move {
                let id = id_of(q.as_deref());
                let s = app.shared.lock();
                match id.parse::<u64>().ok().and_then(|t| html::batch(&s, t)) {
                    Some(body) => Html(html::page(
                        &format!("Batch {id}"),
                        &s.app_name,
                        "/streaming/batch/fragment",
                        "/events",
                        &body,
                        app.kill,
                    ))
                    .into_response(),
                    None => not_found(format!("no batch `{id}` among the batches this UI keeps (ui.retained_batches)")),
                }
            }),
        )
        .route(
            "/streaming/batch/fragment",
            get(|State(app): State<App>, RawQuery(q): RawQuery| async move {
                let id = id_of(q.as_deref());
                match id.parse::<u64>().ok().and_then(|t| html::batch(&app.shared.lock(), t)) {
                    Some(body) => Html(body).into_response(),
                    None => not_found(format!("no batch `{id}`")),
                }
            }),
        )
        .route("/events", get(|State(app): State<App>| async move { changes(&app) }))
        .route(
            "/dashboard",
            get(|State(app): State<App>| async move {
                let body = html::dashboards(&app.boards.snapshot());
                let name = app.shared.lock().app_name.clone();
                Html(html::page("Dashboards", &name, "/dashboard/fragment", "/events", &body, app.kill))
            }),
        )
        .route(
            "/dashboard/fragment",
            get(|State(app): State<App>| async move { Html(html::dashboards(&app.boards.snapshot())) }),
        )
        .route(
            "/dashboard/{name}",
            get(|State(app): State<App>, Path(name): Path<String>| async move {
                let boards = app.boards.snapshot();
                let Some((_, board)) = boards.get(&name) else {
                    return not_found(format!("no dashboard `{name}`; see /dashboard"));
                };
                let body = html::dashboard(&name, board.as_ref());
                let app_name = app.shared.lock().app_name.clone();
                let fragment = format!("/dashboard/{}/fragment", html::encode(&name));
                Html(html::page(&name, &app_name, &fragment, "/events", &body, app.kill)).into_response()
            }),
        )
        .route(
            "/dashboard/{name}/fragment",
            get(|State(app): State<App>, Path(name): Path<String>| async move {
                match app.boards.snapshot().get(&name) {
                    Some((_, board)) => Html(html::dashboard(&name, board.as_ref())).into_response(),
                    None => not_found(format!("no dashboard `{name}`")),
                }
            }),
        )
        .route(
            "/api/v1/applications",
            get(|State(app): State<App>| async move { json(rest::applications(&app.shared.lock(), app.now())) }),
        )
        .route(
            &format!("{api}/statistics"),
            get(|State(app): State<App>, Path(id): Path<String>| async move {
                with_app(&app, &id, |s| json(rest::statistics(s)))
            }),
        )
        .route(
            &format!("{api}/receivers"),
            get(|State(app): State<App>, Path(id): Path<String>| async move {
                with_app(&app, &id, |s| json(rest::receivers(s)))
            }),
        )
        .route(
            &format!("{api}/receivers/{{stream}}"),
            get(|State(app): State<App>, Path((id, stream)): Path<(String, String)>| async move {
                with_app(&app, &id, |s| match stream.parse().ok().and_then(|n| rest::receiver(s, n)) {
                    Some(v) => json(v),
                    None => not_found(format!("no receiver for stream `{stream}`")),
                })
            }),
        )
        .route(
            &format!("{api}/batches"),
            get(|State(app): State<App>, Path(id): Path<String>, RawQuery(q): RawQuery| async move {
                with_app(&app, &id, |s| match rest::parse_statuses(q.as_deref()) {
                    Ok(statuses) => json(rest::batches(s, &statuses)),
                    Err(e) => (StatusCode::BAD_REQUEST, e + "\n").into_response(),
                })
            }),
        )
        .route(
            &format!("{api}/batches/{{batch}}"),
            get(|State(app): State<App>, Path((id, batch)): Path<(String, String)>| async move {
                with_app(&app, &id, |s| batch_or_404(s, &batch, |b| json(rest::batch(s, b))))
            }),
        )
        .route(
            &format!("{api}/batches/{{batch}}/operations"),
            get(|State(app): State<App>, Path((id, batch)): Path<(String, String)>| async move {
                with_app(&app, &id, |s| batch_or_404(s, &batch, |b| json(rest::operations(s, b))))
            }),
        )
        .route(
            &format!("{api}/batches/{{batch}}/operations/{{op}}"),
            get(|State(app): State<App>, Path((id, batch, op)): Path<(String, String, String)>| async move {
                with_app(&app, &id, |s| {
                    batch_or_404(s, &batch, |b| match op.parse().ok().and_then(|o| rest::operation(s, b, o)) {
                        Some(v) => json(v),
                        None => not_found(format!("no output operation `{op}` in batch {batch}")),
                    })
                })
            }),
        )
        .route("/metrics", get(|State(app): State<App>| async move { prometheus(&app) }))
        .route("/metrics/prometheus", get(|State(app): State<App>| async move { prometheus(&app) }));
    if app.kill {
        r = r.route(
            "/streaming/kill",
            post(|State(app): State<App>| async move {
                tracing::warn!("ui: the job is stopped from the web UI's kill link");
                let context = app.context.clone();
                // Stopping waits for the job's threads; not on the server's thread.
                let _ = std::thread::Builder::new().name("ember-ui-kill".into()).spawn(move || {
                    if let Err(e) = context.stop(false) {
                        tracing::error!("ui: stopping the job failed: {e}");
                    }
                });
                Redirect::to("/streaming/")
            }),
        );
    }
    r.layer(middleware::from_fn_with_state(app.clone(), auth)).with_state(app)
}

fn prometheus(app: &App) -> Response {
    let skipped = app.skipped.values();
    let text =
        metrics::render(&app.shared.lock(), app.context.input_counters(), app.context.storage_counters(), &skipped);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Binds `host:port`, or the next free port up to 16 above it when taken (Spark's
/// `spark.port.maxRetries`); port 0 lets the system choose.
pub(crate) fn bind(host: &str, port: u16) -> std::io::Result<std::net::TcpListener> {
    let mut last = None;
    for p in 0..=16u16 {
        let try_port = if port == 0 { 0 } else { port.saturating_add(p) };
        match std::net::TcpListener::bind((host, try_port)) {
            Ok(l) => {
                if p > 0 {
                    tracing::warn!("ui: port {port} is taken; the UI uses port {try_port}");
                }
                return Ok(l);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && port != 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port")))
}

/// The running server's address and its thread.
pub(crate) fn spawn(
    listener: std::net::TcpListener,
    app: App,
) -> std::io::Result<(SocketAddr, tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let thread = std::thread::Builder::new().name("ember-ui".into()).spawn(move || {
        rt.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("ui: cannot serve on {addr}: {e}");
                    return;
                }
            };
            tokio::select! {
                r = axum::serve(listener, router(app)) => {
                    if let Err(e) = r {
                        tracing::error!("ui: the server stopped: {e}");
                    }
                }
                _ = rx => {}
            }
        });
        // Open connections (event streams) end with the runtime.
        rt.shutdown_timeout(Duration::from_secs(1));
    })?;
    Ok((addr, tx, thread))
}
