//! What every request passes through: who is signed in (with memberships refreshed from
//! GitHub while the session lives), pages that need a signed-in person, cross-site
//! requests refused, and security headers.

use super::state::ServerState;
use app::auth::CurrentUser;
use app::domain::Roles;
use app::store::now_ms;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

pub const USER_KEY: &str = "user";

/// What the session holds about the person. The GitHub token is not here: it is in the
/// users table, encrypted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionUser {
    pub user: CurrentUser,
    pub signed_in_at_ms: i64,
    pub checked_at_ms: i64,
}

/// The path as the router will see it once decoded: percent-escapes decoded, `.` and `..`
/// resolved, repeated `/` collapsed. The guard decides on this, so `/pkg/../audit` is the
/// audit page, not an asset.
pub fn normalize_path(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let mut parts: Vec<&str> = Vec::new();
    for seg in decoded.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !parts.is_empty();
    format!("/{}{}", parts.join("/"), if trailing { "/" } else { "" })
}

/// Paths that are not pages: assets, sign-in itself, the token-authenticated API, health
/// checks, and server functions (which answer 401/403 themselves).
fn is_page(method: &Method, path: &str) -> bool {
    const NOT_PAGES: [&str; 7] = [
        "/metrics",
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
    let path = req.uri().path();
    // A page if either the raw path (what the router matches) or the normalised one (what
    // a browser or an asset lookup may resolve it to) is one.
    if user.is_none()
        && (is_page(req.method(), path) || is_page(req.method(), &normalize_path(path)))
    {
        let here = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        return Redirect::to(&format!(
            "/auth/sign-in?return_to={}",
            url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
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
        end_session(session).await;
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
    // The session holds the GitHub id; the stored token is read only if the row still
    // belongs to that id.
    let token = match stored.user.github_id {
        Some(gid) => match store.user_token_for(stored.user.user_id, gid).await {
            Ok(Some(ct)) => state.auth.cipher.decrypt(&ct).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not read a stored GitHub token; view-only until it can");
                return Some(view_only(stored.user));
            }
        },
        None => None,
    };
    let Some(token) = token else {
        end_session(session).await;
        return None;
    };
    // Who the token belongs to now: the same GitHub id, perhaps under a new login.
    let who = match github.user(&token).await {
        Ok(u) if Some(u.id) == stored.user.github_id => u,
        Ok(_) => {
            tracing::warn!(login = %stored.user.login, "the stored token belongs to someone else now: session ended");
            end_session(session).await;
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, login = %stored.user.login, "could not refresh memberships");
            return Some(view_only(stored.user));
        }
    };
    if who.login != stored.user.login {
        tracing::info!(old = %stored.user.login, new = %who.login, "GitHub login renamed");
        if let Err(e) = store.update_login(stored.user.user_id, &who.login).await {
            tracing::warn!(error = %e, "could not store a renamed login");
        }
        stored.user.login = who.login.clone();
    }
    match github
        .roles(&token, &stored.user.login, &state.auth.access)
        .await
    {
        Ok(Some(roles)) => {
            stored.user.roles = roles;
            stored.checked_at_ms = now;
            if let Err(e) = store
                .update_roles(stored.user.user_id, &stored.user.roles)
                .await
            {
                tracing::warn!(error = %e, "could not store refreshed roles");
            }
            if let Err(e) = session.insert(USER_KEY, stored.clone()).await {
                tracing::warn!(error = %e, "could not save refreshed roles in the session");
            }
            Some(stored.user)
        }
        Ok(None) => {
            tracing::info!(login = %stored.user.login, "no longer a member of the organisation: session ended");
            if let Err(e) = store
                .update_roles(stored.user.user_id, &Roles::default())
                .await
            {
                tracing::warn!(error = %e, "could not clear the roles of a removed member");
            }
            end_session(session).await;
            None
        }
        Err(e) => {
            // GitHub is down: keep viewing, but no deploying or administering on stale
            // roles. The next request tries again.
            tracing::warn!(error = %e, login = %stored.user.login, "could not refresh memberships");
            Some(view_only(stored.user))
        }
    }
}

fn view_only(mut user: CurrentUser) -> CurrentUser {
    user.roles = Roles::default();
    user
}

/// Deletes the session on the server (the cookie is worth nothing afterwards).
pub async fn end_session(session: &Session) {
    if let Err(e) = session.flush().await {
        tracing::warn!(error = %e, "could not delete a session");
    }
}

/// The pipeline's token-authenticated endpoints: no cookies, so no cross-site risk.
fn is_token_api(path: &str) -> bool {
    path == "/deployments" || path.starts_with("/api/v1/")
}

/// Refuses state-changing requests that do not prove they come from Release's own pages
/// (forms, server functions, sign-out): the request must carry `Origin` equal to this
/// site's, or `Sec-Fetch-Site: same-origin`; a cross-site value of either, or neither
/// header, is refused with 403. The site's origin is `public_url` when configured, else
/// the request's own `Host`. The bearer-token API carries no cookies and is exempt.
pub async fn refuse_cross_site(
    State(state): State<ServerState>,
    req: Request,
    next: Next,
) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !is_token_api(req.uri().path()) && !same_origin(&state, req.headers()) {
        tracing::warn!(path = %req.uri().path(), "cross-site request refused");
        return (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({"error": "cross-site request refused: Release only accepts changes from its own pages (the request carried no same-origin Origin or Sec-Fetch-Site header)"})),
        )
            .into_response();
    }
    next.run(req).await
}

fn same_origin(state: &ServerState, h: &axum::http::HeaderMap) -> bool {
    let text = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    let site = text(header::HeaderName::from_static("sec-fetch-site"));
    if site.is_some_and(|s| s != "same-origin") {
        return false;
    }
    match text(header::ORIGIN) {
        Some(origin) => {
            let ours = if state.auth.public_url_configured {
                state.auth.public_url.origin().ascii_serialization()
            } else {
                match text(header::HOST) {
                    Some(host) => format!("{}://{host}", state.auth.public_url.scheme()),
                    None => return false,
                }
            };
            origin.eq_ignore_ascii_case(&ours)
        }
        None => site == Some("same-origin"),
    }
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

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn paths_are_normalised_as_a_browser_or_file_lookup_would() {
        assert_eq!(normalize_path("/pkg/../audit"), "/audit");
        assert_eq!(normalize_path("/pkg/%2e%2e/audit"), "/audit");
        assert_eq!(normalize_path("/pkg//..//audit/"), "/audit/");
        assert_eq!(normalize_path("/a/./b\\..\\c"), "/a/c");
        assert_eq!(normalize_path("/../../"), "/");
    }
}
