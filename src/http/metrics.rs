//! Prometheus metrics: `GET /metrics`, on its own address (`--metrics-addr`, for a
//! network only Prometheus reaches) or on the main one with `RELEASE_METRICS_TOKEN` as a
//! bearer token. Without either, there is no `/metrics`.
//!
//! Counters and histograms are recorded where things happen (the `metrics` crate's
//! macros: requests here, notifications and events in their handlers, the stats task);
//! gauges that describe the database are read when Prometheus scrapes.

use super::state::ServerState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// The process's recorder (one per process: several servers in one test process share it).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0,
                ],
            )
            .expect("the bucket list is not empty");
        match builder.install_recorder() {
            Ok(h) => h,
            // Another recorder is installed (only in tests that install their own): keep a
            // handle that renders what this builder records, which is nothing.
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder was already installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// Records every request: `release_http_requests_total{method, route, status}` and
/// `release_http_request_duration_seconds{method, route}`.
///
/// Every label comes from a bounded set, because a label value is a series the recorder
/// keeps for the life of the process: anyone can send a request, so anything taken from
/// it verbatim (a made-up method, a raw path) would let them grow the server's memory and
/// every scrape without limit. The method is one of the nine standard ones or `other`;
/// the route is the pattern that matched (`/applications/{shortname}`), `/pkg/{file}` for
/// the site's files, or `unmatched`; the status is the server's own answer.
pub async fn record(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = method_label(req.method());
    let route: std::borrow::Cow<'static, str> = match req.extensions().get::<MatchedPath>() {
        Some(p) => p.as_str().to_owned().into(),
        None if req.uri().path().starts_with("/pkg/") => "/pkg/{file}".into(),
        None => "unmatched".into(),
    };
    let resp = next.run(req).await;
    let status = status_label(resp.status());
    metrics::counter!("release_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("release_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

/// The method as a label: the standard methods by name, anything else `other`.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The status as a label: a known status by its number, anything else (a status no
/// handler of ours sends) `other`.
fn status_label(status: StatusCode) -> std::borrow::Cow<'static, str> {
    if status.canonical_reason().is_some() {
        status.as_u16().to_string().into()
    } else {
        "other".into()
    }
}

/// `GET /metrics` on the main address: only with `RELEASE_METRICS_TOKEN`, as a bearer
/// token (their SHA-256 digests compared, so the time taken says nothing of how much of
/// the token was right). Without the token configured it is not found.
pub async fn scrape_with_token(State(state): State<ServerState>, req: Request) -> Response {
    let Some(expected) = state.metrics_token.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    use sha2::{Digest, Sha256};
    if Sha256::digest(given.as_bytes()) != Sha256::digest(expected.as_bytes()) {
        let mut resp = (StatusCode::UNAUTHORIZED, "a metrics token is needed\n").into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    scrape(State(state)).await
}

/// `GET /metrics` on the metrics address.
pub async fn scrape(State(state): State<ServerState>) -> Response {
    sample(&state).await;
    let mut resp = handle().render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The gauges read at scrape time.
async fn sample(state: &ServerState) {
    let store = &state.app.store;
    metrics::gauge!("release_live_streams_open").set(state.live.open_count() as f64);
    let (size, idle) = store.pool_use();
    metrics::gauge!("release_db_pool_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("release_db_pool_connections", "state" => "busy")
        .set((size as usize).saturating_sub(idle) as f64);
    match store.operational_counts().await {
        Ok(c) => {
            metrics::gauge!("release_alert_outbox_pending").set(c.alerts_pending as f64);
            for (env, status, n) in c.current {
                metrics::gauge!("release_current_deployments", "environment" => env, "status" => status)
                    .set(n as f64);
            }
            for (env, n) in c.recorded {
                metrics::gauge!("release_deployments_recorded", "environment" => env).set(n as f64);
            }
            metrics::gauge!("release_db_up").set(1.0);
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: could not read the database");
            metrics::gauge!("release_db_up").set(0.0);
        }
    }
}
