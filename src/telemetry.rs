//! Logging. `RUST_LOG` picks the level (default: info for Release, warn for the rest);
//! `RELEASE_LOG_FORMAT=json` writes one JSON object per line. Every request gets an id
//! (`request_id`): its log lines carry it, and the response returns it as `X-Request-Id`.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("release=info,app=info,warn"));
    let json = std::env::var("RELEASE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let installed = if json {
        fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_target(false)
            .try_init()
    } else {
        fmt().with_env_filter(filter).with_target(false).try_init()
    };
    // Only fails when a subscriber is already installed (tests): that one stays.
    if let Err(e) = installed {
        eprintln!("logging was already set up: {e}");
    }
}

/// An id the caller sent (a proxy's `X-Request-Id`) is kept when it is plain: 1 to 64
/// letters, digits, `-`, `_` or `.`; anything else is replaced, so a log line never
/// carries what a client chose to inject.
fn usable(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Gives each request an id: a span around its handling (every log line inside names it)
/// and the `X-Request-Id` response header.
pub async fn request_id(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| usable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = resp.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "answered"
        )
    });
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_ids_are_kept() {
        assert!(super::usable("abc-123_x.y"));
        assert!(!super::usable(""));
        assert!(!super::usable("a b"));
        assert!(!super::usable("x\ninjected"));
        assert!(!super::usable(&"a".repeat(65)));
    }
}
