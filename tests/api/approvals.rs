//! Approvals of GitHub environments from Release, against a fake GitHub that serves a run's
//! pending deployments (with ETags), takes reviews and shows an environment's protection
//! rules: the webhook's signature (right, wrong, missing, replayed, too large), the waiting
//! run shown, self-review refused, approve and reject with the person's own token and the
//! exact request, and polling that costs a 304 when nothing changed.

use crate::common::{self, fake_github::*, TestApp};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "webhook-secret-for-tests";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn webhook(
    env: &TestApp,
    event: &str,
    delivery: &str,
    body: &[u8],
    signature: Option<String>,
) -> (u16, String) {
    let mut r = env
        .client
        .post(env.url("/api/v1/github/webhook"))
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .body(body.to_vec());
    if let Some(s) = signature {
        r = r.header("x-hub-signature-256", s);
    }
    let r = common::send(r).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `webhook` with the body signed with the right secret.
async fn signed(env: &TestApp, event: &str, delivery: &str, body: &[u8]) -> (u16, String) {
    webhook(env, event, delivery, body, Some(sign(body))).await
}

/// GitHub's `workflow_job` event, action `waiting`, for `run_id` of `repo`.
fn waiting(repo: &str, run_id: i64) -> Vec<u8> {
    json!({
        "action": "waiting",
        "workflow_job": {"id": 29679449, "run_id": run_id, "run_attempt": 1, "head_sha": CHECKED_SHA,
            "status": "waiting", "workflow_name": "Deploy", "name": "deploy", "labels": ["ubuntu-latest"]},
        "deployment": {"id": 1, "environment": "production", "task": "deploy", "original_environment": "production"},
        "repository": {"id": 1296269, "name": repo.split('/').nth(1).unwrap(), "full_name": repo},
        "sender": {"login": "github-actions[bot]"}
    })
    .to_string()
    .into_bytes()
}

fn pending(env_id: i64) -> Value {
    json!({"environment": {"id": env_id, "node_id": "MDExOkVudmlyb25tZW50", "name": "production",
            "url": "https://api.github.example/repos/x/y/environments/production", "html_url": "https://github.example/x/y/deployments/activity_log?environments_filter=production"},
        "wait_timer": 30, "wait_timer_started_at": "2026-12-06T10:00:40Z",
        "reviewers": [{"type": "User", "reviewer": {"login": "boss", "id": 1}},
                      {"type": "Team", "reviewer": {"slug": "release-admins", "id": 1}}]})
}

async fn run_of(env: &TestApp, shortname: &str) -> (i64, i64) {
    let (id, url): (i64, String) = sqlx::query_as(
        "SELECT d.id, d.run_url FROM deployments d JOIN applications a ON a.id = d.application_id WHERE a.shortname = $1 AND d.run_url IS NOT NULL ORDER BY d.id DESC LIMIT 1",
    )
    .bind(shortname)
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    (id, url.rsplit('/').next().unwrap().parse().unwrap())
}

/// prod-person (production's deployer) dispatches `version` of `app` to production;
/// boss is an admin. Prod-person's client, the deployment and GitHub's run id.
async fn dispatched_to_production(
    env: &TestApp,
    app: &str,
    version: &str,
) -> (reqwest::Client, i64, i64) {
    env.member("prod-person", &[]);
    env.member("boss", &["release-admins"]);
    let prod = env.sign_in("prod-person").await;
    env.expect(
        &prod,
        "deploy",
        &[
            ("shortname", app),
            ("environment", "production"),
            ("git_ref", version),
            ("confirm", "yes"),
        ],
        200,
    )
    .await;
    let (deployment_id, run_id) = run_of(env, app).await;
    (prod, deployment_id, run_id)
}

/// A server with GitHub's webhook secret and polling as good as off: the test drives
/// the webhook.
async fn webhook_driven() -> TestApp {
    TestApp::builder()
        .github()
        .settings(|s| {
            s.alert_env
                .insert("RELEASE_GITHUB_WEBHOOK_SECRET".into(), SECRET.into());
            s.alert_poll = Duration::from_secs(60);
        })
        .spawn()
        .await
}

async fn count(env: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(env.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_is_shown_and_approved_from_release_by_someone_else() {
    let env = webhook_driven().await;
    let (prod, deployment_id, run_id) = dispatched_to_production(&env, "router", "v1201").await;
    {
        let mut f = env.fake.lock().unwrap();
        f.pending.insert(run_id, vec![pending(161088068)]);
        f.approvers.insert("boss".into());
        f.approvers.insert("prod-person".into());
        f.prevent_self_review = true;
    }
    let body = waiting("example-org/router", run_id);

    // Unsigned, wrongly signed, or too large: refused, nothing recorded.
    assert_eq!(
        webhook(&env, "workflow_job", "d-1", &body, None).await.0,
        401
    );
    let wrong = sign(b"another body");
    assert_eq!(
        webhook(&env, "workflow_job", "d-1", &body, Some(wrong))
            .await
            .0,
        401
    );
    let huge = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(signed(&env, "workflow_job", "d-2", &huge).await.0, 413);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM approvals").await, 0);
    // Up to 1 MiB is taken (GitHub's payloads are larger than the pipeline's): an event
    // Release does not read is accepted and ignored.
    let big = json!({"action": "completed", "padding": "x".repeat(300 * 1024)})
        .to_string()
        .into_bytes();
    let (s, b) = signed(&env, "push", "d-big", &big).await;
    assert_eq!(s, 202, "{b}");
    // A repository Release does not know: accepted and ignored.
    let other = waiting("someone/else", 5);
    let (s, b) = signed(&env, "workflow_job", "d-3", &other).await;
    assert_eq!((s, b.contains("ignored")), (202, true), "{b}");

    // The real one: recorded with GitHub's reviewers (read as the dispatcher), audited and
    // alerted once; the same delivery again changes nothing.
    let (s, b) = signed(&env, "workflow_job", "d-4", &body).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = signed(&env, "workflow_job", "d-4", &body).await;
    assert_eq!((s, b.contains("already processed")), (200, true), "{b}");
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM alert_events WHERE kind = 'approval_requested'"
        )
        .await,
        1
    );
    let read = env.fake.lock().unwrap().review_calls[0].0.clone();
    assert_eq!(
        read.path,
        format!("/api/repos/example-org/router/actions/runs/{run_id}/pending_deployments")
    );
    assert!(
        read.headers["authorization"].starts_with("Bearer gho_prod-person."),
        "the dispatcher's token"
    );
    let page = env.get_text(&prod, "/applications/router").await;
    assert!(
        page.contains("waiting for approval in production: 0 min, reviewers: @boss, team release-admins (wait timer 30 min)"),
        "the app's page"
    );
    let grid = env.get_text(&prod, "/").await;
    assert!(
        grid.contains("waiting for approval in production"),
        "the grid"
    );

    // The person who dispatched it may not review it here (prevent_self_review).
    let review = |c: &reqwest::Client, decision: &'static str| {
        let id = deployment_id.to_string();
        let c = c.clone();
        let base = env.base.clone();
        async move {
            common::call(
                &base,
                &c,
                "review_deployment",
                &[
                    ("deployment_id", &id),
                    ("decision", decision),
                    ("comment", "ship it"),
                ],
            )
            .await
        }
    };
    let (s, b) = review(&prod, "approve").await;
    assert_eq!(s, 403, "{b}");
    assert!(b.contains("self-review"), "{b}");
    let posts = |env: &TestApp| {
        env.fake
            .lock()
            .unwrap()
            .review_calls
            .iter()
            .filter(|c| c.0.method == "POST")
            .count()
    };
    assert_eq!(posts(&env), 0);

    // Someone else approves, with their own token: the exact request, recorded, alerted.
    let boss = env.sign_in("boss").await;
    let (s, b) = review(&boss, "approve").await;
    assert_eq!(s, 200, "{b}");
    let post = env
        .fake
        .lock()
        .unwrap()
        .review_calls
        .iter()
        .find(|c| c.0.method == "POST")
        .unwrap()
        .clone();
    assert_eq!(
        post.0.path,
        format!("/api/repos/example-org/router/actions/runs/{run_id}/pending_deployments")
    );
    assert!(post.0.headers["authorization"].starts_with("Bearer gho_boss."));
    assert_eq!(
        post.0.body,
        json!({"environment_ids": [161088068], "state": "approved", "comment": "ship it"})
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM approvals WHERE state = 'approved' AND decided_by = 'boss'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM alert_events WHERE kind = 'approved'"
        )
        .await,
        1
    );
    let audit = env.audit(Some("router"), 10).await;
    assert!(audit.iter().any(|a| a.action == "approval"
        && a.outcome == "approved"
        && a.actor == "boss"
        && a.detail.contains("ship it")));
    // A late or replayed event, signed, with a new delivery id: GitHub (asked as the
    // dispatcher) says nothing waits, and the decision stands.
    let (s, b) = signed(&env, "workflow_job", "d-5", &body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM approvals WHERE state = 'approved'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM alert_events WHERE kind = 'approval_requested'"
        )
        .await,
        1
    );
    // Nothing waits any more: a second review is refused without calling GitHub.
    let (s, _) = review(&boss, "reject").await;
    assert_eq!(s, 409);
    assert_eq!(posts(&env), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_finds_a_waiting_run_with_etags_and_a_rejection_is_recorded() {
    let env = TestApp::builder()
        .github()
        .settings(|s| s.alert_poll = Duration::from_millis(50)) // polls every 750 ms
        .spawn()
        .await;
    let (_prod, deployment_id, run_id) = dispatched_to_production(&env, "signon", "v941").await;
    {
        let mut f = env.fake.lock().unwrap();
        f.pending.insert(run_id, vec![pending(7)]);
        f.approvers.insert("boss".into());
    }
    // No webhook: the poller finds it, then asks again with the ETag and gets 304s.
    let mut found = false;
    for _ in 0..100 {
        if count(
            &env,
            "SELECT COUNT(*) FROM approvals WHERE state = 'waiting'",
        )
        .await
            == 1
        {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the poller found the waiting run");
    let mut not_modified = false;
    for _ in 0..50 {
        let calls = env.fake.lock().unwrap().review_calls.clone();
        if calls
            .iter()
            .any(|(r, status)| *status == 304 && r.headers.contains_key("if-none-match"))
        {
            not_modified = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(not_modified, "an unchanged run costs a 304");
    // A reviewer GitHub does not let approve is told so before anything is sent.
    env.member("octocat", &["developers"]);
    let boss = env.sign_in("boss").await;
    env.expect(
        &boss,
        "review_deployment",
        &[
            ("deployment_id", &deployment_id.to_string()),
            ("decision", "reject"),
            ("comment", "not today"),
        ],
        200,
    )
    .await;
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM approvals WHERE state = 'rejected' AND decided_by = 'boss'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM alert_events WHERE kind = 'rejected'"
        )
        .await,
        1
    );
    // Decided: the poller sees no wait and leaves the decision as it is.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM approvals WHERE state = 'rejected'"
        )
        .await,
        1
    );
    // A bad decision word and someone without the deploy role for production.
    let dev = env.sign_in("octocat").await;
    for (who, decision, status) in [(&boss, "maybe", 422), (&dev, "approve", 403)] {
        env.expect(
            who,
            "review_deployment",
            &[
                ("deployment_id", &deployment_id.to_string()),
                ("decision", decision),
            ],
            status,
        )
        .await;
    }
}

/// A GitHub App's `deployment_review` event for `run_id` of example-org/router, as [WH]
/// shapes it; `approver` for `approved` and `rejected`.
fn review_event(action: &str, run_id: i64, approver: Option<&str>) -> Vec<u8> {
    let mut e = json!({
        "action": action, "environment": "production", "since": "2026-12-06T10:00:40Z",
        "requestor": {"login": "prod-person", "type": "User"},
        "reviewers": [{"type": "Team", "reviewer": {"slug": "release-admins", "id": 1}}],
        "workflow_run": {"id": run_id, "head_sha": CHECKED_SHA, "actor": {"login": "prod-person"},
            "triggering_actor": {"login": "prod-person"}},
        "workflow_job_run": {"id": 29679449, "status": "waiting"},
        "repository": {"id": 1296269, "name": "router", "full_name": "example-org/router"},
        "installation": {"id": 777},
        "sender": {"login": approver.unwrap_or("github-actions[bot]")}
    });
    if let Some(a) = approver {
        e["approver"] = json!({"login": a, "type": "User"});
        e["comment"] = json!("looks good");
    }
    e.to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_apps_deployment_review_events_are_read_too() {
    let env = webhook_driven().await;
    let (_prod, deployment_id, run_id) = dispatched_to_production(&env, "router", "v1202").await;
    env.fake
        .lock()
        .unwrap()
        .pending
        .insert(run_id, vec![pending(161088068)]);
    let state = || async {
        sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT state, decided_by FROM approvals WHERE deployment_id = $1",
        )
        .bind(deployment_id)
        .fetch_one(env.store.pool())
        .await
        .unwrap()
    };

    // Unsigned: refused, nothing recorded.
    let requested = review_event("requested", run_id, None);
    assert_eq!(
        webhook(&env, "deployment_review", "r-1", &requested, None)
            .await
            .0,
        401
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM approvals").await, 0);
    // Requested: the wait is shown, with GitHub's reviewers.
    let (s, body) = signed(&env, "deployment_review", "r-1", &requested).await;
    assert_eq!((s, body.as_str()), (200, r#"{"status":"recorded"}"#));
    assert_eq!(state().await, ("waiting".to_string(), None));

    // Approved on GitHub: recorded as GitHub says, audited once.
    let approved = review_event("approved", run_id, Some("boss"));
    let (s, _) = signed(&env, "deployment_review", "r-2", &approved).await;
    assert_eq!(s, 200);
    assert_eq!(
        state().await,
        ("approved".to_string(), Some("boss (on GitHub)".to_string()))
    );
    // A replay, and a late rejection: nothing changes.
    let (s, body) = signed(&env, "deployment_review", "r-2", &approved).await;
    assert_eq!(
        (s, body.as_str()),
        (200, r#"{"status":"already processed"}"#)
    );
    let rejected = review_event("rejected", run_id, Some("mallory"));
    signed(&env, "deployment_review", "r-3", &rejected).await;
    assert_eq!(state().await.0, "approved");
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'approval' AND outcome = 'approved'"
        )
        .await,
        1
    );
    // Another action, or no run: ignored.
    let other = review_event("dismissed", run_id, None);
    assert_eq!(
        signed(&env, "deployment_review", "r-4", &other).await.0,
        202
    );
}
