//! Deploy, Resubmit, freezes and the audit log, against a local fake GitHub and a local
//! fake Argo server, asserting the exact requests Release sends and that nothing is
//! recorded as deployed that was not.

use crate::common;

use common::fake_argo::{fake_argo, ArgoRequest, FakeArgo};
use common::fake_github::*;
use serde_json::{json, Value};

async fn env_with_argo() -> (common::TestApp, String, FakeArgo) {
    let argo = fake_argo("argo-secret").await;
    let env =
        common::TestApp::github_with(&format!("[argo.integration]\nurl = \"{}\"\n", argo.base))
            .await;
    (env, argo.base.clone(), argo)
}

/// [`env_with_argo`] with octocat, a developer, signed in.
async fn octocat_with_argo() -> (common::TestApp, reqwest::Client, String, FakeArgo) {
    let (env, argo, fake_argo) = env_with_argo().await;
    env.member("octocat", &["developers"]);
    let c = env.sign_in("octocat").await;
    (env, c, argo, fake_argo)
}

async fn call(
    env: &common::TestApp,
    c: &reqwest::Client,
    fn_path: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    common::call(&env.base, c, fn_path, form).await
}

async fn deploy(
    env: &common::TestApp,
    c: &reqwest::Client,
    app: &str,
    to: &str,
    git_ref: &str,
) -> (u16, String) {
    call(
        env,
        c,
        "deploy",
        &[
            ("shortname", app),
            ("environment", to),
            ("git_ref", git_ref),
        ],
    )
    .await
}

fn dispatch_count(env: &common::TestApp) -> usize {
    env.fake.lock().unwrap().dispatches.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_dispatches_the_workflow_as_the_person_and_records_a_request() {
    let (env, c, _, _) = octocat_with_argo().await;
    let (status, body) = deploy(&env, &c, "frontend", "integration", "v1.2.3").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("https://github.example/example-org/frontend/actions/runs/777"));

    let d = env.fake.lock().unwrap().dispatches[0].clone();
    assert_eq!(
        d.path,
        "/api/repos/example-org/frontend/actions/workflows/deploy.yml/dispatches"
    );
    assert!(
        d.headers["authorization"].starts_with("Bearer gho_octocat."),
        "the person's own token"
    );
    assert_eq!(d.headers["accept"], "application/vnd.github+json");
    assert_eq!(d.headers["x-github-api-version"], "2022-11-28");
    assert!(!d.headers["user-agent"].is_empty());
    assert_eq!(
        d.body,
        json!({"ref": "main", "inputs": {"environment": "integration", "gitRef": "v1.2.3"}, "return_run_details": true})
    );

    let detail = env.store.app_detail("frontend").await.unwrap().unwrap();
    let current = detail.summary.cells[0].clone().unwrap();
    assert_eq!(current.version, "v1.2.3");
    assert_eq!(current.status.as_str(), "requested");
    assert_eq!(current.trigger, "manual");
    assert_eq!(current.deployed_by.as_deref(), Some("octocat"));
    assert_eq!(
        detail.history[0].deployments[0].run_url.as_deref(),
        Some("https://github.example/example-org/frontend/actions/runs/777")
    );
    let audit = env.audit(Some("frontend"), 10).await;
    // The intent ("requested", written before GitHub was called), then the outcome.
    assert_eq!(
        (
            audit[1].action.as_str(),
            audit[1].outcome.as_str(),
            audit[1].actor.as_str()
        ),
        ("deploy", "requested", "octocat")
    );
    assert_eq!(
        (
            audit[0].action.as_str(),
            audit[0].outcome.as_str(),
            audit[0].actor.as_str()
        ),
        ("deploy", "dispatched", "octocat")
    );
    assert!(
        audit[0]
            .detail
            .contains("https://github.example/example-org/frontend/actions/runs/777"),
        "{}",
        audit[0].detail
    );

    // The pipeline's notification for that version attaches to the request.
    let token = common::pipeline_token(&env.store).await;
    let r = common::send(reqwest::Client::new()
        .post(format!("{}/api/v1/events", env.base))
        .bearer_auth(&token)
        .json(&json!({"repo": "example-org/frontend", "environment": "integration", "version": "v1.2.3", "stage": "build", "status": "started"}))).await;
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["created_deployment"], false);
    assert_eq!(out["deployment_status"], "in_progress");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_rules_are_enforced_on_the_server() {
    let (env, c, _, _) = octocat_with_argo().await;
    // (to, git ref, status, what the answer says)
    for (to, git_ref, status, says) in [
        ("staging", "v1", 403, "may not deploy to staging"),
        ("integration", "v1..2", 422, "not a valid git ref"),
        ("qa", "v1", 422, "unknown environment"),
    ] {
        let (s, b) = deploy(&env, &c, "frontend", to, git_ref).await;
        assert_eq!(s, status, "{to} {git_ref}: {b}");
        assert!(b.contains(says), "{to} {git_ref}: {b}");
    }
    let (s, _) = deploy(&env, &c, "no-such-app", "integration", "v1").await;
    assert_eq!(s, 404);
    assert_eq!(dispatch_count(&env), 0, "nothing reached GitHub");

    // Production needs an explicit confirmation.
    env.member("prod-person", &[]);
    let p = env.sign_in("prod-person").await;
    let (s, b) = deploy(&env, &p, "frontend", "production", "v1").await;
    assert_eq!(s, 422);
    assert!(b.contains("explicit confirmation"));
    env.expect(
        &p,
        "deploy",
        &[
            ("shortname", "frontend"),
            ("environment", "production"),
            ("git_ref", "v1"),
            ("confirm", "yes"),
        ],
        200,
    )
    .await;

    // Anonymous: 401.
    let (s, _) = deploy(&env, &client(), "frontend", "integration", "v1").await;
    assert_eq!(s, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deploy_while_one_is_in_flight_is_refused_and_fifty_at_once_dispatch_once() {
    let (env, c, _, _) = octocat_with_argo().await;
    assert_eq!(
        deploy(&env, &c, "frontend", "integration", "v1").await.0,
        200
    );
    let (s, b) = deploy(&env, &c, "frontend", "integration", "v2").await;
    assert_eq!(s, 409);
    assert!(
        b.contains("octocat started a deploy of frontend to integration"),
        "{b}"
    );

    let before = dispatch_count(&env);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (c, base) = (c.clone(), env.base.clone());
        tasks.push(tokio::spawn(async move {
            c.post(format!("{base}/api/deploy"))
                .form(&[
                    ("shortname", "content-store"),
                    ("environment", "integration"),
                    ("git_ref", "slow"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    assert_eq!(dispatch_count(&env) - before, 1, "exactly one dispatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_failures_are_explained_recorded_as_refused_and_change_nothing_that_runs() {
    let (env, c, _, _) = octocat_with_argo().await;
    let before = env.store.deployment_count().await.unwrap();
    let cell_before = env
        .store
        .app_detail("frontend")
        .await
        .unwrap()
        .unwrap()
        .summary
        .cells[0]
        .clone()
        .map(|c| c.version);
    let (s, b) = deploy(&env, &c, "frontend", "integration", "no-such-ref").await;
    assert_eq!(s, 422);
    assert!(
        b.contains("Nothing was deployed") && b.contains("No ref found for: no-such-ref"),
        "{b}"
    );
    let (s, b) = deploy(&env, &c, "frontend", "integration", "forbidden").await;
    assert_eq!(s, 403);
    assert!(b.contains("ask for write access"), "{b}");
    // A 502 may or may not have started a run: GitHub is asked for it, and without one
    // the dispatch is "not confirmed".
    let (s, b) = deploy(&env, &c, "frontend", "integration", "boom").await;
    assert_eq!(s, 502);
    assert!(
        b.contains("answered 502") && b.contains("Dispatch not confirmed"),
        "{b}"
    );
    let lookups = env.fake.lock().unwrap().run_lookups.clone();
    assert_eq!(
        lookups.len(),
        2,
        "only the uncertain answer is looked up (twice)"
    );
    assert!(
        lookups[0].path.starts_with(
            "/api/repos/example-org/frontend/actions/workflows/deploy.yml/runs?event=workflow_dispatch&created="
        ),
        "{}",
        lookups[0].path
    );
    assert!(lookups[0].headers["authorization"].starts_with("Bearer gho_octocat."));
    // Each request GitHub received is recorded, with what became of it; what runs in
    // integration is what ran before.
    assert_eq!(env.store.deployment_count().await.unwrap(), before + 3);
    let detail = env.store.app_detail("frontend").await.unwrap().unwrap();
    assert_eq!(
        detail.summary.cells[0].clone().map(|c| c.version),
        cell_before
    );
    let states: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT d.version, d.dispatch_state FROM deployments d JOIN applications a ON a.id = d.application_id
         WHERE a.shortname = 'frontend' AND d.trigger_kind = 'manual' AND d.deployed_by = 'octocat' ORDER BY d.id",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        states,
        [
            ("no-such-ref".to_string(), Some("refused".to_string())),
            ("forbidden".to_string(), Some("refused".to_string())),
            ("boom".to_string(), Some("not confirmed".to_string())),
        ]
    );
    let audit = env.audit(Some("frontend"), 10).await;
    assert_eq!(
        audit.iter().filter(|a| a.outcome == "failed").count(),
        2,
        "refused attempts are audited with GitHub's answer"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.outcome == "not confirmed")
            .count(),
        1
    );
    assert_eq!(audit.iter().filter(|a| a.outcome == "requested").count(), 3);
    assert!(audit.iter().any(|a| a.detail.contains("No ref found")));
    // Every attempt released the in-flight slot.
    assert_eq!(
        deploy(&env, &c, "frontend", "integration", "v9").await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freezes_block_deploys_and_promotions_and_an_admin_override_is_audited() {
    let (env, _, _) = env_with_argo().await;
    env.member("octocat", &["developers"]);
    env.member("boss", &["release-admins"]);
    let c = env.sign_in("octocat").await;
    let admin = env.sign_in("boss").await;
    let token = common::pipeline_token(&env.store).await;
    let promotion = |app: &'static str, to: &'static str| {
        let (base, token) = (env.base.clone(), token.clone());
        async move {
            let r = common::send(
                reqwest::Client::new()
                    .get(format!(
                        "{base}/api/v1/applications/{app}/promotion?to={to}"
                    ))
                    .bearer_auth(token),
            )
            .await;
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(promotion("frontend", "staging").await["allowed"], true);
    assert_eq!(
        promotion("frontend", "production").await["allowed"],
        false,
        "continuous deployment to production is off"
    );

    // A viewer cannot freeze the site; an admin can.
    env.expect(&c, "freeze", &[("reason", "nope")], 403).await;
    env.expect(&admin, "freeze", &[("reason", "Black Friday")], 200)
        .await;
    let (s, b) = deploy(&env, &c, "frontend", "integration", "v1").await;
    assert_eq!(s, 409);
    assert!(
        b.contains("frozen site-wide") && b.contains("Black Friday"),
        "{b}"
    );
    let p = promotion("frontend", "staging").await;
    assert_eq!(p["allowed"], false);
    assert!(p["reason"].as_str().unwrap().contains("Black Friday"));
    let html = env.get_text(&c, "/").await;
    assert!(html.contains("Deploys are frozen site-wide"));
    assert_eq!(dispatch_count(&env), 0);

    // An admin overrides with a reason.
    env.expect(
        &admin,
        "deploy",
        &[
            ("shortname", "frontend"),
            ("environment", "integration"),
            ("git_ref", "v1"),
            ("override_reason", "hotfix for checkout"),
        ],
        200,
    )
    .await;
    assert_eq!(dispatch_count(&env), 1);
    let audit = env.store.audit_log(None, Some("boss"), 10).await.unwrap();
    assert!(audit
        .iter()
        .any(|a| a.outcome == "override" && a.detail.contains("hotfix for checkout")));
    assert!(audit
        .iter()
        .any(|a| a.action == "freeze" && a.detail == "Black Friday"));

    // Lift; a per-app freeze by a deployer then blocks only that app.
    assert_eq!(call(&env, &admin, "unfreeze", &[]).await.0, 200);
    assert_eq!(
        call(
            &env,
            &c,
            "freeze",
            &[("shortname", "content-store"), ("reason", "migration")]
        )
        .await
        .0,
        200
    );
    // octocat may deploy to integration only: the freeze holds integration (the third
    // review's finding 3), not promotion into staging.
    assert_eq!(
        promotion("content-store", "integration").await["allowed"],
        false
    );
    assert_eq!(promotion("content-store", "staging").await["allowed"], true);
    assert_eq!(promotion("frontend", "staging").await["allowed"], true);
    let (s, _) = deploy(&env, &c, "content-store", "integration", "v2").await;
    assert_eq!(s, 409);
    let r = common::send(
        reqwest::Client::new()
            .get(format!("{}/applications/content-store.json", env.base))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap()["deploy_freeze"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmit_calls_argo_and_puts_the_deployment_back_in_progress() {
    let (env, c, argo, fake_argo) = octocat_with_argo().await;
    let token = common::pipeline_token(&env.store).await;
    let fail = |name: &str| {
        json!({"repo": "example-org/frontend", "environment": "integration", "version": "v5", "stage": "smoke_tests", "status": "failed",
               "workflow": {"environment": "integration", "namespace": "apps", "name": name, "url": format!("{argo}/workflows/apps/{name}")}})
    };
    let r = common::send(
        reqwest::Client::new()
            .post(format!("{}/api/v1/events", env.base))
            .bearer_auth(&token)
            .json(&fail("post-sync-1")),
    )
    .await;
    let out: Value = r.json().await.unwrap();
    let id = out["deployment_id"].as_i64().unwrap().to_string();
    assert_eq!(out["deployment_status"], "failed");

    env.expect(&c, "resubmit", &[("deployment_id", &id)], 200)
        .await;
    let ArgoRequest {
        path, auth, body, ..
    } = fake_argo.requests()[0].clone();
    assert_eq!(path, "/api/v1/workflows/apps/post-sync-1/resubmit");
    assert_eq!(auth, "Bearer argo-secret");
    assert_eq!(body, json!({"memoized": false}));
    let d = env.store.app_detail("frontend").await.unwrap().unwrap();
    let dep = &d.history[0].deployments[0];
    assert_eq!(dep.status.as_str(), "in_progress");
    let last = dep.events.last().unwrap();
    assert_eq!(
        last.workflow.as_ref().unwrap().url.as_deref(),
        Some(format!("{argo}/workflows/apps/post-sync-1-r2x9k").as_str())
    );
    assert!(last
        .message
        .as_deref()
        .unwrap()
        .contains("resubmitted by octocat"));

    // Only a failed deployment can be resubmitted.
    env.expect(&c, "resubmit", &[("deployment_id", &id)], 409)
        .await;

    // Argo's 404 is explained and changes nothing.
    let r = common::send(reqwest::Client::new().post(format!("{}/api/v1/events", env.base)).bearer_auth(&token)
        .json(&json!({"repo": "example-org/frontend", "environment": "integration", "version": "v5", "stage": "smoke_tests", "status": "failed",
                      "workflow": {"environment": "integration", "namespace": "apps", "name": "gone-1"}}))).await;
    assert_eq!(r.status(), 200);
    let b = env
        .expect(&c, "resubmit", &[("deployment_id", &id)], 502)
        .await;
    assert!(b.contains("no longer exists"), "{b}");
    let d = env.store.app_detail("frontend").await.unwrap().unwrap();
    assert_eq!(d.history[0].deployments[0].status.as_str(), "failed");

    // A viewer may not resubmit.
    env.member("viewer", &[]);
    let v = env.sign_in("viewer").await;
    assert_eq!(
        call(&env, &v, "resubmit", &[("deployment_id", &id)])
            .await
            .0,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_shows_what_a_deploy_would_ship_and_spots_rollbacks() {
    let (env, c, _, _) = octocat_with_argo().await;
    let token = common::pipeline_token(&env.store).await;
    let notify = |v: &'static str| {
        let (base, token) = (env.base.clone(), token.clone());
        async move {
            reqwest::Client::new().post(format!("{base}/deployments")).bearer_auth(token)
                .json(&json!({"repo": "example-org/frontend", "deployment": {"environment": "integration", "version": v}}))
                .send().await.unwrap().status()
        }
    };
    assert_eq!(notify("v1").await, 200);
    let (s, body) = env.preview(&c, "frontend", "integration", "v2").await;
    assert_eq!(s, 200, "preview: {body}");
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["current"], "v1");
    assert_eq!(p["total_commits"], 2);
    assert_eq!(p["rollback"], false);
    assert_eq!(p["commits"][0]["message"], "Fix the header");
    assert_eq!(p["commits"][0]["author"], "li-wei");
    assert_eq!(
        p["html_url"],
        "https://github.example/example-org/frontend/compare/v1...v2"
    );
    let req = env.fake.lock().unwrap().compares[0].clone();
    assert_eq!(req.path, "/api/repos/example-org/frontend/compare/v1...v2");
    assert!(req.headers["authorization"].starts_with("Bearer gho_octocat."));
    assert_eq!(req.headers["x-github-api-version"], "2022-11-28");

    assert_eq!(notify("v2").await, 200);
    let (_, body) = env.preview(&c, "frontend", "integration", "v1").await;
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["rollback"], true);
    assert!(p["note"].as_str().unwrap().contains("rollback"));

    // Nothing deployed there yet: no comparison, and it says so.
    let (_, body) = env.preview(&c, "asset-manager", "staging", "v1").await;
    let p: Value = serde_json::from_str(&body).unwrap();
    assert!(p["note"]
        .as_str()
        .unwrap()
        .contains("Nothing is deployed to staging yet"));
    // A ref GitHub does not know is explained.
    let (s, body) = env.preview(&c, "frontend", "integration", "nope").await;
    assert_eq!(s, 502, "preview: {body}");
    assert!(body.contains("does not exist"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_form_suggests_recent_tags_and_commits() {
    let (env, c, _, _) = octocat_with_argo().await;
    let body = env
        .expect(&c, "refs", &[("shortname", "frontend")], 200)
        .await;
    let refs: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        refs,
        json!([
            ["v3", "tag"],
            ["v2", "tag"],
            ["abcdef123456", "Fix the header"]
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_github_token_is_explained() {
    let (env, c, _, _) = octocat_with_argo().await;
    // GitHub forgets the token (revoked by the person): 401, the request recorded as
    // refused, and what ran still runs.
    env.fake.lock().unwrap().tokens.clear();
    let (s, b) = deploy(&env, &c, "frontend", "integration", "v1").await;
    assert_eq!(s, 401);
    assert!(b.contains("sign out and sign in again"), "{b}");
    let detail = env.store.app_detail("frontend").await.unwrap().unwrap();
    assert_eq!(
        detail.summary.cells[0].as_ref().map(|c| c.version.as_str()),
        Some("v210"),
        "what ran in integration still runs there"
    );
    assert_eq!(detail.history[0].deployments[0].version, "v1");
    assert_eq!(detail.history[0].deployments[0].status.as_str(), "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_github_is_explained() {
    // A port nothing listens on.
    let closed = format!("127.0.0.1:{}", common::binary::free_port());
    let pipeline =
        app::pipeline::Pipeline::new(Some(format!("http://{closed}")), Default::default());
    let repo = app::domain::RepoName::parse("example-org/frontend").unwrap();
    let env = app::domain::Environments::default()
        .parse("integration")
        .unwrap();
    let git_ref = app::domain::GitRef::parse("v1").unwrap();
    let err = pipeline
        .dispatch("t", &repo, "deploy.yml", "main", &env, &git_ref)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "GitHub could not be reached; check the network or the configured URL"
    );
    let staging = app::domain::Environments::default()
        .parse("staging")
        .unwrap();
    let ns = app::domain::K8sName::namespace("apps", "n").unwrap();
    let name = app::domain::K8sName::object("x", "n").unwrap();
    let err = pipeline.resubmit(&staging, &ns, &name).await.unwrap_err();
    assert!(err
        .to_string()
        .contains("no Argo Workflows server is configured for staging"));
}
