//! A fake GitHub: a real HTTP server that speaks the OAuth web flow (checking the PKCE
//! verifier, the client secret and the redirect URI), the membership API, and the
//! workflow-dispatch API, recording every request for the tests to assert on.
#![allow(dead_code)]

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::incoming::{BodyJson, Incoming};

/// A request the fake received: method, path, headers (lowercase names) and JSON body.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
}

impl Recorded {
    /// `req` with its path and query, and `body`.
    pub fn of(req: &Incoming, body: Value) -> Recorded {
        Recorded {
            method: req.method.to_string(),
            path: req.uri.to_string(),
            headers: req.header_map(),
            body,
        }
    }

    /// `req` with its path alone (no query), and `body`.
    pub fn path_only(req: &Incoming, body: Value) -> Recorded {
        Recorded {
            path: req.uri.path().to_owned(),
            ..Recorded::of(req, body)
        }
    }
}

pub const SECRET: &str = "fake-client-secret";
pub const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

#[derive(Default)]
pub struct FakeState {
    /// code -> (code_challenge, redirect_uri)
    pub codes: HashMap<String, (String, String)>,
    pub used: HashSet<String>,
    /// access token -> login
    pub tokens: HashMap<String, String>,
    pub org_members: HashSet<String>,
    /// (team, login)
    pub teams: HashSet<(String, String)>,
    pub token_requests: Vec<HashMap<String, String>>,
    /// Workflow dispatches received.
    pub dispatches: Vec<Recorded>,
    /// Compare requests received.
    pub compares: Vec<Recorded>,
    /// GitHub ids by login, where a test sets one (a renamed or recycled login);
    /// otherwise a hash of the login.
    pub ids: HashMap<String, i64>,
    /// Every request: method and raw path (with query), as it arrived.
    pub requests: Vec<(String, String)>,
    /// Workflow dispatches answer only after this long (a slow GitHub).
    pub dispatch_delay_ms: u64,
    /// Single-commit lookups received (the stats' commit times).
    pub commit_lookups: Vec<Recorded>,
    /// Commits the fake knows: sha -> committer date (RFC 3339).
    pub commits: HashMap<String, String>,
    /// Workflow runs started by accepted dispatches, as GitHub lists them
    /// (`GET .../actions/workflows/{workflow}/runs`), each with its repo and workflow.
    pub runs: Vec<(String, String, Value)>,
    /// Run-list requests received (method, path with query).
    pub run_lookups: Vec<Recorded>,
    /// The run list answers with no runs (a dispatch that never started one).
    pub hide_runs: bool,
    /// What the checks gate reads: the branch's required checks and the commit's results.
    pub checks: Checks,
    /// Branches, rules, statuses and check-run reads (method, path with query, headers).
    pub check_reads: Vec<Recorded>,
    /// Repositories whose checks GitHub will not show (404).
    pub hidden_repos: HashSet<String>,
    /// Run id -> its pending deployments, as GitHub lists them (without
    /// `current_user_can_approve`, which the fake sets per token from `approvers`).
    pub pending: HashMap<i64, Vec<Value>>,
    /// Logins GitHub lets approve.
    pub approvers: HashSet<String>,
    /// Environments' `prevent_self_review`.
    pub prevent_self_review: bool,
    /// Pending-deployment reads and reviews, and environment reads (method, path, headers,
    /// body), with the status answered.
    pub review_calls: Vec<(Recorded, u16)>,
    /// The App's side: installation tokens, deployments and their statuses.
    pub app: super::fake_deployments::AppFake,
}

/// The checks GitHub shows for every repository (but the hidden ones): what a branch
/// requires and what every commit reports.
#[derive(Default)]
pub struct Checks {
    /// The default branch's protection as `GET .../branches/{branch}` shows it to a
    /// member (`required_status_checks`: `contexts` and `checks`); `None`: unprotected.
    pub protection: Option<Value>,
    /// The ruleset rules `GET .../rules/branches/{branch}` answers with.
    pub rules: Vec<Value>,
    /// Commit statuses of every commit (`context`, `state`, `target_url`).
    pub statuses: Vec<Value>,
    /// Check runs of every commit, as GitHub lists them.
    pub check_runs: Vec<Value>,
}

/// The SHA every ref resolves to in the fake's check reads.
pub const CHECKED_SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";

pub type Fake = Arc<Mutex<FakeState>>;

pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn token_endpoint(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    let mut s = fake.lock().unwrap();
    s.token_requests.push(f.clone());
    let bad = |e: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e, "error_description": e})),
        )
            .into_response()
    };
    if headers.get("accept").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return bad("expected Accept: application/json");
    }
    if f.get("client_secret").map(String::as_str) != Some(SECRET)
        || f.get("client_id").map(String::as_str) != Some("fake-client")
    {
        return bad("incorrect_client_credentials");
    }
    let code = f.get("code").cloned().unwrap_or_default();
    let Some((challenge, redirect)) = s.codes.get(&code).cloned() else {
        return bad("bad_verification_code");
    };
    if !s.used.insert(code.clone()) {
        return bad("bad_verification_code");
    }
    if f.get("redirect_uri") != Some(&redirect) {
        return bad("redirect_uri_mismatch");
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if b64url(&Sha256::digest(verifier.as_bytes())) != challenge {
        return bad("invalid PKCE verifier");
    }
    let token = format!("gho_{code}");
    let login = code.rsplit_once('.').unwrap().0.to_owned();
    s.tokens.insert(token.clone(), login);
    Json(json!({"access_token": token, "token_type": "bearer", "scope": "read:org,repo"}))
        .into_response()
}

/// GitHub's answer to a request without a token it knows.
fn bad_credentials() -> axum::response::Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Bad credentials"})),
    )
        .into_response()
}

/// Records `req` (as `rec`) in the list `into` picks out of the fake's state, whoever
/// sent it; then who sent it (`None`: no token the fake knows).
fn record(
    fake: &Fake,
    into: fn(&mut FakeState) -> &mut Vec<Recorded>,
    req: &Incoming,
    rec: Recorded,
) -> Option<String> {
    into(&mut fake.lock().unwrap()).push(rec);
    login_of(fake, &req.headers)
}

fn login_of(fake: &Fake, headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    fake.lock().unwrap().tokens.get(token).cloned()
}

pub async fn fake_github() -> (String, Fake) {
    let fake: Fake = Arc::default();
    let app = Router::new()
        .route("/login/oauth/access_token", post(token_endpoint))
        .route(
            "/api/user",
            get(|State(f): State<Fake>, h: HeaderMap| async move {
                match login_of(&f, &h) {
                    Some(login) => {
                        let id = f.lock().unwrap().ids.get(&login).copied().unwrap_or_else(|| login.bytes().fold(7i64, |h, b| (h.wrapping_mul(31) + b as i64).rem_euclid(1_000_000_007)));
                        Json(json!({"id": id, "login": login, "name": "The Octocat", "avatar_url": "https://avatars.example/u/42"})).into_response()
                    }
                    None => StatusCode::UNAUTHORIZED.into_response(),
                }
            }),
        )
        .route(
            "/api/user/memberships/orgs/{org}",
            get(|State(f): State<Fake>, h: HeaderMap, Path(org): Path<String>| async move {
                let Some(login) = login_of(&f, &h) else { return StatusCode::UNAUTHORIZED.into_response() };
                if org == "example-org" && f.lock().unwrap().org_members.contains(&login) {
                    Json(json!({"state": "active", "role": "member"})).into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                }
            }),
        )
        .route(
            "/api/orgs/{org}/teams/{team}/memberships/{login}",
            get(|State(f): State<Fake>, h: HeaderMap, Path((_org, team, login)): Path<(String, String, String)>| async move {
                if login_of(&f, &h).is_none() {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                if f.lock().unwrap().teams.contains(&(team, login)) {
                    Json(json!({"state": "active", "role": "member"})).into_response()
                } else {
                    StatusCode::NOT_FOUND.into_response()
                }
            }),
        )
        .route("/api/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches", post(dispatch))
        .route("/api/repos/{owner}/{repo}/actions/workflows/{workflow}/runs", get(list_runs))
        .route("/api/repos/{owner}/{repo}/compare/{spec}", get(compare))
        .route("/api/repos/{owner}/{repo}/actions/runs/{run_id}/pending_deployments", get(pending_read).post(pending_review))
        .route("/api/repos/{owner}/{repo}/environments/{name}", get(environment_read))
        .route("/api/repos/{owner}/{repo}/branches/{branch}", get(checks_read))
        .route("/api/repos/{owner}/{repo}/rules/branches/{branch}", get(checks_read))
        .route("/api/repos/{owner}/{repo}/commits/{sha}/status", get(checks_read))
        .route("/api/repos/{owner}/{repo}/commits/{sha}/check-runs", get(checks_read))
        .route(
            "/api/repos/{owner}/{repo}/commits/{sha}",
            get(|State(f): State<Fake>, req: Incoming, Path((_o, _r, sha)): Path<(String, String, String)>| async move {
                let mut s = f.lock().unwrap();
                s.commit_lookups.push(Recorded::path_only(&req, Value::Null));
                if req.header("authorization") != Some("Bearer stats-token") {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                match s.commits.get(&sha) {
                    Some(date) => Json(json!({"sha": sha, "commit": {"message": "A change", "author": {"name": "Li Wei", "date": date}, "committer": {"name": "GitHub", "date": date}}})).into_response(),
                    None => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
                }
            }),
        )
        .route(
            "/api/repos/{owner}/{repo}/tags",
            get(|State(f): State<Fake>, h: HeaderMap| async move {
                if login_of(&f, &h).is_none() {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                Json(json!([{"name": "v3", "commit": {"sha": "ccc"}}, {"name": "v2", "commit": {"sha": "bbb"}}])).into_response()
            }),
        )
        .route(
            "/api/repos/{owner}/{repo}/commits",
            get(|State(f): State<Fake>, h: HeaderMap, uri: axum::http::Uri| async move {
                if login_of(&f, &h).is_none() || uri.query() != Some("sha=main&per_page=10") {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                Json(json!([{"sha": "abcdef1234567890", "commit": {"message": "Fix the header\n\nmore"}}])).into_response()
            }),
        )
        .merge(super::fake_deployments::routes())
        .layer(axum::middleware::from_fn_with_state(
            fake.clone(),
            |State(f): State<Fake>, req: axum::extract::Request, next: axum::middleware::Next| async move {
                let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
                f.lock().unwrap().requests.push((req.method().to_string(), path));
                next.run(req).await
            },
        ))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

/// The dispatch endpoint. Some refs make it fail the way GitHub does. An accepted
/// dispatch starts a run at once (listed by `list_runs`), before a slow answer.
async fn dispatch(
    State(f): State<Fake>,
    req: Incoming,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    BodyJson(body): BodyJson,
) -> axum::response::Response {
    let git_ref = body["inputs"]["gitRef"].as_str().unwrap_or("").to_owned();
    let branch = body["ref"].as_str().unwrap_or("").to_owned();
    let rec = Recorded::path_only(&req, body);
    let Some(login) = record(&f, |s| &mut s.dispatches, &req, rec) else {
        return bad_credentials();
    };
    let refused = match git_ref.as_str() {
        "no-such-ref" => Some(
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"message": "No ref found for: no-such-ref"})),
            )
                .into_response(),
        ),
        "forbidden" => Some(
            (
                StatusCode::FORBIDDEN,
                Json(json!({"message": "Resource not accessible by integration"})),
            )
                .into_response(),
        ),
        "boom" => Some(StatusCode::BAD_GATEWAY.into_response()),
        _ => None,
    };
    if let Some(r) = refused {
        return r;
    }
    // The run, as GitHub's list shows it (fields from its REST API's workflow run).
    let (id, html_url) = {
        let mut s = f.lock().unwrap();
        let id = 777 + s.runs.len() as i64;
        let html_url = format!("https://github.example/{owner}/{repo}/actions/runs/{id}");
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let run = json!({
            "id": id, "name": "Deploy", "node_id": format!("WFR_{id}"), "head_branch": branch,
            "head_sha": "009b8a3a9ccbb128af87f9b1c0f4c62e8a304f6d", "path": format!(".github/workflows/{workflow}"),
            "run_number": id - 700, "event": "workflow_dispatch", "display_title": "Deploy",
            "status": "queued", "conclusion": null, "workflow_id": 161335,
            "url": format!("https://api.github.example/repos/{owner}/{repo}/actions/runs/{id}"),
            "html_url": html_url, "created_at": now, "updated_at": now, "run_attempt": 1,
            "actor": {"login": login, "id": 1, "type": "User"},
            "triggering_actor": {"login": login, "id": 1, "type": "User"},
        });
        s.runs
            .push((format!("{owner}/{repo}"), workflow.clone(), run));
        (id, html_url)
    };
    let delay = f.lock().unwrap().dispatch_delay_ms;
    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    match git_ref.as_str() {
        "slow" => {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            StatusCode::NO_CONTENT.into_response()
        }
        _ => Json(json!({"workflow_run_id": id, "run_url": format!("https://api.github.example/repos/{owner}/{repo}/actions/runs/{id}"),
                         "html_url": html_url})).into_response(),
    }
}

/// `GET .../actions/workflows/{workflow}/runs?event=..&created=>=..`: the runs of that
/// workflow, newest first, filtered as GitHub filters them.
async fn list_runs(
    State(f): State<Fake>,
    req: Incoming,
    Path((owner, repo, workflow)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let rec = Recorded::of(&req, Value::Null);
    if record(&f, |s| &mut s.run_lookups, &req, rec).is_none() {
        return bad_credentials();
    }
    // `created=A..B` (or `>=A`), as GitHub's search qualifiers.
    let created = q.get("created").cloned().unwrap_or_default();
    let (since, until) = match created.split_once("..") {
        Some((a, b)) => (Some(a.to_owned()), Some(b.to_owned())),
        None => (created.strip_prefix(">=").map(str::to_owned), None),
    };
    let event = q.get("event").cloned();
    let full = format!("{owner}/{repo}");
    if f.lock().unwrap().hide_runs {
        return Json(json!({"total_count": 0, "workflow_runs": []})).into_response();
    }
    let mut runs: Vec<Value> = f
        .lock()
        .unwrap()
        .runs
        .iter()
        .filter(|(r, w, run)| {
            *r == full
                && *w == workflow
                && event.as_deref().is_none_or(|e| run["event"] == e)
                && since
                    .as_deref()
                    .is_none_or(|s| run["created_at"].as_str().unwrap_or("") >= s)
                && until
                    .as_deref()
                    .is_none_or(|u| run["created_at"].as_str().unwrap_or("") <= u)
        })
        .map(|(_, _, run)| run.clone())
        .collect();
    runs.reverse();
    Json(json!({"total_count": runs.len(), "workflow_runs": runs})).into_response()
}

/// The configuration of a Release signing in with the fake GitHub at `gh`.
pub fn config_text(
    gh: &str,
    refresh_minutes: i64,
    public_url: Option<&str>,
    extra: &str,
) -> String {
    let public = public_url
        .map(|u| format!("public_url = \"{u}\"\n"))
        .unwrap_or_default();
    format!(
        r#"{public}
[github]
client_id = "fake-client"
web_url = "{gh}"
api_url = "{gh}/api"
[access]
org = "example-org"
admins = ["release-admins"]
refresh_minutes = {refresh_minutes}
[access.deployers]
integration = ["developers"]
production = ["@prod-person"]
{extra}
"#
    )
}

pub fn client() -> reqwest::Client {
    super::browser()
}

pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("release_session="))
        .map(str::to_owned)
}

/// Starts a sign-in, "approves" it on the fake GitHub as `login`, and returns the
/// callback's query (code and state) without calling it.
pub async fn authorize(
    env: &super::TestApp,
    c: &reqwest::Client,
    login: &str,
    return_to: &str,
) -> (String, String) {
    let r = super::send(c.get(format!("{}/auth/github?return_to={return_to}", env.base))).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{}/login/oauth/authorize?", env.fake_base())),
        "{location}"
    );
    let q = query(&location);
    assert_eq!(q["client_id"], "fake-client");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], format!("{}/auth/callback", env.base));
    assert_eq!(q["scope"], "read:org repo");
    assert!(q["state"].len() >= 16);
    let code = format!("{login}.{}", rand_code());
    env.fake.lock().unwrap().codes.insert(
        code.clone(),
        (q["code_challenge"].clone(), q["redirect_uri"].clone()),
    );
    (code, q["state"].clone())
}

pub fn rand_code() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::SeqCst)
}

impl super::TestApp {
    pub fn fake_base(&self) -> String {
        self.gh.clone()
    }

    pub fn member(&self, login: &str, teams: &[&str]) {
        let mut s = self.fake.lock().unwrap();
        s.org_members.insert(login.to_owned());
        for t in teams {
            s.teams.insert((t.to_string(), login.to_owned()));
        }
    }

    pub async fn me(&self, c: &reqwest::Client) -> Value {
        let r = super::send(c.post(format!("{}/api/me", self.base))).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// GitHub sending the browser `c` back to Release with `query` (code and state, or an
    /// error).
    pub async fn callback(&self, c: &reqwest::Client, query: &str) -> reqwest::Response {
        c.get(format!("{}/auth/callback?{query}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// [`callback`](Self::callback), whose answer must have `status` and say `needle`: its
    /// body.
    pub async fn expect_callback(
        &self,
        c: &reqwest::Client,
        query: &str,
        status: u16,
        needle: &str,
    ) -> String {
        super::expect_text(self.callback(c, query).await, status, needle).await
    }

    /// The browser `c` signs in as `login` (see [`authorize`]) and GitHub sends it back
    /// with the code and state: Release's answer to that callback.
    pub async fn github_sign_in(
        &self,
        c: &reqwest::Client,
        login: &str,
        return_to: &str,
    ) -> reqwest::Response {
        let (code, state) = authorize(self, c, login, return_to).await;
        self.callback(c, &format!("code={code}&state={state}"))
            .await
    }

    /// The whole flow, ending signed in.
    pub async fn sign_in(&self, login: &str) -> reqwest::Client {
        let c = client();
        let r = self.github_sign_in(&c, login, "/").await;
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        c
    }
}

/// The reads of the checks gate, answered as GitHub does: a branch with the part of its
/// protection a member sees, the ruleset rules, the combined status (with `pending` and
/// no statuses when there are none), and check runs paged by `per_page` and `page`.
async fn checks_read(
    State(f): State<Fake>,
    req: Incoming,
    Path(p): Path<Vec<(String, String)>>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let rec = Recorded::of(&req, Value::Null);
    if record(&f, |s| &mut s.check_reads, &req, rec).is_none() {
        return bad_credentials();
    }
    let arg = |k: &str| {
        p.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let s = f.lock().unwrap();
    if s.hidden_repos
        .contains(&format!("{}/{}", arg("owner"), arg("repo")))
    {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}))).into_response();
    }
    let checks = &s.checks;
    let path = req.uri.path();
    if path.contains("/rules/branches/") {
        return Json(json!(checks.rules)).into_response();
    }
    if path.contains("/branches/") {
        let branch = arg("branch");
        return Json(match &checks.protection {
            Some(rsc) => json!({"name": branch, "commit": {"sha": CHECKED_SHA}, "protected": true,
                "protection": {"enabled": true, "required_status_checks": rsc},
                "protection_url": format!("https://api.github.example/repos/x/y/branches/{branch}/protection")}),
            None => json!({"name": branch, "commit": {"sha": CHECKED_SHA}, "protected": false,
                "protection": {"enabled": false, "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []}}}),
        })
        .into_response();
    }
    if path.ends_with("/status") {
        let states: Vec<&str> = checks
            .statuses
            .iter()
            .filter_map(|x| x["state"].as_str())
            .collect();
        let state = if states.iter().any(|x| *x == "failure" || *x == "error") {
            "failure"
        } else if states.is_empty() || states.iter().any(|x| *x == "pending") {
            "pending"
        } else {
            "success"
        };
        return Json(json!({"state": state, "sha": CHECKED_SHA, "total_count": checks.statuses.len(), "statuses": checks.statuses,
            "repository": {"full_name": format!("{}/{}", arg("owner"), arg("repo"))}}))
        .into_response();
    }
    let per_page: usize = q
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .min(100);
    let page: usize = q
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let items: Vec<Value> = checks
        .check_runs
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    Json(json!({"total_count": checks.check_runs.len(), "check_runs": items})).into_response()
}

/// `GET .../actions/runs/{run_id}/pending_deployments`: the run's waits as the token's
/// person sees them, with an ETag; `If-None-Match` with the same ETag is a 304.
async fn pending_read(
    State(f): State<Fake>,
    req: Incoming,
    Path((_o, _r, run_id)): Path<(String, String, i64)>,
) -> axum::response::Response {
    let Some(login) = login_of(&f, &req.headers) else {
        return bad_credentials();
    };
    let mut s = f.lock().unwrap();
    let can = s.approvers.contains(&login);
    let items: Vec<Value> = s
        .pending
        .get(&run_id)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut p| {
            p["current_user_can_approve"] = json!(can);
            p
        })
        .collect();
    let body = json!(items).to_string();
    let hexed = format!("{:x}", Sha256::digest(body.as_bytes()));
    let etag = format!("W/\"{}\"", &hexed[..16]);
    let status = if req.header("if-none-match") == Some(etag.as_str()) {
        304
    } else {
        200
    };
    s.review_calls
        .push((Recorded::of(&req, Value::Null), status));
    if status == 304 {
        return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
    }
    (
        StatusCode::OK,
        [("etag", etag), ("content-type", "application/json".into())],
        body,
    )
        .into_response()
}

/// `POST .../actions/runs/{run_id}/pending_deployments`: a review. Only an approver's
/// token is taken (GitHub answers others 422); the waits of those environments end.
async fn pending_review(
    State(f): State<Fake>,
    req: Incoming,
    Path((_o, _r, run_id)): Path<(String, String, i64)>,
    BodyJson(body): BodyJson,
) -> axum::response::Response {
    let login = login_of(&f, &req.headers);
    let mut s = f.lock().unwrap();
    let allowed = login.as_ref().is_some_and(|l| s.approvers.contains(l));
    let status = if login.is_none() {
        401
    } else if allowed {
        200
    } else {
        422
    };
    s.review_calls
        .push((Recorded::of(&req, body.clone()), status));
    if status != 200 {
        return (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"message": "Validation Failed"})),
        )
            .into_response();
    }
    let ids: Vec<i64> = body["environment_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if let Some(p) = s.pending.get_mut(&run_id) {
        p.retain(|x| !ids.contains(&x["environment"]["id"].as_i64().unwrap_or(0)));
    }
    Json(json!([{"id": 42, "environment": "production", "sha": CHECKED_SHA, "ref": "main", "task": "deploy"}])).into_response()
}

/// `GET .../environments/{name}`: its protection rules.
async fn environment_read(
    State(f): State<Fake>,
    req: Incoming,
    Path((_o, _r, name)): Path<(String, String, String)>,
) -> axum::response::Response {
    if login_of(&f, &req.headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut s = f.lock().unwrap();
    s.review_calls.push((Recorded::of(&req, Value::Null), 200));
    Json(json!({"id": 161088068, "name": name, "protection_rules": [
        {"id": 3736, "node_id": "MDQ6R2F0ZTM3MzY=", "type": "wait_timer", "wait_timer": 30},
        {"id": 3755, "node_id": "MDQ6R2F0ZTM3NTU=", "type": "required_reviewers", "prevent_self_review": s.prevent_self_review,
         "reviewers": [{"type": "User", "reviewer": {"login": "boss", "id": 1}}]},
        {"id": 3756, "node_id": "MDQ6R2F0ZTM3NTY=", "type": "branch_policy"}
    ]})).into_response()
}

/// A check run as GitHub lists it.
pub fn check_run(name: &str, status: &str, conclusion: Option<&str>, app_id: i64) -> Value {
    json!({"id": 4, "head_sha": CHECKED_SHA, "name": name, "status": status, "conclusion": conclusion,
           "html_url": format!("https://github.example/runs/{name}"), "details_url": "https://ci.example/x",
           "app": {"id": app_id, "slug": "github-actions"}})
}

/// The compare endpoint: `v1...v2` is two commits ahead; `v2...v1` is behind (a rollback).
async fn compare(
    State(f): State<Fake>,
    req: Incoming,
    Path((_o, _r, spec)): Path<(String, String, String)>,
) -> axum::response::Response {
    let rec = Recorded::path_only(&req, Value::Null);
    if record(&f, |s| &mut s.compares, &req, rec).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let commit = |sha: &str, msg: &str, who: &str| json!({"sha": sha, "commit": {"message": msg, "author": {"name": who, "date": "2026-11-27T10:00:00Z"}}, "author": {"login": who}});
    // The commit the checks gate resolves every ref to stands for v1.
    match spec.replace(CHECKED_SHA, "v1").as_str() {
        "v1...v2" => Json(json!({"status": "ahead", "ahead_by": 2, "behind_by": 0, "total_commits": 2,
            "html_url": "https://github.example/example-org/frontend/compare/v1...v2",
            "commits": [commit("aaaaaaa1111", "Fix the header\n\nLonger text", "li-wei"), commit("bbbbbbb2222", "Add search", "sam")]})).into_response(),
        "v2...v1" => Json(json!({"status": "behind", "ahead_by": 0, "behind_by": 2, "total_commits": 0,
            "html_url": "https://github.example/example-org/frontend/compare/v2...v1", "commits": []})).into_response(),
        _ => (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response(),
    }
}
