//! Gates before a deploy: required CI checks (read from a fake GitHub that serves branch
//! protection, rulesets, commit statuses and paged check runs, as GitHub answers them) and
//! soak time, for Deploy, Promote, a train and the pipeline's promotion gate; overrides
//! audited and alerted.

use crate::common::{self, fake_github::*, TestApp};
use serde_json::{json, Value};

const GATES: &str = r#"
[gates.integration]
required_checks = ["lint"]
[gates.production]
required_checks = []
override = "admins"
[gates.staging]
soak_minutes = 30

[[applications]]
repo = "example-org/brand-new"
"#;

/// A version of an application in an environment: what a deploy asks for, and the
/// deployment whose gate note is read.
type Target<'a> = (&'a str, &'a str, &'a str);

/// `c` deploys `(app, to, git_ref)`, overriding the gates with a reason when one is given.
async fn deploy(
    env: &TestApp,
    c: &reqwest::Client,
    (app, to, git_ref): Target<'_>,
    override_reason: Option<&str>,
) -> (u16, String) {
    let mut form = vec![
        ("shortname", app),
        ("environment", to),
        ("git_ref", git_ref),
        ("confirm", "yes"),
    ];
    if let Some(r) = override_reason {
        form.push(("override_reason", r));
    }
    common::call(&env.base, c, "deploy", &form).await
}

fn dispatches(env: &TestApp) -> usize {
    env.fake.lock().unwrap().dispatches.len()
}

async fn gate_note(env: &TestApp, (app, environment, version): Target<'_>) -> Option<String> {
    sqlx::query_scalar(
        "SELECT d.gate_note FROM deployments d JOIN applications a ON a.id = d.application_id WHERE a.shortname = $1 AND d.environment = $2 AND d.version = $3",
    )
    .bind(app)
    .bind(environment)
    .bind(version)
    .fetch_one(env.store.pool())
    .await
    .unwrap()
}

async fn alerts(env: &TestApp, kind: &str) -> Vec<Value> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM alert_events WHERE kind = $1 ORDER BY id")
            .bind(kind)
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    rows.iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

/// The protection of the fake's default branch, a ruleset, a status and 121 check runs
/// (the one that matters on the second page): `test` fails, `build` runs, `ci/jenkins` is
/// pending, `lint` (configured) is missing.
fn failing_checks(env: &TestApp) {
    let mut check_runs: Vec<Value> = (0..120)
        .map(|i| check_run(&format!("other-{i}"), "completed", Some("success"), 1))
        .collect();
    // The right name from another app does not count for `test` (required from 15368).
    check_runs.push(check_run("test", "completed", Some("success"), 99));
    check_runs.push(check_run("test", "completed", Some("failure"), 15368));
    check_runs.push(check_run("build", "in_progress", None, 15368));
    env.fake.lock().unwrap().checks = Checks {
        protection: Some(
            json!({"enforcement_level": "non_admins", "contexts": ["ci/jenkins", "test"],
            "checks": [{"context": "ci/jenkins", "app_id": null}, {"context": "test", "app_id": 15368}]}),
        ),
        rules: vec![
            json!({"type": "pull_request", "parameters": {"required_approving_review_count": 1}}),
            json!({"type": "required_status_checks", "ruleset_source_type": "Repository", "ruleset_id": 42,
                   "parameters": {"strict_required_status_checks_policy": false,
                                  "required_status_checks": [{"context": "build"}]}}),
        ],
        statuses: vec![
            json!({"context": "ci/jenkins", "state": "pending", "target_url": "https://ci.example/1", "description": "Build queued"}),
        ],
        check_runs,
    };
}

fn passing_checks(env: &TestApp) {
    let mut f = env.fake.lock().unwrap();
    let checks = &mut f.checks;
    checks.statuses = vec![
        json!({"context": "ci/jenkins", "state": "success", "target_url": "https://ci.example/1"}),
        json!({"context": "lint", "state": "success", "target_url": "https://ci.example/2"}),
    ];
    for r in checks.check_runs.iter_mut() {
        if r["name"] == "test" || r["name"] == "build" {
            r["status"] = json!("completed");
            r["conclusion"] = json!("neutral");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_checks_hold_a_deploy_until_they_pass_or_someone_overrides_them() {
    let env = TestApp::github_with(GATES).await;
    env.member("octocat", &["developers"]); // integration
    env.member("prod-person", &[]); // production, not an admin
    env.member("boss", &["release-admins"]);
    failing_checks(&env);
    let dev = env.sign_in("octocat").await;

    // Failing, pending and missing required checks: refused, naming each; nothing sent.
    let frontend = ("frontend", "integration", "v1");
    let (s, body) = deploy(&env, &dev, frontend, None).await;
    assert_eq!(s, 409, "{body}");
    for named in [
        "build pending",
        "ci/jenkins pending",
        "lint missing",
        "test failing",
        "written reason",
    ] {
        assert!(body.contains(named), "{named}: {body}");
    }
    assert_eq!(dispatches(&env), 0);
    // What Release asked GitHub, as the person, segment by segment.
    let reads = env.fake.lock().unwrap().check_reads.clone();
    let paths: Vec<&str> = reads.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "/api/repos/example-org/frontend/branches/main".to_string(),
            "/api/repos/example-org/frontend/rules/branches/main?per_page=100&page=1".to_string(),
            "/api/repos/example-org/frontend/commits/v1/status?per_page=100".to_string(),
            format!("/api/repos/example-org/frontend/commits/{CHECKED_SHA}/check-runs?filter=latest&per_page=100&page=1"),
            format!("/api/repos/example-org/frontend/commits/{CHECKED_SHA}/check-runs?filter=latest&per_page=100&page=2"),
        ]
    );
    for r in &reads {
        assert!(
            r.headers["authorization"].starts_with("Bearer gho_octocat."),
            "{r:?}"
        );
        assert_eq!(r.headers["accept"], "application/vnd.github+json");
    }
    let audit = env.audit(Some("frontend"), 5).await;
    assert_eq!(audit[0].outcome, "refused");
    assert!(
        audit[0].detail.contains("test failing"),
        "{}",
        audit[0].detail
    );

    // All passing (neutral counts as passing): dispatched, no note.
    passing_checks(&env);
    let (s, body) = deploy(&env, &dev, frontend, None).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(dispatches(&env), 1);
    assert_eq!(gate_note(&env, frontend).await, None);
    // The commit the checks were read for is on record with the deployment.
    let sha: Option<String> = sqlx::query_scalar(
        "SELECT d.sha FROM deployments d JOIN applications a ON a.id = d.application_id WHERE a.shortname = 'frontend' AND d.version = 'v1'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(sha.as_deref(), Some(CHECKED_SHA));
    // The preview lists the checks, and renders only http(s) links from GitHub.
    env.fake.lock().unwrap().checks.statuses[1]["target_url"] = json!("javascript:alert(1)");
    let (s, body) = env.preview(&dev, "frontend", "integration", "v2").await;
    assert_eq!(s, 200, "preview: {body}");
    let preview: Value = serde_json::from_str(&body).unwrap();
    let lint = preview["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "lint")
        .unwrap()
        .clone();
    assert_eq!(lint["state"], "success");
    assert_eq!(lint["url"], Value::Null, "{lint}");

    // Failing again: a deployer overrides with a written reason; the deployment says so,
    // the audit names the checks and the reason, and an alert goes out.
    failing_checks(&env);
    let publisher = ("publisher", "integration", "v89");
    let (s, body) = deploy(&env, &dev, publisher, Some("  ")).await;
    assert_eq!(s, 409, "a blank reason is no reason: {body}");
    let reason = "hotfix for incident 42";
    let (s, body) = deploy(&env, &dev, publisher, Some(reason)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(dispatches(&env), 2);
    assert_eq!(
        gate_note(&env, publisher).await.as_deref(),
        Some("checks overridden")
    );
    let audit = env.audit(Some("publisher"), 10).await;
    let over = audit
        .iter()
        .find(|a| a.outcome == "gate override")
        .expect("an override entry");
    assert!(
        over.detail.contains("test failing") && over.detail.contains(reason),
        "{}",
        over.detail
    );
    let sent = alerts(&env, "checks_overridden").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["application"], "publisher");
    assert_eq!(sent[0]["actor"], "octocat");
    assert!(sent[0]["message"].as_str().unwrap().contains(reason));
    // The grid and the app's page say it.
    let octocat = env.sign_in("octocat").await;
    let page = env.get_text(&octocat, "/applications/publisher").await;
    assert!(page.contains("checks overridden"), "the app's page");

    // GitHub will not show the checks (404): fail closed, overridable like a failing check.
    env.fake
        .lock()
        .unwrap()
        .hidden_repos
        .insert("example-org/signon".into());
    let signon = ("signon", "integration", "v941");
    let (s, body) = deploy(&env, &dev, signon, None).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("could not be read"), "{body}");
    let (s, body) = deploy(
        &env,
        &dev,
        signon,
        Some("GitHub is down and this fixes sign-in"),
    )
    .await;
    assert_eq!(s, 200, "{body}");

    // Production's gate: only admins may override. A production deployer may not...
    let prod = env.sign_in("prod-person").await;
    let router = ("router", "production", "v1201");
    let (s, body) = deploy(&env, &prod, router, Some("please")).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.contains("Only admins"), "{body}");
    // ...an admin may.
    let boss = env.sign_in("boss").await;
    let (s, body) = deploy(&env, &boss, router, Some("approved in CAB")).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(alerts(&env, "checks_overridden").await.len(), 3);
    // Every dispatch GitHub received was one the gates let through.
    assert_eq!(dispatches(&env), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_soaks_before_promotion_by_the_pipeline_a_person_or_a_train() {
    let env = TestApp::github_with(GATES).await;
    env.member("boss", &["release-admins"]);
    env.record("example-org/search-api", "integration", "v551")
        .await;
    env.record("example-org/signon", "integration", "v941")
        .await;

    // The pipeline's promotion gate: soaking, with when to ask again.
    let gate = env
        .get_json_ok("/api/v1/applications/search-api/promotion?to=staging")
        .await;
    assert_eq!(gate["allowed"], false, "{gate}");
    assert_eq!(
        gate["reason"],
        "soaking: v551 has run in integration for 0 of 30 minutes"
    );
    let retry = gate["retry_after_seconds"].as_i64().unwrap();
    assert!((1_790..=1_800).contains(&retry), "{retry}");

    // A train skips both apps with the same reason; nothing dispatched.
    let boss = env.sign_in("boss").await;
    let form = [
        ("environment", "staging"),
        ("applications[0]", "search-api"),
        ("applications[1]", "signon"),
    ];
    let train: Value = common::json(&env.expect(&boss, "train", &form, 200).await);
    for item in train["items"].as_array().unwrap() {
        assert_eq!(item["outcome"], "skipped", "{item}");
        assert!(
            item["message"].as_str().unwrap().contains("soaking: v"),
            "{item}"
        );
    }
    assert_eq!(dispatches(&env), 0);

    // Promote: refused, then overridden with a reason (audited and alerted).
    let promote = |reason: Option<&'static str>| {
        let mut form = vec![("shortname", "search-api"), ("environment", "staging")];
        if let Some(r) = reason {
            form.push(("override_reason", r));
        }
        form
    };
    let body = env.expect(&boss, "promote", &promote(None), 409).await;
    assert!(body.contains("for 0 of 30 minutes"), "{body}");
    env.expect(&boss, "promote", &promote(Some("security fix")), 200)
        .await;
    assert_eq!(dispatches(&env), 1);
    assert_eq!(
        gate_note(&env, ("search-api", "staging", "v551"))
            .await
            .as_deref(),
        Some("soak overridden")
    );
    let sent = alerts(&env, "soak_overridden").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["environment"], "staging");

    // The pipeline may name the version it is about to promote: one that never ran in
    // integration has not soaked; an app with nothing there has nothing soaked.
    let (_, gate) = env
        .get_json("/api/v1/applications/signon/promotion?to=staging&version=v999")
        .await;
    assert_eq!(gate["allowed"], false, "{gate}");
    assert!(
        gate["reason"]
            .as_str()
            .unwrap()
            .contains("v999 does not run in integration"),
        "{gate}"
    );
    let (_, gate) = env
        .get_json("/api/v1/applications/brand-new/promotion?to=staging")
        .await;
    assert_eq!(gate["allowed"], false, "{gate}");
    let (s, _) = env
        .get_json("/api/v1/applications/signon/promotion?to=staging&to=production")
        .await;
    assert_eq!(
        s, 422,
        "a repeated parameter is refused as JSON, not a bare 400"
    );

    // Time passes (the test's clock: the deployment succeeded 31 minutes ago): open.
    sqlx::query("UPDATE deployments SET created_at = created_at - 1860000 WHERE version = 'v941'")
        .execute(env.store.pool())
        .await
        .unwrap();
    let (_, gate) = env
        .get_json("/api/v1/applications/signon/promotion?to=staging")
        .await;
    assert_eq!(gate, json!({"allowed": true, "reason": null}));
    // A new version interrupts: its own count starts again.
    env.record("example-org/signon", "integration", "v942")
        .await;
    let (_, gate) = env
        .get_json("/api/v1/applications/signon/promotion?to=staging")
        .await;
    assert_eq!(gate["allowed"], false);
    assert!(gate["reason"].as_str().unwrap().contains("v942"));
}
