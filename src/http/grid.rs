//! The grid's rows for the browser: `GET /api/grid.html` (ETag-validated, for client-side
//! visits and reloads after a reconnect), and the step that brings the grid cache up to
//! date before `/` is rendered, so a page loaded right after a write shows it.

use super::state::ServerState;
use app::auth::CurrentUser;
use axum::extract::{Extension, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn fragment(
    State(state): State<ServerState>,
    Extension(user): Extension<Option<CurrentUser>>,
    headers: HeaderMap,
) -> Response {
    if user.is_none() {
        return (StatusCode::UNAUTHORIZED, "sign in to see the applications").into_response();
    }
    let snapshot = match state.app.grid.current().await {
        Ok(s) => s,
        Err(e) => return super::error::ApiError::from(e).into_response(),
    };
    let private = (
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    let etag = HeaderValue::from_str(&snapshot.etag).ok();
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == snapshot.etag || t.trim() == "*")
        });
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            snapshot.fragment.to_string(),
        )
            .into_response()
    };
    resp.headers_mut().insert(private.0, private.1);
    if let Some(etag) = etag {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}

/// Before the grid page renders (server side, from the cache's last snapshot), apply the
/// changes announced so far. A store failure or a database slower than two seconds is not
/// the page's: it renders the last snapshot (live deltas bring it up to date), or says the
/// applications could not be read.
pub async fn fresh_grid(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let signed_in = req
        .extensions()
        .get::<Option<CurrentUser>>()
        .is_some_and(Option::is_some);
    if signed_in && req.method() == axum::http::Method::GET && req.uri().path() == "/" {
        match tokio::time::timeout(std::time::Duration::from_secs(2), state.app.grid.current())
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not bring the grid up to date; showing the last one")
            }
            Err(_) => {
                tracing::warn!("the grid took over 2 s to bring up to date; showing the last one")
            }
        }
    }
    next.run(req).await
}
