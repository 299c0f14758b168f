//! Signing in and out: GitHub's OAuth web flow (PKCE + state), the development sign-in
//! (loopback only, no GitHub configured), and sign-out. Plain HTML forms and redirects,
//! so they work before any JavaScript has loaded.

use super::guard::{SessionUser, PENDING_KEY, USER_KEY};
use crate::github::{GitHubError, PendingLogin};
use crate::startup::ServerState;
use app::auth::Role;
use app::store::{now_ms, SignIn};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use tower_sessions::Session;

/// Only a path on this site: anything else (`//evil.example`, `https://...`) becomes `/`.
pub fn safe_return_to(r: Option<&str>) -> String {
    match r {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.starts_with("/auth/") =>
        {
            p.to_owned()
        }
        _ => "/".to_owned(),
    }
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
}

pub async fn sign_in_page(
    State(state): State<ServerState>,
    session: Session,
    Query(q): Query<SignInQuery>,
) -> Response {
    let return_to = safe_return_to(q.return_to.as_deref());
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
    if state.auth.dev_sign_in {
        body.push_str(&format!(
            r#"<form method="post" action="/auth/dev" class="dev-sign-in">
<h2>Sign in as a demo user</h2>
<p class="muted small">No GitHub OAuth app is configured and Release listens on a loopback address, so development sign-in is on. Pick a role to try.</p>
<input type="hidden" name="return_to" value="{}">
<p><label for="login">Login</label> <input id="login" name="login" value="demo" required pattern="[A-Za-z0-9-]{{1,39}}"></p>
<fieldset><legend>Role</legend>
<label><input type="radio" name="role" value="viewer" checked> Viewer: sees everything, deploys nothing</label><br>
<label><input type="radio" name="role" value="deployer"> Deployer: may deploy to every environment</label><br>
<label><input type="radio" name="role" value="admin"> Admin: everything, and the users page</label>
</fieldset>
<p><button type="submit">Sign in as a demo user</button></p></form>"#,
            escape(&return_to)
        ));
    }
    page(StatusCode::OK, "Sign in", &body)
}

pub async fn start_github(
    State(state): State<ServerState>,
    session: Session,
    Query(q): Query<SignInQuery>,
) -> Response {
    let Some(github) = &state.auth.github else {
        return problem(
            StatusCode::NOT_FOUND,
            "Sign-in with GitHub is off",
            "No GitHub OAuth app is configured on this Release.",
        );
    };
    let (url, pending) = github.authorize(safe_return_to(q.return_to.as_deref()));
    if session.insert(PENDING_KEY, pending).await.is_err() {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in failed",
            "The session could not be saved; try again in a moment.",
        );
    }
    Redirect::to(&url).into_response()
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
    Query(cb): Query<Callback>,
) -> Response {
    let Some(github) = &state.auth.github else {
        return problem(
            StatusCode::NOT_FOUND,
            "Sign-in with GitHub is off",
            "No GitHub OAuth app is configured on this Release.",
        );
    };
    // One use only: whatever happens next, this pending sign-in is spent.
    let pending: Option<PendingLogin> = session.remove(PENDING_KEY).await.ok().flatten();
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
        admin: roles.admin,
        deploy_environments: roles.deploy_environments,
        token_ciphertext: Some(state.auth.cipher.encrypt(&token)),
        dev: false,
    };
    finish_sign_in(&state, &session, &sign_in, &pending.return_to).await
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
}

pub async fn dev_sign_in(
    State(state): State<ServerState>,
    session: Session,
    Form(f): Form<DevSignIn>,
) -> Response {
    if !state.auth.dev_sign_in {
        return problem(
            StatusCode::NOT_FOUND,
            "Development sign-in is off",
            "This Release signs people in with GitHub.",
        );
    }
    let login = f.login.trim();
    if login.is_empty()
        || login.len() > 39
        || !login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Sign-in refused",
            "A login is 1 to 39 letters, digits or hyphens.",
        );
    }
    let Some(role) = Role::parse(&f.role) else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Sign-in refused",
            "Pick a role: viewer, deployer or admin.",
        );
    };
    let all: Vec<String> = state
        .app
        .store
        .environments()
        .names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (admin, deploy_environments) = match role {
        Role::Viewer => (false, vec![]),
        Role::Deployer => (false, all),
        Role::Admin => (true, all),
    };
    let sign_in = SignIn {
        github_id: None,
        login: format!("{login}-{}", role.as_str()),
        name: Some(format!("Demo {}", role.as_str())),
        avatar_url: None,
        admin,
        deploy_environments,
        token_ciphertext: None,
        dev: true,
    };
    finish_sign_in(
        &state,
        &session,
        &sign_in,
        &safe_return_to(f.return_to.as_deref()),
    )
    .await
}

/// Deletes the session on the server: the old cookie is worth nothing afterwards.
pub async fn sign_out(session: Session) -> Response {
    let _ = session.flush().await;
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
        assert_eq!(
            safe_return_to(Some("/applications/x?y=1")),
            "/applications/x?y=1"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "/auth/sign-out",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
