//! The fake GitHub's App and Deployments API: installation tokens bought with the App's
//! JWT (verified with the App's public key: RS256, `iss` the App's id, at most ten
//! minutes), an App's installation per repository, deployments and their statuses,
//! answered in GitHub's shapes (from its REST description's examples) and recorded.

use super::fake_github::{Fake, Recorded};
use super::incoming::Incoming;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What the App side of the fake knows and received.
#[derive(Default)]
pub struct AppFake {
    /// The App's id and public key; `None`: no App (every JWT refused).
    pub app: Option<(i64, rsa::RsaPublicKey)>,
    /// `owner/repo` -> the installation's id.
    pub installations: HashMap<String, i64>,
    /// Installation tokens sold: token -> installation.
    pub tokens: HashMap<String, i64>,
    /// A token that needs no App (`RELEASE_GITHUB_REPORT_TOKEN`).
    pub plain_token: Option<String>,
    /// The claims of every JWT that verified.
    pub jwt_claims: Vec<Value>,
    /// Token purchases and installation lookups (path, headers) with the status answered.
    pub app_calls: Vec<(Recorded, u16)>,
    /// Deployments created and statuses posted, as received.
    pub deployments: Vec<Recorded>,
    pub statuses: Vec<Recorded>,
    /// The answer to the next deployment creations instead of a 201 (e.g. GitHub's 409).
    pub create_answer: Option<(u16, Value)>,
}

pub fn routes() -> Router<Fake> {
    Router::new()
        .route(
            "/api/app/installations/{id}/access_tokens",
            post(access_token),
        )
        .route("/api/repos/{owner}/{repo}/installation", get(installation))
        .route("/api/repos/{owner}/{repo}/deployments", post(create))
        .route(
            "/api/repos/{owner}/{repo}/deployments/{id}/statuses",
            post(status),
        )
}

fn bearer(h: &HeaderMap) -> Option<String> {
    h.get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

fn message(status: StatusCode, m: &str) -> Response {
    (
        status,
        Json(json!({"message": m, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()})),
    )
        .into_response()
}

/// The claims of a JWT the App signed, checked as GitHub does; or why not.
fn verify_jwt(f: &AppFake, jwt: &str) -> Result<Value, &'static str> {
    use rsa::signature::Verifier;
    let (id, key) = f.app.as_ref().ok_or("no App")?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.');
    let (h, c, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(c), Some(s), None) => (h, c, s),
        _ => return Err("A JSON web token could not be decoded"),
    };
    let header: Value = serde_json::from_slice(&b64.decode(h).map_err(|_| "bad header")?)
        .map_err(|_| "bad header")?;
    if header["alg"] != "RS256" {
        return Err("'alg' must be RS256");
    }
    let sig =
        rsa::pkcs1v15::Signature::try_from(b64.decode(s).map_err(|_| "bad signature")?.as_slice())
            .map_err(|_| "bad signature")?;
    rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key.clone())
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .map_err(|_| "A JSON web token could not be decoded")?;
    let claims: Value = serde_json::from_slice(&b64.decode(c).map_err(|_| "bad claims")?)
        .map_err(|_| "bad claims")?;
    let now = chrono::Utc::now().timestamp();
    let iat = claims["iat"].as_i64().ok_or("'iat' claim missing")?;
    let exp = claims["exp"].as_i64().ok_or("'exp' claim missing")?;
    let iss = match &claims["iss"] {
        Value::String(s) => s.parse::<i64>().ok(),
        v => v.as_i64(),
    };
    if iss != Some(*id) {
        return Err("'iss' is not the App's id");
    }
    if iat > now + 5 || exp <= now || exp - iat > 600 {
        return Err("'Expiration time' claim ('exp') is too far in the future");
    }
    Ok(claims)
}

/// A call the App makes with its JWT: refused (401, GitHub's words) unless the JWT
/// verifies; then `answer` with the claims. Recorded with the status answered.
fn as_the_app(
    fake: &Fake,
    req: &Incoming,
    answer: impl FnOnce(&mut AppFake) -> Response,
) -> Response {
    let mut s = fake.lock().unwrap();
    let f = &mut s.app;
    let rec = Recorded::path_only(req, Value::Null);
    let response = match bearer(&req.headers).map(|t| verify_jwt(f, &t)) {
        None => message(
            StatusCode::UNAUTHORIZED,
            "A JSON web token could not be decoded",
        ),
        Some(Err(why)) => message(StatusCode::UNAUTHORIZED, why),
        Some(Ok(claims)) => {
            f.jwt_claims.push(claims);
            answer(f)
        }
    };
    f.app_calls.push((rec, response.status().as_u16()));
    response
}

async fn access_token(State(fake): State<Fake>, req: Incoming, Path(id): Path<i64>) -> Response {
    as_the_app(&fake, &req, |f| {
        if !f.installations.values().any(|i| *i == id) {
            return message(StatusCode::NOT_FOUND, "Not Found");
        }
        let token = format!("ghs_fake{id}x{}", f.tokens.len());
        f.tokens.insert(token.clone(), id);
        let expires = (chrono::Utc::now() + chrono::Duration::hours(1))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        (
            StatusCode::CREATED,
            Json(json!({"token": token, "expires_at": expires,
                "permissions": {"deployments": "write", "metadata": "read"},
                "repository_selection": "all"})),
        )
            .into_response()
    })
}

async fn installation(
    State(fake): State<Fake>,
    req: Incoming,
    Path((owner, repo)): Path<(String, String)>,
) -> Response {
    as_the_app(&fake, &req, |f| {
        match f.installations.get(&format!("{owner}/{repo}")) {
            Some(id) => Json(
                json!({"id": id, "account": {"login": owner, "type": "Organization"},
                "app_id": f.app.as_ref().map(|a| a.0), "target_type": "Organization",
                "permissions": {"deployments": "write", "metadata": "read"}}),
            )
            .into_response(),
            None => message(StatusCode::NOT_FOUND, "Not Found"),
        }
    })
}

/// The App side, when `h` carries a token GitHub takes for writing deployments.
fn writer<'a>(f: &'a mut AppFake, h: &HeaderMap) -> Option<&'a mut AppFake> {
    may_write(f, h).then_some(f)
}

/// Whether `h` carries a token GitHub takes for writing deployments.
fn may_write(f: &AppFake, h: &HeaderMap) -> bool {
    bearer(h)
        .is_some_and(|t| f.tokens.contains_key(&t) || f.plain_token.as_deref() == Some(t.as_str()))
}

async fn create(
    State(fake): State<Fake>,
    req: Incoming,
    Path((owner, repo)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = fake.lock().unwrap();
    let Some(f) = writer(&mut s.app, &req.headers) else {
        return message(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    f.deployments.push(Recorded::path_only(&req, body.clone()));
    if let Some((status, answer)) = f.create_answer.clone() {
        return (StatusCode::from_u16(status).unwrap(), Json(answer)).into_response();
    }
    let id = 1_000_000 + f.deployments.len() as i64;
    let url = format!("https://api.github.example/repos/{owner}/{repo}/deployments/{id}");
    (
        StatusCode::CREATED,
        Json(json!({"url": url, "id": id, "node_id": "MDEwOkRlcGxveW1lbnQx",
            "sha": body["ref"], "ref": body["ref"], "task": body["task"], "payload": body["payload"],
            "original_environment": body["environment"], "environment": body["environment"],
            "description": body["description"],
            "creator": {"login": "release-dashboard[bot]", "id": 1, "type": "Bot"},
            "created_at": "2026-12-06T10:00:00Z", "updated_at": "2026-12-06T10:00:00Z",
            "statuses_url": format!("{url}/statuses"),
            "repository_url": format!("https://api.github.example/repos/{owner}/{repo}"),
            "transient_environment": body["transient_environment"],
            "production_environment": body["production_environment"]})),
    )
        .into_response()
}

async fn status(
    State(fake): State<Fake>,
    req: Incoming,
    Path((owner, repo, id)): Path<(String, String, i64)>,
    Json(body): Json<Value>,
) -> Response {
    let mut s = fake.lock().unwrap();
    let Some(f) = writer(&mut s.app, &req.headers) else {
        return message(StatusCode::UNAUTHORIZED, "Bad credentials");
    };
    if id <= 1_000_000 || id > 1_000_000 + f.deployments.len() as i64 {
        return message(StatusCode::NOT_FOUND, "Not Found");
    }
    f.statuses.push(Recorded::path_only(&req, body.clone()));
    let url = format!("https://api.github.example/repos/{owner}/{repo}/deployments/{id}");
    (
        StatusCode::CREATED,
        [("location", format!("{url}/statuses/{}", f.statuses.len()))],
        Json(json!({"url": format!("{url}/statuses/{}", f.statuses.len()), "id": f.statuses.len(),
            "state": body["state"], "creator": {"login": "release-dashboard[bot]", "type": "Bot"},
            "description": body["description"], "environment": body["environment"],
            "target_url": body["log_url"], "log_url": body["log_url"],
            "environment_url": body.get("environment_url").cloned().unwrap_or(json!("")),
            "created_at": "2026-12-06T10:00:00Z", "updated_at": "2026-12-06T10:00:00Z",
            "deployment_url": url, "repository_url": format!("https://api.github.example/repos/{owner}/{repo}")})),
    )
        .into_response()
}
