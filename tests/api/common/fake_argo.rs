//! One fake Argo: a real HTTP server speaking the two Argo APIs Release calls. Argo
//! Workflows' resubmit (`PUT /api/v1/workflows/{ns}/{name}/resubmit`), and Argo CD's
//! application list and watch stream (newline-delimited JSON, as grpc-gateway streams it).
//! It checks the bearer token it was started with and records every request as it
//! arrived, so tests assert the exact path, token and body Release sent.
#![allow(dead_code)]

use super::incoming::{BodyJson, Incoming};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use axum::Json;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgoRequest {
    pub method: String,
    /// The raw path and query, as they arrived (nothing decoded).
    pub path: String,
    /// The `Authorization` header ("" when absent).
    pub auth: String,
    /// The JSON body (`Null` when none or not JSON).
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct FakeArgo {
    /// Where it listens.
    pub base: String,
    /// The bearer token it accepts.
    token: String,
    requests: Arc<Mutex<Vec<ArgoRequest>>>,
    /// Argo CD: the applications the list answers with.
    pub apps: Arc<Mutex<Vec<Value>>>,
    /// Argo CD: open watches; send a line to each.
    pub watchers: Arc<Mutex<Vec<tokio::sync::mpsc::UnboundedSender<String>>>>,
    /// Answers 503 to everything (Argo down).
    pub down: Arc<AtomicBool>,
    /// Argo CD: the query of every list request.
    pub list_queries: Arc<Mutex<Vec<String>>>,
    /// Every answer comes only after this long (a slow Argo).
    pub delay_ms: Arc<AtomicU64>,
}

/// Starts a fake Argo that accepts `Bearer {token}`.
pub async fn fake_argo(token: &str) -> FakeArgo {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = FakeArgo {
        base: format!("http://{}", listener.local_addr().unwrap()),
        token: token.to_owned(),
        ..FakeArgo::default()
    };
    let app = axum::Router::new()
        .route("/api/v1/workflows/{ns}/{name}/resubmit", put(resubmit))
        .route("/api/v1/applications", get(list))
        .route("/api/v1/stream/applications", get(stream))
        .fallback(unknown)
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    fake
}

impl FakeArgo {
    /// Every request so far.
    pub fn requests(&self) -> Vec<ArgoRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The `Authorization` of every request to `path` (the query left out).
    pub fn requests_to(&self, path: &str) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .map(|r| r.auth)
            .collect()
    }

    /// Argo CD: waits (at most 10 s) until a watch is open.
    pub async fn wait_for_watch(&self) {
        for _ in 0..100 {
            if !self.watchers.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Argo CD: adds an application to what the list answers.
    pub fn list(&self, app: Value) {
        self.apps.lock().unwrap().push(app);
    }

    /// Argo CD: sends a watch event to every open watch.
    pub fn push(&self, kind: &str, app: Value) {
        let line = json!({"result": {"type": kind, "application": app}}).to_string() + "\n";
        self.watchers
            .lock()
            .unwrap()
            .retain(|w| w.send(line.clone()).is_ok());
    }

    /// Argo CD: sends a raw chunk to every open watch (grpc-gateway's error chunk has no
    /// newline), then closes them.
    pub fn end_with(&self, chunk: &str) {
        for w in self.watchers.lock().unwrap().drain(..) {
            w.send(chunk.to_owned()).ok();
        }
    }

    /// Argo CD: closes every open watch (Argo CD restarting).
    pub fn drop_watches(&self) {
        self.watchers.lock().unwrap().clear();
    }

    /// Records the request; `Err` with the answer when Argo is down or the token is wrong.
    async fn receive(&self, req: &Incoming, body: Value) -> Result<(), axum::response::Response> {
        let auth = req.header("authorization").unwrap_or("").to_owned();
        self.requests.lock().unwrap().push(ArgoRequest {
            method: req.method.to_string(),
            path: req.uri.to_string(),
            auth: auth.clone(),
            body,
        });
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
        if auth != format!("Bearer {}", self.token) {
            // What Argo answers a token it does not accept (gRPC code 16, unauthenticated).
            return Err((
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid session", "code": 16, "message": "invalid session"})),
            )
                .into_response());
        }
        Ok(())
    }
}

/// Argo Workflows' resubmit: the new workflow, named as Argo names it; `gone-*` workflows
/// answer 404 as Argo does.
async fn resubmit(
    State(f): State<FakeArgo>,
    req: Incoming,
    Path((ns, name)): Path<(String, String)>,
    BodyJson(body): BodyJson,
) -> axum::response::Response {
    if let Err(answer) = f.receive(&req, body).await {
        return answer;
    }
    if name.starts_with("gone-") {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 5, "message": "workflows.argoproj.io not found"})),
        )
            .into_response();
    }
    Json(json!({"metadata": {"name": format!("{name}-r2x9k"), "namespace": ns}, "status": {"phase": "Pending"}}))
        .into_response()
}

/// Argo CD's application list.
async fn list(State(f): State<FakeArgo>, req: Incoming) -> axum::response::Response {
    f.list_queries
        .lock()
        .unwrap()
        .push(req.uri.query().unwrap_or("").to_owned());
    if let Err(answer) = f.receive(&req, Value::Null).await {
        return answer;
    }
    let items = f.apps.lock().unwrap().clone();
    Json(json!({"metadata": {"resourceVersion": "1"}, "items": items})).into_response()
}

/// Argo CD's watch: one JSON line per event, for as long as the test keeps it open.
async fn stream(State(f): State<FakeArgo>, req: Incoming) -> axum::response::Response {
    if f.receive(&req, Value::Null).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    f.watchers.lock().unwrap().push(tx);
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::io::Error>(line), rx))
    });
    axum::body::Body::from_stream(body).into_response()
}

/// Anything else: recorded (a test asserts no stray path was called) and 404.
async fn unknown(
    State(f): State<FakeArgo>,
    req: Incoming,
    BodyJson(body): BodyJson,
) -> axum::response::Response {
    f.receive(&req, body).await.ok();
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": 5, "message": "Not Found"})),
    )
        .into_response()
}

/// An Argo CD application as its list and watch carry it: the chart's source, sync and
/// health, and the images running (Release reads the version from the image tag).
pub fn application(name: &str, tag: &str, health: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"source": {"repoURL": "https://github.com/alphagov/govuk-helm-charts", "targetRevision": "HEAD"}},
        "status": {
            "sync": {"status": "Synced", "revision": "abc123"},
            "health": {"status": health},
            "summary": {"images": [
                "registry.example/govuk/nginx:1.25",
                format!("172025368201.dkr.ecr.eu-west-1.amazonaws.com/github/alphagov/govuk/{name}:release-{tag}")
            ]},
            "operationState": {"phase": "Succeeded", "finishedAt": "2026-11-28T10:00:00Z"},
            "reconciledAt": "2026-11-28T10:00:05Z"
        }
    })
}
