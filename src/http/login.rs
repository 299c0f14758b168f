//! Signing in and out: GitHub's OAuth web flow (PKCE + state), the development sign-in
//! (loopback only, no GitHub configured), and sign-out. Plain HTML forms and redirects,
//! so they work before any JavaScript has loaded.

use super::guard::{SessionUser, USER_KEY};
use super::state::ServerState;
use crate::github::{GitHubError, PendingLogin};
use app::store::{now_ms, SignIn};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

/// Signing in and out (browser sessions).
pub fn routes() -> axum::Router<ServerState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/auth/sign-in", get(sign_in_page))
        .route("/auth/github", get(start_github))
        .route("/auth/callback", get(callback))
        .route("/auth/dev", post(dev_sign_in))
        .route("/auth/sign-out", post(sign_out))
}

/// Where to send someone after sign-in: `return_to` resolved against the public URL, and
/// only when it stays on this origin and is free of control characters, whitespace and
/// backslashes (browsers strip or reinterpret those: `/\t/evil.example` becomes
/// `//evil.example`). Anything else, and any `/auth/` path, becomes `/`.
pub fn safe_return_to(public: &url::Url, r: Option<&str>) -> String {
    let Some(p) = r else {
        return "/".to_owned();
    };
    if !p.starts_with('/')
        || p.starts_with("//")
        || p.len() > 2000
        || p.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return "/".to_owned();
    }
    match public.join(p) {
        // `/.//evil.example` resolves to the path `//evil.example`: a protocol-relative URL
        // once sent as `Location`. Refused like any other `//`.
        Ok(u)
            if u.origin() == public.origin()
                && !u.path().starts_with("/auth/")
                && !u.path().starts_with("//") =>
        {
            let mut out = u.path().to_owned();
            if let Some(q) = u.query() {
                out.push('?');
                out.push_str(q);
            }
            out
        }
        _ => "/".to_owned(),
    }
}

/// The pending GitHub sign-in (state, PKCE verifier, where to return) travels in this
/// short-lived cookie, encrypted and authenticated with the server key, so starting a
/// sign-in writes nothing on the server.
const PENDING_COOKIE: &str = "release_oauth";
const PENDING_MAX_AGE_S: i64 = 600;

#[derive(serde::Serialize, serde::Deserialize)]
struct PendingCookie {
    pending: PendingLogin,
    expires_ms: i64,
}

fn pending_cookie(state: &ServerState, value: &str, max_age: i64) -> String {
    format!(
        "{PENDING_COOKIE}={value}; Path=/auth/; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if state.auth.secure_cookies() {
            "; Secure"
        } else {
            ""
        }
    )
}

/// Adds the pending sign-in's cookie to `resp`, beside any cookie it already sets.
fn set_pending_cookie(resp: &mut Response, state: &ServerState, value: &str, max_age: i64) {
    if let Ok(v) = axum::http::HeaderValue::from_str(&pending_cookie(state, value, max_age)) {
        resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
}

fn read_pending(state: &ServerState, headers: &axum::http::HeaderMap) -> Option<PendingLogin> {
    let raw = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == PENDING_COOKIE)
        .map(|(_, v)| v.to_owned())?;
    let json = state.auth.cipher.decrypt(&raw).ok()?;
    let c: PendingCookie = serde_json::from_str(&json).ok()?;
    (c.expires_ms > now_ms()).then_some(c.pending)
}

/// Development sign-in, checked on every request: on only when asked for at startup, and
/// only for a request addressed to a loopback IP literal (`127.0.0.1:3000`, `[::1]:3000`)
/// with no forwarding header, so neither a reverse proxy on the same machine nor DNS
/// rebinding (`Host: rebind.attacker.example`) reaches it.
fn dev_sign_in_allowed(state: &ServerState, headers: &axum::http::HeaderMap) -> bool {
    if !state.auth.dev_sign_in {
        return false;
    }
    if headers.keys().any(|h| is_forwarding(h.as_str())) {
        return false;
    }
    let Some(host) = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let addr = match host.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip(),
        Err(_) => match host.trim_start_matches('[').trim_end_matches(']').parse() {
            Ok(ip) => ip,
            Err(_) => return false,
        },
    };
    addr.is_loopback()
}

/// A header a proxy adds to say who the client is or how it was reached: any
/// `X-Forwarded-*` or `X-Original-Forwarded-*`, `Forwarded`, `Via`, and the common
/// client-address headers of proxies and CDNs. (Header names arrive lowercase.)
fn is_forwarding(name: &str) -> bool {
    const NAMES: [&str; 11] = [
        "forwarded",
        "via",
        "x-real-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "client-ip",
        "cf-connecting-ip",
        "true-client-ip",
        "fastly-client-ip",
        "x-envoy-external-address",
        "x-proxyuser-ip",
    ];
    name.starts_with("x-forwarded")
        || name.starts_with("x-original-forwarded")
        || name.starts_with("x-original-")
        || NAMES.contains(&name)
}

/// The development sign-in's key, compared by digest (the time taken says nothing of how
/// much of it was right).
fn dev_key_matches(state: &ServerState, given: Option<&str>) -> bool {
    use sha2::{Digest, Sha256};
    given.is_some_and(|g| {
        Sha256::digest(g.as_bytes()) == Sha256::digest(state.auth.dev_key.as_bytes())
    })
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A small server-rendered page in the site's style, for the sign-in screens.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><title>{title} · Release</title><link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/pkg/release.css"></head><body><header class="site-header"><a class="brand" href="/">Release</a></header>
<main id="main" class="sign-in"><h1>{title}</h1>{body}</main></body></html>"#,
        title = escape(title)
    );
    (status, Html(html)).into_response()
}

fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    page(
        status,
        title,
        &format!(
            r#"<p class="error" role="alert">{}</p><p><a href="/auth/sign-in">Sign in again</a></p>"#,
            escape(message)
        ),
    )
}

#[derive(Deserialize)]
pub struct SignInQuery {
    return_to: Option<String>,
    /// The development sign-in's key, from the link printed at startup.
    key: Option<String>,
}

pub async fn sign_in_page(
    State(state): State<ServerState>,
    session: Session,
    headers: axum::http::HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    let return_to = safe_return_to(&state.auth.public_url, q.return_to.as_deref());
    if session
        .get::<SessionUser>(USER_KEY)
        .await
        .ok()
        .flatten()
        .is_some()
    {
        return Redirect::to(&return_to).into_response();
    }
    let mut body =
        String::from("<p>Release shows what runs where, and lets the right people deploy.</p>");
    if state.auth.github.is_some() {
        body.push_str(&format!(
            r#"<p><a class="button" href="/auth/github?return_to={}">Sign in with GitHub</a></p><p class="muted small">Members of the {} organisation on GitHub may sign in.</p>"#,
            escape(&urlencode(&return_to)),
            escape(&state.auth.access.org)
        ));
    }
    if dev_sign_in_allowed(&state, &headers) {
        // The link printed at startup carries the key; without it, the form asks for it.
        let key_field = match q.key.as_deref().filter(|k| dev_key_matches(&state, Some(k))) {
            Some(k) => format!(r#"<input type="hidden" name="key" value="{}">"#, escape(k)),
            None => r#"<p><label for="key">Sign-in key</label> <input id="key" name="key" required autocomplete="off" spellcheck="false"> <span class="muted small">printed by the server when it started</span></p>"#.to_string(),
        };
        let per_env: String = state
            .app
            .store
            .environments()
            .names()
            .iter()
            .map(|e| {
                let e = escape(e);
                format!(r#"<label><input type="radio" name="role" value="deployer:{e}"> Deployer to {e} only</label><br>"#)
            })
            .collect();
        body.push_str(&format!(
            r#"<form method="post" action="/auth/dev" class="dev-sign-in">
<h2>Sign in as a demo user</h2>
<p class="muted small">Release was started with development sign-in (no GitHub OAuth app, loopback address only, with the key it printed at startup). Pick a role to try.</p>
<input type="hidden" name="return_to" value="{}">
{key_field}
<p><label for="login">Login</label> <input id="login" name="login" value="demo" required pattern="[A-Za-z0-9\-]{{1,39}}"></p>
<fieldset><legend>Role</legend>
<label><input type="radio" name="role" value="viewer" checked> Viewer: sees everything, deploys nothing</label><br>
<label><input type="radio" name="role" value="deployer"> Deployer: may deploy to every environment</label><br>
{per_env}<label><input type="radio" name="role" value="admin"> Admin: everything, and the users page</label>
</fieldset>
<p><button type="submit">Sign in as a demo user</button></p></form>"#,
            escape(&return_to),
            key_field = key_field,
        ));
    }
    page(StatusCode::OK, "Sign in", &body)
}

/// Sends the browser to GitHub. The pending sign-in goes into an encrypted cookie, not a
/// session row: an anonymous request writes nothing on the server.
pub async fn start_github(
    State(state): State<ServerState>,
    Query(q): Query<SignInQuery>,
) -> Response {
    let Some(github) = &state.auth.github else {
        return github_off();
    };
    let (url, pending) = github.authorize(safe_return_to(
        &state.auth.public_url,
        q.return_to.as_deref(),
    ));
    let cookie = PendingCookie {
        pending,
        expires_ms: now_ms() + PENDING_MAX_AGE_S * 1000,
    };
    let Ok(json) = serde_json::to_string(&cookie) else {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in failed",
            "Try again.",
        );
    };
    let value = state.auth.cipher.encrypt(&json);
    let mut resp = Redirect::to(&url).into_response();
    set_pending_cookie(&mut resp, &state, &value, PENDING_MAX_AGE_S);
    resp
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

pub async fn callback(
    State(state): State<ServerState>,
    session: Session,
    headers: axum::http::HeaderMap,
    Query(cb): Query<Callback>,
) -> Response {
    let mut resp = callback_inner(&state, &session, &headers, cb).await;
    // Whatever happened, this pending sign-in is spent: the cookie is cleared.
    set_pending_cookie(&mut resp, &state, "", 0);
    resp
}

async fn callback_inner(
    state: &ServerState,
    session: &Session,
    headers: &axum::http::HeaderMap,
    cb: Callback,
) -> Response {
    let Some(github) = &state.auth.github else {
        return github_off();
    };
    let pending: Option<PendingLogin> = read_pending(state, headers);
    if let Some(error) = cb.error {
        let msg = if error == "access_denied" {
            "You did not authorise Release on GitHub, so you are not signed in.".to_string()
        } else {
            format!("GitHub did not sign you in ({error}).")
        };
        return problem(StatusCode::UNAUTHORIZED, "Not signed in", &msg);
    }
    let Some(pending) = pending else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was already used or has expired. Sign in again.",
        );
    };
    if cb.state.as_deref() != Some(pending.state.as_str()) {
        tracing::warn!("OAuth callback with a state that does not match the session's");
        return problem(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "The sign-in did not come from this browser's request (state mismatch). Sign in again.",
        );
    }
    let Some(code) = cb.code.filter(|c| !c.is_empty() && c.len() < 512) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "GitHub sent no sign-in code. Sign in again.",
        );
    };
    let token = match github.exchange(&code, &pending.verifier).await {
        Ok(t) => t,
        Err(e) => return github_problem(e),
    };
    let user = match github.user(&token).await {
        Ok(u) => u,
        Err(e) => return github_problem(e),
    };
    let roles = match github.roles(&token, &user.login, &state.auth.access).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            tracing::info!(login = %user.login, "sign-in refused: not a member of the organisation");
            return page(
                StatusCode::FORBIDDEN,
                "Not a member",
                &format!(
                    r#"<p class="error" role="alert">You are signed in to GitHub as <strong>{}</strong>, but that account is not an active member of the <strong>{}</strong> organisation, so Release cannot let you in.</p><p>Ask an owner of {} to invite you, accept the invitation on GitHub, then <a href="/auth/sign-in">sign in again</a>.</p>"#,
                    escape(&user.login),
                    escape(&state.auth.access.org),
                    escape(&state.auth.access.org)
                ),
            );
        }
        Err(e) => return github_problem(e),
    };
    let sign_in = SignIn {
        github_id: Some(user.id),
        login: user.login.clone(),
        name: user.name,
        avatar_url: user.avatar_url,
        roles,
        token_ciphertext: Some(state.auth.cipher.encrypt(&token)),
        dev: false,
    };
    let back = safe_return_to(&state.auth.public_url, Some(&pending.return_to));
    finish_sign_in(state, session, &sign_in, &back).await
}

/// The answer to a GitHub sign-in step on a Release with no GitHub OAuth app.
fn github_off() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Sign-in with GitHub is off",
        "No GitHub OAuth app is configured on this Release.",
    )
}

fn github_problem(e: GitHubError) -> Response {
    tracing::warn!(error = %e, "GitHub sign-in step failed");
    match e {
        GitHubError::Exchange(_) => problem(
            StatusCode::BAD_REQUEST,
            "Sign-in refused",
            "GitHub did not accept the sign-in code (it may have been used already or expired). Sign in again.",
        ),
        GitHubError::Unreachable(why) => {
            problem(StatusCode::BAD_GATEWAY, "GitHub unreachable", &format!("GitHub could not be reached ({why}). Try again in a moment."))
        }
        GitHubError::Status { status, what } => {
            problem(StatusCode::BAD_GATEWAY, "GitHub refused", &format!("GitHub answered {status} to {what}. Try again, or ask an admin to check the OAuth app."))
        }
    }
}

/// Records the sign-in, then starts the session under a new id, so a session id planted
/// before sign-in is worth nothing.
async fn finish_sign_in(
    state: &ServerState,
    session: &Session,
    sign_in: &SignIn,
    return_to: &str,
) -> Response {
    let user = match state.app.store.record_sign_in(sign_in).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, login = %sign_in.login, "recording a sign-in failed");
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in failed",
                "Release could not record the sign-in; try again in a moment.",
            );
        }
    };
    let now = now_ms();
    let stored = SessionUser {
        user,
        signed_in_at_ms: now,
        checked_at_ms: now,
    };
    if session.cycle_id().await.is_err() || session.insert(USER_KEY, stored).await.is_err() {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in failed",
            "The session could not be saved; try again in a moment.",
        );
    }
    Redirect::to(return_to).into_response()
}

#[derive(Deserialize)]
pub struct DevSignIn {
    login: String,
    role: String,
    return_to: Option<String>,
    /// The key printed at startup.
    key: Option<String>,
}

pub async fn dev_sign_in(
    State(state): State<ServerState>,
    session: Session,
    headers: axum::http::HeaderMap,
    Form(f): Form<DevSignIn>,
) -> Response {
    if !dev_sign_in_allowed(&state, &headers) {
        tracing::warn!(host = ?headers.get(axum::http::header::HOST), "development sign-in refused");
        return problem(
            StatusCode::NOT_FOUND,
            "Development sign-in is off",
            "Development sign-in is only for a Release started with --dev-sign-in, reached directly at a loopback address.",
        );
    }
    if !dev_key_matches(&state, f.key.as_deref()) {
        tracing::warn!("development sign-in refused: no key or a wrong one");
        return problem(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "Development sign-in needs the key the server printed when it started (open the link it printed).",
        );
    }
    let login = f.login.trim();
    if login.is_empty()
        || login.len() > 30
        || !login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Sign-in refused",
            "A login is 1 to 30 letters, digits or hyphens.",
        );
    }
    let environments = state.app.store.environments();
    let all: Vec<String> = environments.owned_names();
    let (label, admin, deploy_environments) = match f.role.as_str() {
        "viewer" => ("viewer".to_owned(), false, vec![]),
        "deployer" => ("deployer".to_owned(), false, all),
        "admin" => ("admin".to_owned(), true, all),
        other => match other
            .strip_prefix("deployer:")
            .and_then(|e| environments.parse(e).ok())
        {
            Some(env) => (format!("deployer-{env}"), false, vec![env.to_string()]),
            None => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Sign-in refused",
                    "Pick a role: viewer, deployer, deployer to one environment, or admin.",
                )
            }
        },
    };
    let sign_in = SignIn {
        github_id: None,
        login: format!("{login}-{label}"),
        name: Some(format!("Demo {label}")),
        avatar_url: None,
        roles: app::domain::Roles {
            admin,
            deploy_environments,
        },
        token_ciphertext: None,
        dev: true,
    };
    let back = safe_return_to(&state.auth.public_url, f.return_to.as_deref());
    finish_sign_in(&state, &session, &sign_in, &back).await
}

/// Deletes the session on the server: the old cookie is worth nothing afterwards.
pub async fn sign_out(State(state): State<ServerState>, session: Session) -> Response {
    if let Some(id) = session.id() {
        state.live.end_session(id);
    }
    super::guard::end_session(&session).await;
    Redirect::to("/auth/sign-in").into_response()
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn return_to_stays_on_site() {
        let public = url::Url::parse("https://release.example.org").unwrap();
        let r = |p| safe_return_to(&public, Some(p));
        assert_eq!(r("/applications/x?y=1"), "/applications/x?y=1");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "/auth/sign-out",
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/ /evil.example",
            "/\u{a0}/evil.example",
            "/%2e%2e/auth/sign-out",
            "/.//evil.example",
            "/..//evil.example",
            "/%2e//evil.example",
        ] {
            assert_eq!(r(bad), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(&public, None), "/");
    }
}

/// Limits `/auth/*` (sign-in pages, GitHub redirects, callbacks, development sign-in);
/// sign-out is never limited.
pub async fn limit_sign_in(
    State(state): State<ServerState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.uri().path().starts_with("/auth/") && req.uri().path() != "/auth/sign-out" {
        if let Err(wait) = state
            .auth_limiter
            .take(super::rate_limit::peer_ip(req.extensions()))
        {
            tracing::warn!(path = %req.uri().path(), "sign-in rate limit reached");
            return super::rate_limit::too_many(wait, "sign-in requests");
        }
    }
    next.run(req).await
}
