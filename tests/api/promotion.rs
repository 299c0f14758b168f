//! One-click promotion and release trains, against the fake GitHub: the exact dispatches
//! (what runs in the environment before, never a version the caller sent), the rules per
//! environment, skips with their reasons, a partial failure, and the train's audit entry.

use crate::common;
use serde_json::{json, Value};

/// Five manually promoted applications, Train A to Train E; staging deploys need the
/// release-team.
fn apps() -> String {
    let apps: String = ["A", "B", "C", "D", "E"]
        .iter()
        .map(|l| {
            let repo = format!("example-org/train-{}", l.to_lowercase());
            format!("\n[[applications]]\nname = \"Train {l}\"\nrepo = \"{repo}\"\nmanual = [\"staging\", \"production\"]\n")
        })
        .collect();
    format!("staging = [\"release-team\"]\n{apps}")
}

async fn record(env: &common::TestApp, app: &str, environment: &str, version: &str) {
    env.record(&format!("example-org/{app}"), environment, version)
        .await;
}

/// train-a: v2 in integration, v1 in staging; train-b: v5 in integration, nothing in
/// staging; train-c: v7, frozen; train-d: v9, someone's deploy to staging in flight;
/// train-e: "boom" in integration (GitHub answers 502 to its dispatch).
async fn setup() -> common::TestApp {
    let env = common::TestApp::github_with(&apps()).await;
    record(&env, "train-a", "integration", "v2").await;
    record(&env, "train-a", "staging", "v1").await;
    record(&env, "train-b", "integration", "v5").await;
    record(&env, "train-c", "integration", "v7").await;
    record(&env, "train-d", "integration", "v9").await;
    record(&env, "train-e", "integration", "boom").await;
    let c = env.store.application("train-c").await.unwrap().unwrap();
    env.store
        .freeze(
            Some(c.id),
            "schema migration",
            "someone",
            app::domain::deploy_rules::Authority::Deployer,
            &app::store::NewAudit {
                actor: "someone",
                action: "freeze",
                application: Some("train-c"),
                environment: None,
                outcome: "done",
                detail: "schema migration",
            },
        )
        .await
        .unwrap();
    assert!(common::begin_deploy(
        &env.store,
        "example-org/train-d",
        "staging",
        "v8",
        "another-person",
        30 * 60_000
    )
    .await
    .is_ok());
    env.member("octocat", &["release-team"]);
    env.member("intern", &["developers"]);
    env
}

fn dispatched(env: &common::TestApp) -> Vec<(String, Value)> {
    env.fake
        .lock()
        .unwrap()
        .dispatches
        .iter()
        .map(|d| (d.path.clone(), d.body.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_deploys_what_runs_in_the_environment_before() {
    let env = setup().await;
    let c = env.sign_in("octocat").await;
    // The caller names the app and the environment; the version is the server's.
    env.expect(
        &c,
        "promote",
        &[
            ("shortname", "train-a"),
            ("environment", "staging"),
            ("git_ref", "v666"),
        ],
        200,
    )
    .await;
    assert_eq!(
        dispatched(&env),
        [(
            "/api/repos/example-org/train-a/actions/workflows/deploy.yml/dispatches".to_string(),
            json!({"ref": "main", "inputs": {"environment": "staging", "gitRef": "v2"}, "return_run_details": true})
        )]
    );
    let audit = env.audit(Some("train-a"), 10).await;
    assert!(
        audit.iter().any(|a| a.action == "deploy"
            && a.outcome == "requested"
            && a.detail.contains("promoted from integration")),
        "{audit:?}"
    );
    // A button read before integration moved on: nothing is deployed.
    let body = env
        .expect(
            &c,
            "promote",
            &[
                ("shortname", "train-b"),
                ("environment", "staging"),
                ("expected_version", "v4"),
            ],
            409,
        )
        .await;
    assert!(body.contains("now runs v5, not v4"), "{body}");
    let promote = |app, to| [("shortname", app), ("environment", to)];
    let intern = env.sign_in("intern").await;
    env.call_all(&[
        // Requested now: a second click is a 409 and dispatches nothing.
        (&c, "promote", &promote("train-a", "staging"), 409),
        // Production: the deploy role for production (octocat has none), then
        // confirmation.
        (&c, "promote", &promote("train-b", "production"), 403),
        // An integration deployer can cause nothing in staging by promotion.
        (&intern, "promote", &promote("train-b", "staging"), 403),
        // Nothing before the first environment: octocat may not deploy to integration
        // at all.
        (&c, "promote", &promote("train-b", "integration"), 403),
    ])
    .await;
    // Nothing to promote: frozen.
    let body = env
        .expect(&c, "promote", &promote("train-c", "staging"), 409)
        .await;
    assert!(body.contains("frozen"), "{body}");
    assert_eq!(dispatched(&env).len(), 1, "nothing else was dispatched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_train_dispatches_each_skips_with_reasons_and_survives_a_failure() {
    let env = setup().await;
    let intern = env.sign_in("intern").await;
    let (s, _) = common::call(&env.base, &intern, "train", &[("environment", "staging")]).await;
    assert_eq!(s, 403, "the role is checked before anything");
    assert!(dispatched(&env).is_empty());

    let c = env.sign_in("octocat").await;
    // Candidates: every app flagged "manual deployment" to staging.
    let candidates: Value = common::json(&env.expect(&c, "train_candidates", &[], 200).await);
    let staging: Vec<&str> = candidates[0][1]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["shortname"].as_str().unwrap())
        .filter(|s| s.starts_with("train-"))
        .collect();
    assert_eq!(
        staging,
        ["train-a", "train-b", "train-c", "train-d", "train-e"]
    );

    let form = [
        ("environment", "staging"),
        ("applications[0]", "train-a"),
        ("applications[2]", "train-b"),
        ("applications[3]", "train-c"),
        ("applications[4]", "train-d"),
        ("applications[7]", "train-e"),
    ];
    let result: Value = common::json(&env.expect(&c, "train", &form, 200).await);
    let outcome = |app: &str| {
        result["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["application"] == app)
            .map(|i| {
                (
                    i["outcome"].as_str().unwrap().to_owned(),
                    i["message"].as_str().unwrap().to_owned(),
                )
            })
            .unwrap()
    };
    assert_eq!(outcome("train-a").0, "dispatched");
    assert_eq!(outcome("train-b").0, "dispatched");
    let (o, why) = outcome("train-c");
    assert_eq!(o, "skipped");
    assert!(
        why.contains("frozen") && why.contains("schema migration"),
        "{why}"
    );
    let (o, why) = outcome("train-d");
    assert_eq!(o, "skipped");
    assert!(why.contains("another-person"), "{why}");
    let (o, why) = outcome("train-e");
    assert_eq!(o, "failed");
    assert!(
        why.contains("Dispatch not confirmed") && why.contains("answered 502"),
        "{why}"
    );

    // Exactly one dispatch per app that went, with what runs in integration.
    let mut sent: Vec<(String, String)> = dispatched(&env)
        .into_iter()
        .map(|(path, body)| {
            assert_eq!(body["inputs"]["environment"], "staging");
            (path, body["inputs"]["gitRef"].as_str().unwrap().to_owned())
        })
        .collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            (
                "/api/repos/example-org/train-a/actions/workflows/deploy.yml/dispatches"
                    .to_string(),
                "v2".to_string()
            ),
            (
                "/api/repos/example-org/train-b/actions/workflows/deploy.yml/dispatches"
                    .to_string(),
                "v5".to_string()
            ),
            (
                "/api/repos/example-org/train-e/actions/workflows/deploy.yml/dispatches"
                    .to_string(),
                "boom".to_string()
            ),
        ]
    );
    // The dispatched ones are recorded as requested by the person; the failed one is not.
    for (app, version) in [("train-a", "v2"), ("train-b", "v5")] {
        let d = env.store.app_detail(app).await.unwrap().unwrap();
        let staging = d.summary.cells[1].clone().unwrap();
        assert_eq!(
            (staging.version.as_str(), staging.status.as_str()),
            (version, "requested")
        );
        assert_eq!(staging.deployed_by.as_deref(), Some("octocat"));
    }
    let e = env.store.app_detail("train-e").await.unwrap().unwrap();
    assert!(e.summary.cells[1].is_none());

    // The train's results, followed: what each dispatched app has in staging now.
    let form = [
        ("environment", "staging"),
        ("applications[0]", "train-a"),
        ("applications[1]", "train-e"),
    ];
    let now: Vec<(String, String)> =
        common::json(&env.expect(&c, "train_status", &form, 200).await);
    assert_eq!(
        now,
        [
            ("train-a".to_string(), "v2 requested".to_string()),
            ("train-e".to_string(), "not deployed".to_string())
        ]
    );
    // One audit entry for the train, with its items.
    let audit = env
        .store
        .audit_log(None, Some("octocat"), 50)
        .await
        .unwrap();
    let train: Vec<_> = audit.iter().filter(|a| a.action == "train").collect();
    assert_eq!(train.len(), 1, "{audit:?}");
    assert!(
        train[0]
            .detail
            .starts_with("2 dispatched, 2 skipped, 1 failed"),
        "{}",
        train[0].detail
    );
    assert_eq!(train[0].environment.as_deref(), Some("staging"));

    // Nothing left to promote: a second train of the same apps skips them all (in
    // flight or frozen) and dispatches nothing more.
    env.expect(
        &c,
        "train",
        &[
            ("environment", "staging"),
            ("applications[0]", "train-a"),
            ("applications[1]", "train-c"),
        ],
        200,
    )
    .await;
    assert_eq!(dispatched(&env).len(), 3);
    // Production: train-a's v2 has not succeeded in staging yet, so it is skipped.
    env.member("octocat", &["release-team", "release-admins"]);
    let admin = env.sign_in("octocat").await;
    let body = env
        .expect(
            &admin,
            "train",
            &[
                ("environment", "production"),
                ("applications[0]", "train-a"),
            ],
            200,
        )
        .await;
    assert!(body.contains("\"skipped\""), "{body}");
    assert_eq!(dispatched(&env).len(), 3);
}
