//! What every request passes through: who is signed in (with memberships refreshed from
//! GitHub while the session lives), pages that need a signed-in person, cross-site
//! requests refused, and security headers.

use crate::startup::ServerState;
use app::auth::CurrentUser;
use app::store::now_ms;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

pub const USER_KEY: &str = "user";
pub const PENDING_KEY: &str = "pending_login";

/// What the session holds about the person. The GitHub token is not here: it is in the
/// users table, encrypted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionUser {
    pub user: CurrentUser,
    pub signed_in_at_ms: i64,
    pub checked_at_ms: i64,
}

/// Paths that are not pages: assets, sign-in itself, the token-authenticated API, health
/// checks, and server functions (which answer 401/403 themselves).
fn is_page(method: &Method, path: &str) -> bool {
    const NOT_PAGES: [&str; 6] = [
        "/auth/",
        "/pkg/",
        "/api/",
        "/healthcheck/",
        "/deployments",
        "/favicon",
    ];
    (method == Method::GET || method == Method::HEAD)
        && !NOT_PAGES.iter().any(|p| path.starts_with(p))
}

/// Finds the signed-in person, puts `Option<CurrentUser>` into the request for pages and
/// server functions, and sends signed-out people to sign in, returning them afterwards.
pub async fn authenticate(
    State(state): State<ServerState>,
    session: Session,
    mut req: Request,
    next: Next,
) -> Response {
    let user = current_user(&state, &session).await;
    if user.is_none() && is_page(req.method(), req.uri().path()) {
        let here = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        return Redirect::to(&format!(
            "/auth/sign-in?return_to={}",
            super::login::urlencode(here)
        ))
        .into_response();
    }
    req.extensions_mut().insert(user);
    next.run(req).await
}

async fn current_user(state: &ServerState, session: &Session) -> Option<CurrentUser> {
    let mut stored: SessionUser = session.get(USER_KEY).await.ok().flatten()?;
    let now = now_ms();
    if now - stored.signed_in_at_ms > state.auth.session.absolute_hours * 3_600_000 {
        let _ = session.flush().await;
        return None;
    }
    let refresh_ms = state.auth.access.refresh_minutes * 60_000;
    if stored.user.dev || now - stored.checked_at_ms < refresh_ms {
        return Some(stored.user);
    }
    // Read memberships again, so someone removed from a team loses the right without
    // signing out.
    let Some(github) = &state.auth.github else {
        return Some(stored.user);
    };
    let store = &state.app.store;
    let token = match store.user_token_ciphertext(stored.user.user_id).await {
        Ok(Some(ct)) => state.auth.cipher.decrypt(&ct).ok(),
        _ => None,
    };
    let Some(token) = token else {
        let _ = session.flush().await;
        return None;
    };
    match github
        .roles(&token, &stored.user.login, &state.auth.access)
        .await
    {
        Ok(Some(roles)) => {
            stored.user.admin = roles.admin;
            stored.user.deploy_environments = roles.deploy_environments;
            stored.checked_at_ms = now;
            let _ = store
                .update_roles(
                    stored.user.user_id,
                    stored.user.admin,
                    &stored.user.deploy_environments,
                )
                .await;
            let _ = session.insert(USER_KEY, stored.clone()).await;
            Some(stored.user)
        }
        Ok(None) => {
            tracing::info!(login = %stored.user.login, "no longer a member of the organisation: session ended");
            let _ = store.update_roles(stored.user.user_id, false, &[]).await;
            let _ = session.flush().await;
            None
        }
        Err(e) => {
            // GitHub is down: keep viewing, but no deploying or administering on stale
            // roles. The next request tries again.
            tracing::warn!(error = %e, login = %stored.user.login, "could not refresh memberships");
            stored.user.admin = false;
            stored.user.deploy_environments.clear();
            Some(stored.user)
        }
    }
}

/// The pipeline's token-authenticated endpoints: no cookies, so no cross-site risk.
fn is_token_api(path: &str) -> bool {
    path == "/deployments" || path.starts_with("/api/v1/")
}

/// Refuses state-changing requests from other sites (forms, server functions, sign-out):
/// `Sec-Fetch-Site` must be same-origin (or absent), and `Origin`, when sent, must be
/// this host.
pub async fn refuse_cross_site(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !is_token_api(req.uri().path()) {
        let h = req.headers();
        let site = h.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let cross_site = site.is_some_and(|s| s != "same-origin" && s != "none");
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = h
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(|o| o.split_once("://").map(|(_, rest)| rest).unwrap_or("null"));
        let other_origin = match (origin_host, host) {
            (Some(o), Some(h)) => !o.eq_ignore_ascii_case(h),
            (Some(_), None) => true,
            _ => false,
        };
        if cross_site || other_origin {
            tracing::warn!(path = %req.uri().path(), "cross-site request refused");
            return (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": "cross-site request refused: Release only accepts changes from its own pages"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The Content-Security-Policy of responses that set none of their own (the Leptos pages
/// set one with their script nonce, see `app::shell`).
const DEFAULT_CSP: &str = "default-src 'self'; script-src 'none'; object-src 'none'; img-src 'self' data: https:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(DEFAULT_CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
