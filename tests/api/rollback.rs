//! Rollback: "Roll back to v299" with a reason, against the fake GitHub: the exact
//! dispatch, the promotion freeze with its reason, the pipeline's promotion gate refusing
//! meanwhile, the audit entries, and the role per environment.

use crate::common;
use serde_json::{json, Value};

async fn record(env: &common::TestApp, environment: &str, version: &str) {
    env.record("example-org/shop", environment, version).await;
}

/// `c`'s rollback of shop in staging, with `reason` and the version the page showed:
/// the body, once the status is `status`.
async fn roll_back(
    env: &common::TestApp,
    c: &reqwest::Client,
    reason: &str,
    expected_version: Option<&str>,
    status: u16,
) -> String {
    let mut form = vec![
        ("shortname", "shop"),
        ("environment", "staging"),
        ("reason", reason),
    ];
    if let Some(v) = expected_version {
        form.push(("expected_version", v));
    }
    env.expect(c, "rollback", &form, status).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_redeploys_the_last_good_version_and_freezes_promotion() {
    let env = common::TestApp::github_with("staging = [\"release-team\"]\n\n[[applications]]\nname = \"Shop\"\nrepo = \"example-org/shop\"\n").await;
    for v in ["v298", "v299"] {
        record(&env, "staging", v).await;
    }
    record(&env, "staging", "v300").await;
    env.member("octocat", &["release-team"]);
    env.member("intern", &["developers"]);
    let token = env.token.clone();
    let gate_to = |to: &'static str| {
        let (base, token) = (env.base.clone(), token.clone());
        async move {
            reqwest::Client::new()
                .get(format!("{base}/api/v1/applications/shop/promotion?to={to}"))
                .bearer_auth(&token)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let gate = || gate_to("production");
    assert_eq!(gate().await["allowed"], true);

    // The role for the environment, and a written reason, before anything.
    let intern = env.sign_in("intern").await;
    roll_back(&env, &intern, "bad", None, 403).await;
    let c = env.sign_in("octocat").await;
    roll_back(&env, &c, "  ", None, 422).await;
    // A page read before another version landed: nothing happens.
    roll_back(&env, &c, "x", Some("v298"), 409).await;
    assert!(env.fake.lock().unwrap().dispatches.is_empty());
    assert_eq!(
        gate().await["allowed"],
        true,
        "nothing frozen by refused attempts"
    );

    roll_back(&env, &c, "checkout 500s since v300", Some("v299"), 200).await;
    let d = env.fake.lock().unwrap().dispatches.clone();
    assert_eq!(d.len(), 1);
    assert_eq!(
        d[0].path,
        "/api/repos/example-org/shop/actions/workflows/deploy.yml/dispatches"
    );
    assert_eq!(
        d[0].body,
        json!({"ref": "main", "inputs": {"environment": "staging", "gitRef": "v299"}, "return_run_details": true})
    );
    assert!(d[0].headers["authorization"].starts_with("Bearer gho_octocat."));

    // Promotion into staging is frozen, with the reason; deploys are not. octocat may
    // deploy to staging only: their rollback cannot hold production (the third review's
    // finding 3), so promotion out of staging is not theirs to stop.
    let g = gate_to("staging").await;
    assert_eq!(g["allowed"], false);
    let why = g["reason"].as_str().unwrap();
    assert!(
        why.contains("into staging is frozen") && why.contains("checkout 500s since v300"),
        "{why}"
    );
    assert_eq!(
        gate().await["allowed"],
        true,
        "production's gate stays open"
    );
    let detail = env.store.app_detail("shop").await.unwrap().unwrap();
    let f = &detail.freezes[0];
    assert_eq!(f.from_environment.as_deref(), Some("staging"));
    assert_eq!(f.frozen_by, "octocat");
    let staging = detail.summary.cells[1].clone().unwrap();
    assert_eq!(
        (staging.version.as_str(), staging.status.as_str()),
        ("v299", "requested")
    );

    // Audited: the deploy (with the rollback's note) and the rollback itself.
    let audit = env.audit(Some("shop"), 20).await;
    assert!(
        audit
            .iter()
            .any(|a| a.action == "deploy" && a.detail.contains("rollback from v300")),
        "{audit:?}"
    );
    let r = audit
        .iter()
        .find(|a| a.action == "rollback")
        .expect("a rollback entry");
    assert_eq!(r.actor, "octocat");
    assert!(
        r.detail.contains("v300 -> v299") && r.detail.contains("checkout 500s"),
        "{}",
        r.detail
    );

    // Lifted like any freeze: the gate opens.
    env.expect(&c, "unfreeze", &[("shortname", "shop")], 200)
        .await;
    assert_eq!(gate_to("staging").await["allowed"], true);
}
