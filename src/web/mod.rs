//! The HTTP surface: an axum router over the shared [`State`], the
//! configuration and the service metrics. Handlers only read the latest
//! published snapshot; they never compute business numbers.
//!
//! - `/metrics`, `/healthz`, `/readyz`: Prometheus and probes.
//! - `/`: the leadership dashboard; `/view`: its live part alone.
//! - `/api/pipelines`, `/api/funnel`: the same numbers as JSON.
//! - `/api/stream`: Server-Sent Events announcing each new snapshot version.

mod breakdown;
pub mod dashboard;
pub mod families;
pub mod text;
pub mod view;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::config::{Config, Dimension};
use crate::event::Reason;
use crate::export::ServiceMetrics;
use crate::source::now_ms;
use breakdown::{Breakdown, Column, Order};
use dashboard::{PageTemplate, Selection, ViewTemplate};
use text::Lang;
use view::{Basis, Freshness, FunnelView};

/// Only the page's own script and style; no inline code, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What the handlers read.
struct Web {
    state: Arc<crate::state::State>,
    config: Arc<Config>,
    metrics: Arc<ServiceMetrics>,
}

pub fn router(state: Arc<crate::state::State>, config: Arc<Config>, service: Arc<ServiceMetrics>) -> Router {
    let app = Arc::new(Web { state, config, metrics: service });
    Router::new()
        .route("/", get(page))
        .route("/view", get(fragment))
        .route("/api/pipelines", get(pipelines))
        .route("/api/funnel", get(funnel))
        .route("/api/stream", get(stream))
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("../../static/app.js")) }),
        )
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("../../static/app.css")) }),
        )
        .route("/static/icon.svg", get(|| async { asset("image/svg+xml", include_str!("../../static/icon.svg")) }))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(SetResponseHeaderLayer::overriding(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(10)))
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .layer(CompressionLayer::new())
        // A 503 from /readyz is an answer, not a server failure: keep it out of the error log.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(app)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

async fn metrics(State(app): State<Arc<Web>>) -> impl IntoResponse {
    let snap = app.state.snapshot();
    let mut body = String::with_capacity(snap.text.len() + 8192);
    body.push_str(&snap.text);
    body.push_str(&app.metrics.render());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<Web>>) -> (StatusCode, &'static str) {
    if !app.state.is_connected() {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the Kafka brokers are unreachable; serving the last snapshot\n")
    } else if app.state.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: waiting for the source to catch up and a refresh\n")
    }
}

#[derive(Debug, Default, Deserialize)]
struct ViewQuery {
    pipeline: Option<String>,
    window: Option<String>,
    basis: Option<String>,
    lang: Option<String>,
    dimension: Option<String>,
    sort: Option<String>,
    order: Option<String>,
}

/// A bad request, naming the parameter at fault.
#[derive(Debug, Serialize)]
struct BadParam {
    error: String,
    parameter: &'static str,
}

impl IntoResponse for BadParam {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(self)).into_response()
    }
}

fn bad(parameter: &'static str, value: &str, allowed: &[&str]) -> BadParam {
    BadParam { error: format!("unknown {parameter} {value:?}; expected one of: {}", allowed.join(", ")), parameter }
}

/// Resolves the view in the URL, with defaults: the first pipeline, the
/// 30-day window if configured (else the first), period basis, the
/// language from `Accept-Language`, the first configured breakdown
/// dimension, sorted by new deals, most first.
fn select(app: &Web, q: &ViewQuery, headers: &HeaderMap) -> Result<Selection, BadParam> {
    let c = &app.config;
    let pipeline = match &q.pipeline {
        Some(p) if c.pipeline(p).is_some() => p.clone(),
        Some(p) => return Err(bad("pipeline", p, &c.pipelines.iter().map(|p| p.id.as_str()).collect::<Vec<_>>())),
        None => c.pipelines[0].id.clone(),
    };
    let labels: Vec<&str> = c.windows.iter().map(|w| w.label.as_str()).collect();
    let window = match &q.window {
        Some(w) if labels.contains(&w.as_str()) => w.clone(),
        Some(w) => return Err(bad("window", w, &labels)),
        None => labels.iter().find(|l| **l == "30d").unwrap_or(&labels[0]).to_string(),
    };
    let basis = match &q.basis {
        Some(b) => Basis::parse(b).ok_or_else(|| bad("basis", b, &["period", "cohort"]))?,
        None => Basis::Period,
    };
    let (lang, lang_in_url) = match &q.lang {
        Some(l) => (Lang::parse(l).ok_or_else(|| bad("lang", l, &["en", "zh"]))?, true),
        None => (Lang::from_headers(headers), false),
    };
    let dims = &c.breakdowns.dimensions;
    let dimension = match &q.dimension {
        Some(d) if dims.is_empty() => {
            let error = format!("dimension {d:?}: breakdowns are off in the configuration");
            return Err(BadParam { error, parameter: "dimension" });
        }
        Some(d) => match Dimension::parse(d).filter(|d| dims.contains(d)) {
            Some(d) => Some(d),
            None => return Err(bad("dimension", d, &dims.iter().map(|d| d.as_str()).collect::<Vec<_>>())),
        },
        None => dims.first().copied(),
    };
    let sort = match &q.sort {
        Some(s) => Column::parse(s).ok_or_else(|| bad("sort", s, &Column::ALL.map(Column::as_str)))?,
        None => Column::NewDeals,
    };
    let order = match &q.order {
        Some(o) => Order::parse(o).ok_or_else(|| bad("order", o, &["asc", "desc"]))?,
        None => sort.first_order(),
    };
    Ok(Selection { pipeline, window, basis, lang, lang_in_url, dimension, sort, order })
}

fn freshness(app: &Web, t_ms: i64, version: u64) -> Freshness {
    let m = &app.metrics;
    let ms = |secs: f64| (secs > 0.0).then(|| (secs * 1000.0).round() as i64);
    let last_ingest_ms = ms(m.last_ingest_timestamp.get());
    let now = now_ms();
    Freshness {
        evaluated_at_ms: (version > 0).then_some(t_ms),
        last_event_ms: ms(m.last_event_timestamp.get()),
        last_ingest_ms,
        events_ingested: m.events_ingested.get() as f64,
        events_rejected: Reason::ALL
            .iter()
            .map(|r| m.events_rejected.with_label_values(&[r.as_str()]).get() as f64)
            .sum(),
        stale: app.state.is_caught_up() && last_ingest_ms.is_none_or(|at| now - at > app.config.stale_after_ms),
    }
}

fn funnel_view(app: &Web, sel: &Selection) -> FunnelView {
    let snap = app.state.snapshot();
    let p = app.config.pipeline(&sel.pipeline).expect("selected pipeline exists");
    let breakdown = sel.dimension.map(|d| Breakdown::build(&snap, p, &sel.window, d, sel.sort, sel.order));
    FunnelView::build(&snap, p, &sel.window, sel.basis, breakdown, freshness(app, snap.t_ms, snap.version))
}

fn view_template(app: &Web, sel: &Selection) -> ViewTemplate {
    ViewTemplate::new(&funnel_view(app, sel), &app.config, sel, app.state.is_ready(), now_ms())
}

async fn page(State(app): State<Arc<Web>>, headers: HeaderMap, Query(q): Query<ViewQuery>) -> Response {
    match select(&app, &q, &headers) {
        Ok(sel) => PageTemplate::new(&sel, &app.config, view_template(&app, &sel)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn fragment(State(app): State<Arc<Web>>, headers: HeaderMap, Query(q): Query<ViewQuery>) -> Response {
    match select(&app, &q, &headers) {
        Ok(sel) => view_template(&app, &sel).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn funnel(State(app): State<Arc<Web>>, headers: HeaderMap, Query(q): Query<ViewQuery>) -> Response {
    match select(&app, &q, &headers) {
        Ok(sel) => Json(funnel_view(&app, &sel)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Serialize)]
struct PipelinesJson<'a> {
    pipelines: Vec<PipelineJson<'a>>,
    windows: Vec<&'a str>,
}

#[derive(Serialize)]
struct PipelineJson<'a> {
    id: &'a str,
    currency: &'a str,
    stages: Vec<StageJson<'a>>,
}

#[derive(Serialize)]
struct StageJson<'a> {
    id: &'a str,
    label: &'a str,
    won: bool,
    sla_seconds: Option<f64>,
}

async fn pipelines(State(app): State<Arc<Web>>) -> Response {
    let c = &app.config;
    Json(PipelinesJson {
        pipelines: c
            .pipelines
            .iter()
            .map(|p| PipelineJson {
                id: &p.id,
                currency: &p.currency,
                stages: p
                    .stages
                    .iter()
                    .enumerate()
                    .map(|(i, s)| StageJson {
                        id: &s.id,
                        label: &s.label,
                        won: i == p.won,
                        sla_seconds: s.sla_ms.map(|ms| ms as f64 / 1000.0),
                    })
                    .collect(),
            })
            .collect(),
        windows: c.windows.iter().map(|w| w.label.as_str()).collect(),
    })
    .into_response()
}

/// Announces the current snapshot version at once, then every new one;
/// ends when the server shuts down.
async fn stream(State(app): State<Arc<Web>>) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let versions = app.state.versions();
    let shutdown = app.state.shutdown_signal();
    let events = futures_util::stream::unfold((versions, shutdown, true), |(mut v, mut stop, first)| async move {
        if !first {
            tokio::select! {
                changed = v.changed() => changed.ok()?,
                _ = stop.wait_for(|s| *s) => return None,
            }
        }
        let version = *v.borrow_and_update();
        let event = Event::default().event("snapshot").data(format!("{{\"version\":{version}}}"));
        Some((Ok(event), (v, stop, false)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
