//! Deploys told back to GitHub's Deployments API, against a fake GitHub that sells
//! installation tokens only for a JWT the App's key signed: the exact requests (the
//! deployment with the commit, `auto_merge: false`, no required contexts; statuses with
//! Release's link), statuses following a deployment as it moves, one writer per
//! environment (`report_to_github = false`), and GitHub's 409 and 202 recorded for admins
//! and not retried.

use crate::common::{self, fake_github::Recorded, TestApp};
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde_json::{json, Value};
use std::time::Duration;

const SHA: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f001234567";

/// A fresh App key (PKCS#1 PEM, as GitHub gives it) and its public half.
fn app_key() -> (String, rsa::RsaPublicKey) {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let pem = key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    (pem.to_string(), key.to_public_key())
}

/// Waits until `pick` finds at least `n` records in the fake's App side.
async fn wait_for(
    env: &TestApp,
    n: usize,
    pick: fn(&common::fake_github::FakeState) -> &Vec<Recorded>,
) -> Vec<Recorded> {
    for _ in 0..200 {
        {
            let f = env.fake.lock().unwrap();
            if pick(&f).len() >= n {
                return pick(&f).clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let f = env.fake.lock().unwrap();
    panic!("waited 10 s for {n} records; have {:?}", pick(&f));
}

fn deployments(f: &common::fake_github::FakeState) -> &Vec<Recorded> {
    &f.app.deployments
}

fn statuses(f: &common::fake_github::FakeState) -> &Vec<Recorded> {
    &f.app.statuses
}

async fn notify(env: &TestApp, environment: &str, version: &str) -> i64 {
    let r = env
        .post_json(
            "/deployments",
            &json!({"repo": "example-org/router", "deployment": {"environment": environment, "version": version, "sha": SHA}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    latest(env, environment).await
}

async fn latest(env: &TestApp, environment: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT d.id FROM deployments d JOIN applications a ON a.id = d.application_id
          WHERE a.shortname = 'router' AND d.environment = $1 ORDER BY d.id DESC LIMIT 1",
    )
    .bind(environment)
    .fetch_one(env.store.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_deployment_is_told_to_github_with_the_apps_installation_token() {
    let (pem, public) = app_key();
    let env = TestApp::builder()
        .github()
        .extra(
            r#"[github.app]
id = 4242
[github.deployments.production]
report_to_github = false
[github.deployments.staging]
environment_url = "https://{app}.staging.example"
"#,
        )
        .settings(move |s| {
            s.alert_env.insert("RELEASE_GITHUB_APP_KEY".into(), pem);
        })
        .spawn()
        .await;
    {
        let mut f = env.fake.lock().unwrap();
        f.app.app = Some((4242, public));
        f.app.installations.insert("example-org/router".into(), 777);
    }

    // The pipeline's notification: a GitHub deployment of the commit, then its status.
    let id = notify(&env, "staging", "v1300").await;
    let created = wait_for(&env, 1, deployments).await;
    let link = format!("{}/applications/router#deployment-{id}", env.base);
    assert_eq!(created[0].path, "/api/repos/example-org/router/deployments");
    assert_eq!(created[0].headers["authorization"], "Bearer ghs_fake777x0");
    assert_eq!(created[0].headers["accept"], "application/vnd.github+json");
    assert_eq!(created[0].headers["x-github-api-version"], "2022-11-28");
    assert_eq!(
        created[0].body,
        json!({"ref": SHA, "task": "deploy", "auto_merge": false, "required_contexts": [],
            "environment": "staging", "production_environment": false, "transient_environment": false,
            "description": "router v1300",
            "payload": {"release": {"deployment_id": id, "application": "router", "version": "v1300",
                "deployed_by": Value::Null, "url": link}}})
    );
    let told = wait_for(&env, 1, statuses).await;
    assert_eq!(
        told[0].path,
        "/api/repos/example-org/router/deployments/1000001/statuses"
    );
    assert_eq!(
        told[0].body,
        json!({"state": "success", "log_url": link, "description": "router v1300: succeeded",
            "environment": "staging", "auto_inactive": true,
            "environment_url": "https://router.staging.example"})
    );
    {
        // The installation was looked up and its token bought with the App's JWT: RS256,
        // issued by the App, valid at most ten minutes.
        let f = env.fake.lock().unwrap();
        let calls: Vec<(&str, u16)> = f
            .app
            .app_calls
            .iter()
            .map(|(r, s)| (r.path.as_str(), *s))
            .collect();
        assert_eq!(
            calls,
            [
                ("/api/repos/example-org/router/installation", 200),
                ("/api/app/installations/777/access_tokens", 201)
            ]
        );
        for c in &f.app.jwt_claims {
            assert_eq!(c["iss"], "4242");
            let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
            assert!(
                exp - iat <= 600 && iat <= chrono::Utc::now().timestamp(),
                "{c}"
            );
        }
    }

    // Statuses follow a deployment as it moves: in progress, then failed.
    let v1301 = |stage: &str, status: &str| {
        json!({"repo": "example-org/router", "environment": "integration", "version": "v1301",
            "stage": stage, "status": status})
    };
    env.event_ok(v1301("rollout", "started")).await;
    let told = wait_for(&env, 2, statuses).await;
    assert_eq!(told[1].body["state"], "in_progress");
    assert_eq!(told[1].body["environment"], "integration");
    assert_eq!(
        told[1].path,
        "/api/repos/example-org/router/deployments/1000002/statuses"
    );
    assert!(told[1].body.get("environment_url").is_none());
    env.event_ok(v1301("smoke_tests", "failed")).await;
    let told = wait_for(&env, 3, statuses).await;
    assert_eq!(told[2].body["state"], "failure");
    assert_eq!(
        told[2].path, told[1].path,
        "the same GitHub deployment moves"
    );

    // Production's workflow job creates GitHub's deployment itself: Release writes none.
    notify(&env, "production", "v1300").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let f = env.fake.lock().unwrap();
    assert_eq!(f.app.deployments.len(), 2, "{:?}", f.app.deployments);
    assert_eq!(f.app.statuses.len(), 3);
    // One token for all: bought once, used until it nears its expiry.
    assert_eq!(f.app.tokens.len(), 1);
    drop(f);
    // Reports that reached a final state are forgotten after a while.
    let rows = |env: &TestApp| {
        let pool = env.store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM github_reports")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(rows(&env).await, 2);
    env.store
        .prune_github(app::store::now_ms() - 60_000)
        .await
        .unwrap();
    assert_eq!(rows(&env).await, 2, "not yet");
    env.store
        .prune_github(app::store::now_ms() + 1)
        .await
        .unwrap();
    assert_eq!(rows(&env).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn githubs_409_and_202_are_shown_to_admins_and_not_retried() {
    // On PostgreSQL: the outbox's SQL is the same on both databases.
    common::on_postgres("githubs_409_and_202", |url| async move {
        let env = TestApp::builder()
            .github()
            .database(&url)
            .settings(|s| {
                s.alert_env
                    .insert("RELEASE_GITHUB_REPORT_TOKEN".into(), "report-token".into());
            })
            .spawn()
            .await;
        {
            let mut f = env.fake.lock().unwrap();
            f.app.plain_token = Some("report-token".into());
            f.app.create_answer = Some((
                409,
                json!({"message": format!("Conflict: Commit status checks failed for {SHA}."),
                    "documentation_url": "https://docs.github.com/rest/deployments/deployments#create-a-deployment"}),
            ));
        }
        let conflicted = notify(&env, "staging", "v1400").await;
        let created = wait_for(&env, 1, deployments).await;
        assert_eq!(created[0].headers["authorization"], "Bearer report-token");
        assert_eq!(created[0].body["environment"], "staging");
        env.fake.lock().unwrap().app.create_answer = Some((
            202,
            json!({"message": "Auto-merged master into topic-branch on deployment."}),
        ));
        let merged = notify(&env, "production", "v1400").await;
        let created = wait_for(&env, 2, deployments).await;
        assert_eq!(created[1].body["production_environment"], true);

        // Several ticks later: neither was tried again, and no status was posted.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(env.fake.lock().unwrap().app.deployments.len(), 2);
        assert!(env.fake.lock().unwrap().app.statuses.is_empty());

        // Admins see both, with GitHub's words.
        env.member("boss", &["release-admins"]);
        let admin = env.sign_in("boss").await;
        let (status, body) =
            common::call(&env.base, &admin, "github_reports", &[] as &[(&str, &str)]).await;
        assert_eq!(status, 200, "{body}");
        let lines: Value = serde_json::from_str(&body).unwrap();
        let lines = lines[0].as_array().unwrap();
        let line = |id: i64| {
            lines
                .iter()
                .find(|l| l["deployment_id"] == id)
                .unwrap()
                .clone()
        };
        assert_eq!(line(conflicted)["stopped"], true);
        assert_eq!(
            line(conflicted)["what"],
            format!("GitHub answered 409 Conflict: Conflict: Commit status checks failed for {SHA}.")
        );
        assert_eq!(line(merged)["stopped"], true);
        assert!(line(merged)["what"]
            .as_str()
            .unwrap()
            .starts_with("GitHub answered 202 and created no deployment: Auto-merged"));
        let page = admin.get(env.url("/admin/users")).send().await.unwrap();
        let html = page.text().await.unwrap();
        assert!(html.contains("Deployments not told to GitHub"), "{html}");
        assert!(html.contains("Commit status checks failed"));

        // Not an admin: refused.
        env.member("dev", &["developers"]);
        let dev = env.sign_in("dev").await;
        assert_eq!(
            common::call(&env.base, &dev, "github_reports", &[] as &[(&str, &str)])
                .await
                .0,
            403
        );
    })
    .await;
}
