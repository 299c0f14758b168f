//! Deploy alerts, against a local fake Slack / webhook receiver that records every request
//! and answers what the test says (503 while it is "down"). The exact payloads and the
//! signature are asserted; a receiver down for a while still gets its alert; a server
//! killed with SIGKILL between the change and the delivery delivers it after a restart.

use crate::common;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "0123456789abcdef-hook-secret";

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>,
    /// 0: answer 200.
    status: Arc<AtomicU16>,
    /// The body of a refusal (default "down").
    answer: Arc<Mutex<Option<String>>>,
}

impl Receiver {
    fn requests(&self, path: &str) -> Vec<(HeaderMap, Value)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, h, b)| (h.clone(), serde_json::from_slice(b).expect("JSON body")))
            .collect()
    }

    /// Waits (at most 15 s) until `path` has had `n` requests.
    async fn wait_for(&self, path: &str, n: usize) -> Vec<(HeaderMap, Value)> {
        for _ in 0..150 {
            let got = self.requests(path);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{path} had {} requests, not {n}: {:?}",
            self.requests(path).len(),
            self.requests(path)
        );
    }
}

async fn fake_receiver() -> (String, Receiver) {
    async fn record(
        State(r): State<Receiver>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> (StatusCode, String) {
        let status = r.status.load(Ordering::SeqCst);
        let answer = r
            .answer
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| "down".into());
        r.got
            .lock()
            .unwrap()
            .push((uri.path().to_owned(), headers, body.to_vec()));
        match status {
            0 => (StatusCode::OK, "ok".into()),
            s => (
                StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                answer,
            ),
        }
    }
    let r = Receiver::default();
    let app = axum::Router::new()
        .fallback(axum::routing::post(record))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (format!("http://{addr}"), r)
}

fn config(fake: &str) -> String {
    format!(
        r##"
environments = ["integration", "staging", "production"]

[alerts]
retry_first_seconds = 0.2

[[alerts.receivers]]
name = "publishing-slack"
kind = "slack"
url = "{fake}/slack"
teams = ["#publishing"]

[[alerts.receivers]]
name = "hook"
kind = "webhook"
url = "{fake}/hook"
{apps}"##,
        apps = common::TWO_APPS
    )
}

/// Content Store's rollout fails in `environment` (an event the server accepts).
async fn rollout_failed(app: &common::TestApp, environment: &str, version: &str) {
    app.event_ok(
        json!({"repo": "alphagov/content-store", "environment": environment,
            "version": version, "stage": "rollout", "status": "failed"}),
    )
    .await;
}

async fn spawn(fake: &str) -> common::TestApp {
    common::TestApp::builder()
        .config(&config(fake))
        .settings(|s| {
            s.alert_env
                .insert("RELEASE_ALERT_SECRET_HOOK".into(), SECRET.into());
        })
        .spawn()
        .await
}

fn expected_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_deployment_reaches_slack_and_the_signed_webhook() {
    let (fake, receiver) = fake_receiver().await;
    let app = spawn(&fake).await;
    let answer = app
        .event_ok(json!({"repo": "alphagov/content-store", "environment": "staging", "version": "v5",
            "stage": "smoke_tests", "status": "failed", "message": "3 of 40 <!channel> checks failed",
            "workflow": {"environment": "staging", "namespace": "apps", "name": "post-sync-x",
                         "url": "https://argo.example/workflows/apps/post-sync-x"}}))
        .await;
    let deployment_id = answer["deployment_id"].as_i64().unwrap();

    let slack = receiver.wait_for("/slack", 1).await;
    let (headers, body) = &slack[0];
    assert_eq!(headers["content-type"], "application/json");
    let at = body["blocks"][1]["elements"][0]["text"].as_str().unwrap();
    let link = format!(
        "{}/applications/content-store#deployment-{deployment_id}",
        app.base
    );
    assert_eq!(
        *body,
        json!({
            "text": "content-store v5 failed in staging at smoke_tests",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "verbatim": true,
                    "text": "*content-store v5 failed in staging at smoke_tests*\n>3 of 40 &lt;!channel&gt; checks failed"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": at, "verbatim": true}]},
                {"type": "actions", "elements": [
                    {"type": "button", "style": "danger", "text": {"type": "plain_text", "text": "Resubmit in Release"}, "url": link},
                    {"type": "button", "text": {"type": "plain_text", "text": "View workflow"}, "url": "https://argo.example/workflows/apps/post-sync-x"}
                ]}
            ]
        })
    );
    assert!(
        at.starts_with("Release · `deployment_failed` · <!date^"),
        "{at}"
    );

    let hook = receiver.wait_for("/hook", 1).await;
    let raw = receiver
        .got
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _, _)| p == "/hook")
        .map(|(_, _, b)| b.clone())
        .unwrap();
    let (headers, body) = &hook[0];
    assert_eq!(
        headers["x-release-signature-256"].to_str().unwrap(),
        expected_signature(&raw),
        "the signature is the HMAC-SHA256 of the exact body"
    );
    assert_eq!(headers["x-release-event"], "deployment_failed");
    assert_eq!(body["event"], "deployment_failed");
    assert_eq!(body["application"], "content-store");
    assert_eq!(body["environment"], "staging");
    assert_eq!(body["version"], "v5");
    assert_eq!(body["stage"], "smoke_tests");
    assert_eq!(body["message"], "3 of 40 <!channel> checks failed");
    assert_eq!(
        body["workflow_url"],
        "https://argo.example/workflows/apps/post-sync-x"
    );
    assert_eq!(body["links"]["deployment"], link);
    assert_eq!(
        headers["x-release-delivery"].to_str().unwrap(),
        body["delivery_id"].to_string()
    );

    // The same deployment failing again is not a new alert.
    rollout_failed(&app, "staging", "v5").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.requests("/hook").len(), 1);
    assert_eq!(receiver.requests("/slack").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_team_manual_deployments_and_freezes() {
    let (fake, receiver) = fake_receiver().await;
    let app = spawn(&fake).await;
    // Frontend (no team): production is manual, so a new staging version needs a
    // manual deployment: the site-wide webhook hears it, the team's Slack does not.
    app.notify_ok("alphagov/frontend", "staging", "release_9")
        .await;
    let hook = receiver.wait_for("/hook", 1).await;
    assert_eq!(hook[0].1["event"], "needs_manual_deployment");
    assert_eq!(hook[0].1["environment"], "production");
    assert_eq!(hook[0].1["behind"], "staging");
    assert_eq!(hook[0].1["version"], "release_9");
    // Content Store's production is continuously deployed: nothing to alert.
    app.notify_ok("alphagov/content-store", "staging", "v6")
        .await;

    // A site-wide freeze, set and lifted by an admin: site-wide receivers only.
    let admin = app.signed_in("admin").await;
    app.expect(&admin, "freeze", &[("reason", "Black Friday")], 200)
        .await;
    app.expect(&admin, "unfreeze", &[], 200).await;
    let hook = receiver.wait_for("/hook", 3).await;
    let mut events: Vec<&str> = hook
        .iter()
        .map(|(_, b)| b["event"].as_str().unwrap())
        .collect();
    // Alerts due together are sent together: their order is not promised.
    events[1..].sort_unstable();
    assert_eq!(
        events,
        ["needs_manual_deployment", "freeze_lifted", "freeze_set"]
    );
    let set = hook
        .iter()
        .find(|(_, b)| b["event"] == "freeze_set")
        .unwrap();
    assert_eq!(set.1["message"], "Black Friday");
    assert_eq!(set.1["actor"], "demo-admin");
    assert!(receiver.requests("/slack").is_empty());

    // An admin's test message goes to the one receiver asked, and is audited.
    app.expect(
        &admin,
        "alert_test",
        &[("receiver", "publishing-slack")],
        200,
    )
    .await;
    let slack = receiver.wait_for("/slack", 1).await;
    assert_eq!(
        slack[0].1["text"],
        "Test message from Release, sent by demo-admin"
    );
    app.expect(&admin, "alert_test", &[("receiver", "nobody")], 404)
        .await;
    let viewer = app.signed_in("viewer").await;
    app.expect(&viewer, "alert_test", &[("receiver", "hook")], 403)
        .await;
    app.expect(&viewer, "alerts", &[], 403).await;
    let overview = app.expect(&admin, "alerts", &[], 200).await;
    assert!(overview.contains("\"state\":\"delivered\""), "{overview}");
    assert!(!overview.contains(SECRET), "admins see no secrets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_the_alert_once_it_is_up() {
    let (fake, receiver) = fake_receiver().await;
    receiver.status.store(503, Ordering::SeqCst);
    let app = spawn(&fake).await;
    rollout_failed(&app, "production", "v7").await;
    // Refused twice or more (with backoff), then up.
    receiver.wait_for("/hook", 2).await;
    receiver.status.store(0, Ordering::SeqCst);
    let attempts = receiver.requests("/hook").len();
    let mut delivered = None;
    for _ in 0..100 {
        let rows = app.store.recent_deliveries(20).await.unwrap();
        if let Some(d) = rows
            .iter()
            .find(|d| d.receiver == "hook" && d.state == "delivered")
        {
            delivered = Some(d.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = delivered.expect("delivered once the receiver is up");
    assert!(d.attempts >= 3, "{d:?}");
    assert_eq!(d.last_status, Some(200));
    assert!(receiver.requests("/hook").len() > attempts);
    // The API never waited for the receiver: a notification answers at once meanwhile.
    receiver.status.store(503, Ordering::SeqCst);
    let started = std::time::Instant::now();
    app.notify_ok("alphagov/content-store", "staging", "v8")
        .await;
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// The third review's finding 6: a receiver's error answer cannot forge a log line (or
/// a terminal sequence): it is stored, shown and logged with its control characters
/// escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receivers_error_answer_is_stored_printable() {
    let (fake, receiver) = fake_receiver().await;
    receiver.status.store(500, Ordering::SeqCst);
    *receiver.answer.lock().unwrap() =
        Some("oops\n2026-12-06T00:00:00Z INFO release: sign-in ok login=admin\u{1b}[2J".into());
    let app = spawn(&fake).await;
    rollout_failed(&app, "production", "v7").await;
    receiver.wait_for("/hook", 1).await;
    let mut error = None;
    for _ in 0..100 {
        let rows = app.store.recent_deliveries(20).await.unwrap();
        if let Some(e) = rows
            .iter()
            .find(|d| d.receiver == "hook")
            .and_then(|d| d.last_error.clone())
        {
            error = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error = error.expect("the refusal is recorded");
    assert_eq!(
        error,
        "HTTP 500: oops\\n2026-12-06T00:00:00Z INFO release: sign-in ok login=admin\\u{1b}[2J"
    );
    assert!(!error.chars().any(char::is_control), "{error:?}");
}

/// The real binary, killed with SIGKILL after the change is committed and before its
/// alert could be delivered (the receiver is down), then started again on the same
/// database with the receiver up: the alert is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_survives_kill_9() {
    let (fake, receiver) = fake_receiver().await;
    receiver.status.store(503, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("release.db").display());
    let config_path = dir.path().join("release.toml");
    std::fs::write(&config_path, config(&fake)).unwrap();
    let envs = app::domain::Environments::new(&[
        "integration".into(),
        "staging".into(),
        "production".into(),
    ])
    .unwrap();
    let store = app::store::Store::connect(&db, envs).await.unwrap();
    store.migrate().await.unwrap();
    let token = common::pipeline_token(&store).await;

    let start = || {
        let port = common::binary::free_port();
        let config_file = config_path.to_str().unwrap();
        let child = common::binary::serve(
            port,
            &[
                "--database-url",
                &db,
                "--config",
                config_file,
                "--dev-sign-in",
            ],
            &[("RELEASE_ALERT_SECRET_HOOK", SECRET)],
        );
        (format!("http://127.0.0.1:{port}"), child)
    };
    let client = common::http_client_within(Duration::from_secs(10));
    let ready = |base: String| async move {
        common::binary::wait_ready_within(&base, 300, Duration::from_millis(100)).await
    };

    let (base, mut first) = start();
    ready(base.clone()).await;
    let r = common::send(
        client
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(&token)
            .json(
                &json!({"repo": "alphagov/content-store", "environment": "staging", "version": "v9",
            "stage": "smoke_tests", "status": "failed"}),
            ),
    )
    .await;
    assert_eq!(r.status(), 200);
    receiver.wait_for("/hook", 1).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let before = receiver.requests("/hook").len();

    receiver.status.store(0, Ordering::SeqCst);
    let (base, _second) = start();
    ready(base).await;
    let mut delivered = false;
    // A delivery claimed by the killed server when it died waits for its lease (20 s).
    for _ in 0..350 {
        let rows = store.recent_deliveries(20).await.unwrap();
        if rows
            .iter()
            .any(|d| d.receiver == "hook" && d.state == "delivered")
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "delivered by the restarted server");
    let hook = receiver.requests("/hook");
    assert!(hook.len() > before);
    assert_eq!(hook.last().unwrap().1["version"], "v9");
}

/// A manual deploy's request alerts in its own transaction; once it has heard nothing for
/// the stall time it alerts once more as stalled, and only once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_request_and_its_stall_are_alerted_once() {
    let (fake, _receiver) = fake_receiver().await;
    let app = spawn(&fake).await;
    let store = &app.store;
    let intent = common::begin_deploy(
        store,
        "alphagov/frontend",
        "staging",
        "v42",
        "octocat",
        30 * 60_000,
    )
    .await
    .unwrap();
    // The request alerts once GitHub took it, with its run.
    assert!(store
        .finish_dispatch(
            intent.dispatch_id,
            &app::store::Outcome::Dispatched {
                run_url: Some("https://github.example/runs/1".into())
            },
            &app::store::NewAudit {
                actor: "octocat",
                action: "deploy",
                application: Some("frontend"),
                environment: Some("staging"),
                outcome: "dispatched",
                detail: "v42 to staging",
            },
        )
        .await
        .unwrap());
    let kinds = || async {
        sqlx::query_scalar::<_, String>("SELECT kind FROM alert_events ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap()
    };
    assert_eq!(kinds().await, ["deploy_requested"]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Not stalled yet with a 10-minute stall time; stalled with a 10 ms one, once.
    assert_eq!(store.alert_stalled_deploys(600_000).await.unwrap(), 0);
    assert_eq!(store.alert_stalled_deploys(10).await.unwrap(), 1);
    assert_eq!(store.alert_stalled_deploys(10).await.unwrap(), 0);
    assert_eq!(kinds().await, ["deploy_requested", "deployment_stalled"]);
    let payload: String =
        sqlx::query_scalar("SELECT payload FROM alert_events WHERE kind = 'deployment_stalled'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["application"], "frontend");
    assert_eq!(payload["version"], "v42");
    assert_eq!(payload["actor"], "octocat");
    assert_eq!(payload["workflow_url"], "https://github.example/runs/1");
}
