//! Per-request limits: the body size (413 for every route, server functions included) and
//! the time a request may take (503 with `Retry-After`; live streams are exempt).

use super::state::{ServerState, BODY_LIMIT};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

fn too_large(limit: usize) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        axum::Json(serde_json::json!({
            "error": format!("the request body is larger than {limit} bytes")
        })),
    )
        .into_response()
}

/// Reads at most `BODY_LIMIT` bytes of any request body before a handler sees it: 413
/// beyond (by `Content-Length` at once, or while reading a chunked body), 400 when the
/// client stops sending mid-body.
pub async fn limit_body(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    // GitHub's webhooks are larger than anything else Release takes.
    let limit = if req.uri().path() == super::github_webhook::PATH {
        super::github_webhook::BODY_LIMIT
    } else {
        BODY_LIMIT
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(e) => {
            let length_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if length_limit {
                too_large(limit)
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"error": "the request body could not be read"})),
                )
                    .into_response()
            };
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Answers 503 with `Retry-After` when a request takes longer than
/// `limits.request_timeout`. Live streams (`/api/live`) last as long as the page is open
/// and are not subject to it.
pub async fn request_timeout(
    State(state): State<ServerState>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path() == "/api/live" {
        return next.run(req).await;
    }
    let path = req.uri().path().to_owned();
    match tokio::time::timeout(state.limits.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(%path, "request timed out");
            let mut resp = (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({
                    "error": format!("the request took longer than {} s; try again", state.limits.request_timeout.as_secs())
                })),
            )
                .into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            resp
        }
    }
}

/// A server function's error body is `app::error::AppError` as JSON, `{"status": 422,
/// "message": "..."}`; Leptos answers 500 for any error it did not get a status for (its
/// own argument errors among them). This gives the response the status the error names.
pub async fn server_fn_status(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let is_server_fn = req.method() == Method::POST
        && path.starts_with("/api/")
        && !path.starts_with("/api/v1/")
        && path != "/api/live";
    let resp = next.run(req).await;
    if !is_server_fn || resp.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return (parts, Body::empty()).into_response(),
    };
    if let Ok(err) = serde_json::from_slice::<app::error::AppError>(&bytes) {
        if let Ok(status) = StatusCode::from_u16(err.status) {
            parts.status = status;
        }
    }
    (parts, Body::from(bytes)).into_response()
}
