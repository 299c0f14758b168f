//! The pipeline API, over real HTTP against the real server.

use crate::common;

use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_is_recorded_with_the_release_app_answer() {
    let app = common::TestApp::builder().spawn().await;
    let r = app
        .notify("alphagov/content-store", "staging", "v1234")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "",
        "the Release app answers with an empty body"
    );

    let body = app.get_json_ok("/api/v1/applications").await;
    let cs = body["applications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["shortname"] == "content-store")
        .unwrap();
    assert_eq!(cs["environments"]["staging"]["current"]["version"], "v1234");
    assert_eq!(
        cs["environments"]["staging"]["current"]["status"],
        "succeeded"
    );
    assert_eq!(cs["environments"]["integration"]["current"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_repo_creates_the_application() {
    let app = common::TestApp::builder().spawn().await;
    app.notify_ok("trade-tariff/tariff-backend", "integration", "v9")
        .await;
    let body = app.get_json_ok("/applications/tariff-backend.json").await;
    assert_eq!(
        body,
        json!({
            "name": "Tariff Backend",
            "shortname": "tariff-backend",
            "deploy_freeze": false,
            "notes": null,
            "repository_url": "https://github.com/trade-tariff/tariff-backend",
            "repository_default_branch": "main",
            "continuously_deployed": true
        })
    );
    // Same repo name, other owner: a distinct application.
    app.notify_ok("other/tariff-backend", "integration", "v1")
        .await;
    app.get_json_ok("/applications/other-tariff-backend.json")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_app_json_for_a_declared_app() {
    let app = common::TestApp::builder().spawn().await;
    let body = app.get_json_ok("/applications/frontend.json").await;
    assert_eq!(body["continuously_deployed"], false);
    assert_eq!(
        body["repository_url"],
        "https://github.com/alphagov/frontend"
    );
    let (status, body) = app.get_json("/applications/nope.json").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no application nope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_repo_is_a_conflict() {
    let app = common::TestApp::builder().spawn().await;
    let r = app.notify("alphagov/mono", "staging", "v1").await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("ambiguous"),
        "{body}"
    );
    assert_eq!(app.store.deployment_count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked() {
    let app = common::TestApp::builder().spawn().await;
    let body = json!({"repo": "alphagov/frontend", "deployment": {"environment": "staging", "version": "v1"}});
    let deployments = || app.client.post(app.url("/deployments")).json(&body);
    let r = common::send(deployments()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let e: Value = r.json().await.unwrap();
    assert!(e["error"]
        .as_str()
        .unwrap()
        .contains("missing Authorization"));

    let r = common::send(deployments().bearer_auth("rel_wrong")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\"",
        "RFC 6750, as the Release app answers"
    );
    let r = common::send(deployments().header("Authorization", "Basic abc")).await;
    assert_eq!(r.status(), 401);

    app.store
        .revoke_token(&app.store.list_tokens().await.unwrap()[0].name.clone())
        .await
        .unwrap();
    let r = common::send(deployments().bearer_auth(&app.token)).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let (status, _) = app.get_json("/api/v1/applications").await;
    assert_eq!(status, 401);
    assert_eq!(app.store.deployment_count().await.unwrap(), 0);
}

async fn expect_error(r: reqwest::Response, status: u16, field: Option<&str>, contains: &str) {
    assert_eq!(r.status().as_u16(), status);
    let body: Value = r.json().await.expect("errors are JSON");
    if let Some(field) = field {
        assert_eq!(body["field"], field, "{body}");
    }
    assert!(
        body["error"].as_str().unwrap().contains(contains),
        "{body} should mention {contains:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notifications_get_precise_answers() {
    let app = common::TestApp::builder().spawn().await;
    let app = &app;
    let cases = [
        (
            json!({"repo": "alphagov/frontend", "deployment": {"environment": "prod", "version": "v1"}}),
            Some("deployment.environment"),
            "unknown environment",
        ),
        (
            json!({"repo": "not a repo", "deployment": {"environment": "staging", "version": "v1"}}),
            Some("repo"),
            "owner/name",
        ),
        (
            json!({"repo": "a/b", "deployment": {"environment": "staging", "version": "v1..2"}}),
            Some("deployment.version"),
            "not a valid git ref",
        ),
        (
            json!({"repo": "a/b", "deployment": {"environment": "staging", "version": "v1", "sha": "xyz"}}),
            Some("deployment.sha"),
            "SHA",
        ),
        (
            json!({"repo": "a/b", "deployment": {"environment": "staging", "version": "v1", "created_at": "yesterday"}}),
            Some("deployment.created_at"),
            "RFC 3339",
        ),
        (
            json!({"repo": "a/b", "deployment": {"environment": "staging", "version": "v1", "trigger": "magic"}}),
            Some("deployment.trigger"),
            "unknown trigger",
        ),
        (json!({"repo": "a/b"}), None, "missing field `deployment`"),
        (
            json!({"repo": 5, "deployment": {"environment": "staging", "version": "v1"}}),
            Some("repo"),
            "invalid type",
        ),
    ];
    for (body, field, contains) in cases {
        expect_error(
            app.post_json("/deployments", &body).await,
            422,
            field,
            contains,
        )
        .await;
    }

    let raw = |body: String, ct: &'static str| {
        let request = app.client.post(app.url("/deployments"));
        common::send(
            request
                .bearer_auth(&app.token)
                .header("content-type", ct)
                .body(body),
        )
    };
    let big = format!("{{\"repo\": \"{}\"}}", "a".repeat(100_000));
    let cases = [
        (
            "{not json".to_string(),
            "application/json",
            400,
            None,
            "malformed JSON",
        ),
        (
            String::new(),
            "application/json",
            400,
            None,
            "malformed JSON",
        ),
        (
            "repo=a".to_string(),
            "text/plain",
            415,
            None,
            "application/json",
        ),
        (
            "repo=alphagov%2Ffrontend".to_string(),
            "application/x-www-form-urlencoded",
            422,
            Some("deployment.environment"),
            "missing",
        ),
        (big, "application/json", 413, None, "larger than"),
    ];
    for (body, ct, status, field, contains) in cases {
        expect_error(raw(body, ct).await, status, field, contains).await;
    }
    assert_eq!(
        app.store.deployment_count().await.unwrap(),
        0,
        "nothing recorded from bad input"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_fields_are_kept() {
    let app = common::TestApp::builder().spawn().await;
    let r = app
        .post_json(
            "/deployments",
            &json!({"repo": "alphagov/frontend", "deployment": {"environment": "production", "version": "v7",
                "sha": "ABCDEF1234567", "deployed_by": "sam.jones", "trigger": "manual", "created_at": "2026-11-01T10:00:00Z"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, body) = app.get_json("/api/v1/applications/frontend").await;
    let cur = &body["environments"]["production"]["current"];
    assert_eq!(cur["sha"], "abcdef1234567");
    assert_eq!(cur["deployed_by"], "sam.jones");
    assert_eq!(cur["trigger"], "manual");
    assert_eq!(cur["created_at"], "2026-11-01T10:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_drive_the_status_and_attach_to_the_deployment() {
    let app = common::TestApp::builder().spawn().await;
    app.notify_ok("alphagov/content-store", "integration", "v10")
        .await;
    let ev = |stage: &str, status: &str| {
        json!({"repo": "alphagov/content-store", "environment": "integration", "version": "v10", "stage": stage, "status": status,
               "workflow": {"environment": "integration", "namespace": "apps", "name": "post-sync-abc", "url": "https://argo.example/workflows/apps/post-sync-abc"}})
    };
    let r = app.event(ev("rollout", "succeeded")).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["deployment_status"], "in_progress");
    assert_eq!(body["created_deployment"], false);
    let body = app.event_json(ev("smoke_tests", "failed")).await;
    assert_eq!(body["deployment_status"], "failed");
    let (_, apps) = app.get_json("/api/v1/applications/content-store").await;
    assert_eq!(
        apps["environments"]["integration"]["current"]["failed_stage"],
        "smoke_tests"
    );
    assert!(apps["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["kind"] == "last_deployment_failed"));
    let body = app.event_json(ev("smoke_tests", "succeeded")).await;
    assert_eq!(body["deployment_status"], "succeeded");
    assert_eq!(
        app.store.deployment_count().await.unwrap(),
        1,
        "events attached to the notified deployment"
    );

    let (_, page) = app.page("/applications/content-store").await;
    assert!(
        page.contains("https://argo.example/workflows/apps/post-sync-abc"),
        "the timeline links the workflow"
    );
    assert!(page.contains("View workflow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_before_the_notification_lose_nothing() {
    let app = common::TestApp::builder().spawn().await;
    let body = app
        .event_ok(json!({"repo": "alphagov/frontend", "environment": "staging", "version": "v3", "stage": "build", "status": "started", "at": "2026-11-27T10:00:00Z"}))
        .await;
    assert_eq!(body["created_deployment"], true);
    // The notification arrives afterwards and attaches to the same deployment.
    assert_eq!(
        app.post_json("/deployments", &json!({"repo": "alphagov/frontend", "deployment": {"environment": "staging", "version": "v3", "deployed_by": "li.wei"}})).await.status(),
        200
    );
    assert_eq!(app.store.deployment_count().await.unwrap(), 1);
    let (_, a) = app.get_json("/api/v1/applications/frontend").await;
    assert_eq!(
        a["environments"]["staging"]["current"]["deployed_by"],
        "li.wei"
    );
    assert_eq!(
        a["environments"]["staging"]["current"]["status"],
        "in_progress"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_delivery_changes_nothing() {
    let app = common::TestApp::builder().spawn().await;
    let body = json!({"repo": "alphagov/frontend", "environment": "integration", "version": "v3", "stage": "smoke_tests", "status": "failed", "delivery_id": "d-1"});
    let first = app.event_json(body.clone()).await;
    let r = app.event(body.clone()).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    assert_eq!(first, second);
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(events, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_get_precise_answers() {
    let app = common::TestApp::builder().spawn().await;
    let base = json!({"repo": "alphagov/frontend", "environment": "integration", "version": "v3", "stage": "sync", "status": "started"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        ("stage", json!("deploy"), "unknown stage"),
        ("status", json!("done"), "unknown status"),
        ("environment", json!("qa"), "unknown environment"),
        ("version", json!("-rf"), "git ref"),
        ("workflow", json!({"url": "javascript:alert(1)"}), "http(s)"),
        ("message", json!("x".repeat(3000)), "longer than"),
        ("at", json!("soon"), "RFC 3339"),
        ("delivery_id", json!(""), "printable"),
    ];
    for (field, value, contains) in cases {
        // A nested field is named by its path.
        let named = if field == "workflow" {
            "workflow.url"
        } else {
            field
        };
        expect_error(
            app.event(with(field, value)).await,
            422,
            Some(named),
            contains,
        )
        .await;
    }
    assert_eq!(app.store.deployment_count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthchecks() {
    let app = common::TestApp::builder().spawn().await;
    let get = |path: &str| common::send(app.client.get(app.url(path)));
    assert_eq!(get("/healthcheck/live").await.status(), 200);
    let r = get("/healthcheck/ready").await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["database"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_notification_sent_late_does_not_replace_a_newer_one() {
    let app = common::TestApp::builder().spawn().await;
    let send = |v: &str, at: &str| json!({"repo": "alphagov/frontend", "deployment": {"environment": "integration", "version": v, "created_at": at}});
    assert_eq!(
        app.post_json("/deployments", &send("v2", "2026-11-27T10:00:00Z"))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_json("/deployments", &send("v1", "2026-11-27T09:00:00Z"))
            .await
            .status(),
        200
    );
    let (_, a) = app.get_json("/api/v1/applications/frontend").await;
    assert_eq!(a["environments"]["integration"]["current"]["version"], "v2");
}

/// Group commit: notifications sent at once share transactions; one that is refused (a
/// repo matching two applications) gets its 409 and spoils none of the others, and every
/// 200 is a row in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_notifications_share_commits_and_a_refused_one_spoils_none() {
    let app = std::sync::Arc::new(common::TestApp::builder().spawn().await);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let repo = if i % 10 == 3 {
                "alphagov/mono".to_string()
            } else {
                format!("alphagov/batch-{i}")
            };
            let r = app.notify(&repo, "staging", &format!("v{i}")).await;
            (i, r.status().as_u16())
        }));
    }
    for t in tasks {
        let (i, status) = t.await.unwrap();
        let expected = if i % 10 == 3 { 409 } else { 200 };
        assert_eq!(status, expected, "notification {i}");
    }
    let (apps, deployments): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM applications WHERE repo LIKE 'alphagov/batch-%'),
                (SELECT COUNT(*) FROM deployments d JOIN applications a ON a.id = d.application_id
                 WHERE a.repo LIKE 'alphagov/batch-%')",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    assert_eq!((apps, deployments), (54, 54));
}

/// The Release app's form body, as its older clients (the Capistrano task, the live
/// `notify-release` step's curl) send it: recorded like the JSON one; the fields with no
/// counterpart are ignored; bad values are refused naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_encoded_notification_is_recorded() {
    let app = common::TestApp::builder().spawn().await;
    let form = [
        ("repo", "alphagov/frontend"),
        ("deployment[environment]", "staging"),
        ("deployment[version]", "release_42"),
        (
            "deployment[deployed_sha]",
            "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
        ),
        ("deployment[jenkins_user_name]", "Jenkins Person"),
        ("deployment[jenkins_user_email]", "ci@example.org"),
        ("application_by_name", "true"),
        ("application_name", "Frontend"),
    ];
    app.notify_form_ok(&form).await;
    let body = app.get_json_ok("/api/v1/applications/frontend").await;
    let text = body.to_string();
    assert!(text.contains("release_42"), "{text}");
    assert!(text.contains("Jenkins Person"), "{text}");
    assert!(
        text.contains("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"),
        "{text}"
    );
    let moon = [
        ("repo", "alphagov/frontend"),
        ("deployment[environment]", "moon"),
        ("deployment[version]", "v1"),
    ];
    let r = app.post_form("/deployments", &moon).await;
    expect_error(r, 422, Some("deployment.environment"), "").await;
    // Fields newer clients send empty count as absent.
    let empty_fields = [
        ("repo", "alphagov/frontend"),
        ("deployment[environment]", "integration"),
        ("deployment[version]", "release_43"),
        ("deployment[deployed_sha]", ""),
        ("deployment[jenkins_user_name]", ""),
    ];
    app.notify_form_ok(&empty_fields).await;
}

/// A repo without its owner, or as a GitHub URL, as the Release app's clients send it:
/// resolved to the configured default owner (here the one owner of every declared app);
/// refused with 422 naming `repo` when the server has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_repo_name_belongs_to_the_default_owner() {
    let app = common::TestApp::builder().spawn().await;
    let r = app.notify("content-store", "staging", "release_7").await;
    assert_eq!(r.status(), 200);
    let r = app
        .notify(
            "git@github.com:alphagov/frontend.git",
            "staging",
            "release_8",
        )
        .await;
    assert_eq!(r.status(), 200);
    let (_, body) = app.get_json("/api/v1/applications/content-store").await;
    assert!(body.to_string().contains("release_7"), "{body}");
    let (_, body) = app.get_json("/api/v1/applications/frontend").await;
    assert!(body.to_string().contains("release_8"), "{body}");
    // A bare name the server does not know creates the app under the default owner.
    let r = app.notify("new_app", "integration", "v1").await;
    assert_eq!(r.status(), 200);
    let body = app.get_json_ok("/api/v1/applications/new-app").await;
    assert!(body.to_string().contains("alphagov/new_app"), "{body}");

    // Two owners and no [access] org: no default owner.
    let two = common::TestApp::builder()
        .config("[[applications]]\nrepo = \"a/x\"\n[[applications]]\nrepo = \"b/y\"\n")
        .spawn()
        .await;
    let r = two.notify("x", "staging", "v1").await;
    expect_error(r, 422, Some("repo"), "default_owner").await;
    let r = two.notify("a/x", "staging", "v1").await;
    assert_eq!(r.status(), 200);
}
