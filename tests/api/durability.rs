//! One durable path for every action (issue 18): whatever is cut off (the client, the
//! request's time limit, the process itself), every dispatch GitHub received has its
//! deployment and its audit entries in Release, and no in-flight slot is held without a
//! deployment. Against the fake GitHub, which records every dispatch and lists the runs
//! they started.

use crate::common::{self, binary, fake_github::*};
use std::time::Duration;

/// `n` applications `prefix-01`.. with staging deployed by hand, and the staging team.
fn apps(prefix: &str, n: usize) -> String {
    let mut out = String::from("staging = [\"release-team\"]\n");
    for i in 1..=n {
        out.push_str(&format!(
            "\n[[applications]]\nname = \"{prefix} {i:02}\"\nshortname = \"{prefix}-{i:02}\"\nrepo = \"example-org/{prefix}-{i:02}\"\nmanual = [\"staging\", \"production\"]\n"
        ));
    }
    out
}

async fn record(env: &common::TestApp, app: &str, environment: &str, version: &str) {
    env.record(&format!("example-org/{app}"), environment, version)
        .await;
}

/// Every dispatch GitHub received has its deployment (manual, by the person, that version
/// in that environment, linked to the run GitHub started) and its audit entries; no slot
/// is held without a deployment; nothing is left pending.
async fn assert_every_dispatch_recorded(env: &common::TestApp) {
    let pool = env.store.pool();
    let orphans = env
        .count(
            "SELECT COUNT(*) FROM deploy_locks l WHERE l.deployment_id IS NULL
           OR NOT EXISTS (SELECT 1 FROM deployments d WHERE d.id = l.deployment_id)",
        )
        .await;
    assert_eq!(orphans, 0, "a slot is held without a deployment");
    assert_eq!(env.count(PENDING).await, 0, "a dispatch has no outcome");
    let (dispatches, runs) = {
        let f = env.fake.lock().unwrap();
        (f.dispatches.clone(), f.runs.clone())
    };
    for d in dispatches {
        let repo = d.path.split('/').nth(4).unwrap().to_owned();
        let version = d.body["inputs"]["gitRef"].as_str().unwrap().to_owned();
        let environment = d.body["inputs"]["environment"].as_str().unwrap().to_owned();
        let row: Option<(i64, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT d.id, d.run_url, d.dispatch_state FROM deployments d JOIN applications a ON a.id = d.application_id
             WHERE a.shortname = $1 AND d.environment = $2 AND d.version = $3 AND d.trigger_kind = 'manual'
               AND d.deployed_by = 'octocat'",
        )
        .bind(&repo)
        .bind(&environment)
        .bind(&version)
        .fetch_optional(pool)
        .await
        .unwrap();
        let (_, run_url, state) = row.unwrap_or_else(|| {
            panic!("GitHub got {version} to {environment} of {repo}: no deployment")
        });
        let run = runs
            .iter()
            .find(|(r, _, _)| *r == format!("example-org/{repo}"))
            .map(|(_, _, run)| run["html_url"].as_str().unwrap().to_owned());
        assert_eq!(run_url, run, "{repo}: linked to the run GitHub started");
        assert_eq!(state, None, "{repo}: dispatched");
        let audit: Vec<String> = sqlx::query_scalar(
            "SELECT outcome FROM audit_log WHERE application = $1 AND environment = $2 AND action = 'deploy' ORDER BY id",
        )
        .bind(&repo)
        .bind(&environment)
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(audit, ["requested", "dispatched"], "{repo}: audit entries");
    }
}

/// The dispatches without an outcome.
const PENDING: &str = "SELECT COUNT(*) FROM dispatches WHERE state = 'pending'";

/// Asks `sql` (a count) at most `attempts` times, `interval` apart, until it is 0:
/// whether it was.
async fn until_none(env: &common::TestApp, sql: &str, attempts: u32, interval: Duration) -> bool {
    for _ in 0..attempts {
        if env.count(sql).await == 0 {
            return true;
        }
        tokio::time::sleep(interval).await;
    }
    false
}

/// Waits until nothing is pending (the tasks no request owns have written their outcome).
async fn settled(env: &common::TestApp) {
    let pending = "SELECT (SELECT COUNT(*) FROM dispatches WHERE state = 'pending') + (SELECT COUNT(*) FROM trains WHERE state = 'running')";
    assert!(
        until_none(env, pending, 300, Duration::from_millis(100)).await,
        "dispatches or trains still pending after 30 s"
    );
}

/// A server function called by a client that gives up after `after` (the connection is
/// dropped mid-request): the answer's status, or `None` when it gave up.
async fn cut_off(
    env: &common::TestApp,
    c: &reqwest::Client,
    f: &str,
    form: &[(&str, &str)],
    after: Duration,
) -> Option<u16> {
    let send = c.post(format!("{}/api/{f}", env.base)).form(form).send();
    match tokio::time::timeout(after, send).await {
        Ok(r) => Some(r.unwrap().status().as_u16()),
        Err(_) => None,
    }
}

/// Deploy, promote, rollback and a train, each cut off by its client at several points
/// (before, during and after GitHub's slow answer): GitHub gets at most one dispatch per
/// action, and each one it got is recorded with its run link and its audit entries; a
/// rollback cut off after its dispatch has its freeze.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_at_any_point_loses_nothing() {
    let env = common::TestApp::github_with(&apps("cut", 22)).await;
    env.member("octocat", &["developers", "release-team", "release-admins"]);
    for i in 1..=22 {
        let app = format!("cut-{i:02}");
        record(&env, &app, "integration", "v2").await;
        record(&env, &app, "staging", "v0").await;
        record(&env, &app, "staging", "v1").await;
    }
    env.fake.lock().unwrap().dispatch_delay_ms = 800;
    let c = env.sign_in("octocat").await;
    // Before the intent, around its write, while GitHub holds the answer, after it.
    let cuts = [5u64, 20, 60, 150, 500, 1_200];
    let mut app_no = 0;
    for action in ["deploy", "promote", "rollback"] {
        for cut in cuts {
            app_no += 1;
            let app = format!("cut-{app_no:02}");
            let form: Vec<(&str, &str)> = match action {
                "deploy" => vec![
                    ("shortname", &app),
                    ("environment", "integration"),
                    ("git_ref", "v3"),
                ],
                "promote" => vec![
                    ("shortname", &app),
                    ("environment", "staging"),
                    ("expected_version", "v2"),
                ],
                _ => vec![
                    ("shortname", &app),
                    ("environment", "staging"),
                    ("reason", "cut off"),
                    ("expected_version", "v0"),
                ],
            };
            let answered = cut_off(&env, &c, action, &form, Duration::from_millis(cut)).await;
            if let Some(s) = answered {
                assert_eq!(s, 200, "{action} of {app} answered");
            }
            settled(&env).await;
            let sent = env
                .fake
                .lock()
                .unwrap()
                .dispatches
                .iter()
                .filter(|d| d.path.contains(&format!("/{app}/")))
                .count();
            assert!(sent <= 1, "{action} cut at {cut} ms: {sent} dispatches");
            if action == "rollback" && sent == 1 {
                let frozen: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM freezes f JOIN applications a ON a.id = f.application_id
                     WHERE a.shortname = $1 AND f.from_environment = 'staging' AND f.lifted_at IS NULL",
                )
                .bind(&app)
                .fetch_one(env.store.pool())
                .await
                .unwrap();
                assert_eq!(frozen, 1, "rollback of {app} cut at {cut} ms: its freeze");
            }
        }
    }
    // A train of the last four, cut off at once.
    let form = [
        ("environment", "staging"),
        ("applications[0]", "cut-19"),
        ("applications[1]", "cut-20"),
        ("applications[2]", "cut-21"),
        ("applications[3]", "cut-22"),
    ];
    assert_eq!(
        cut_off(&env, &c, "train", &form, Duration::from_millis(300)).await,
        None
    );
    settled(&env).await;
    let trains: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'train' ORDER BY id")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    assert_eq!(trains.len(), 1, "one train entry: {trains:?}");
    assert!(
        trains[0].starts_with("4 dispatched, 0 skipped, 0 failed"),
        "{}",
        trains[0]
    );
    assert_every_dispatch_recorded(&env).await;
}

/// A 40-app train at 3.5 s a dispatch outlives its request's 30 s: every app is
/// dispatched and recorded, the train's one audit entry lists all 40, and the train is
/// there to read after the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_train_longer_than_its_request_dispatches_and_records_every_app() {
    let env = common::TestApp::github_with(&apps("long", 40)).await;
    env.member("octocat", &["developers", "release-team"]);
    for i in 1..=40 {
        record(&env, &format!("long-{i:02}"), "integration", "v7").await;
    }
    env.fake.lock().unwrap().dispatch_delay_ms = 3_500;
    let c = env.sign_in("octocat").await;
    let started = std::time::Instant::now();
    let names: Vec<(String, String)> = (1..=40)
        .map(|i| (format!("applications[{i}]"), format!("long-{i:02}")))
        .collect();
    let mut form: Vec<(&str, &str)> = vec![("environment", "staging")];
    form.extend(names.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let result: serde_json::Value = common::json(&env.expect(&c, "train", &form, 200).await);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered within the request's time"
    );
    assert_eq!(result["items"].as_array().unwrap().len(), 40);
    assert_eq!(
        result["finished"], false,
        "the train goes on after the answer"
    );
    let id = result["id"].as_i64().unwrap();
    for _ in 0..600 {
        let (_, body) =
            common::call(&env.base, &c, "train_progress", &[("id", &id.to_string())]).await;
        let t: serde_json::Value = serde_json::from_str(&body).unwrap();
        if t["finished"] == true {
            assert!(
                t["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|i| i["outcome"] == "dispatched"),
                "{t}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    settled(&env).await;
    let paths: Vec<String> = env
        .fake
        .lock()
        .unwrap()
        .dispatches
        .iter()
        .map(|d| d.path.clone())
        .collect();
    let mut unique = paths.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((paths.len(), unique.len()), (40, 40), "{paths:#?}");
    let trains: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM audit_log WHERE action = 'train' ORDER BY id")
            .fetch_all(env.store.pool())
            .await
            .unwrap();
    assert_eq!(trains.len(), 1);
    assert!(
        trains[0].starts_with("40 dispatched, 0 skipped, 0 failed: "),
        "{}",
        trains[0]
    );
    for i in 1..=40 {
        assert!(
            trains[0].contains(&format!("long-{i:02} dispatched")),
            "{}",
            trains[0]
        );
    }
    assert_every_dispatch_recorded(&env).await;
}

/// `kill -9` of the real binary while GitHub holds a dispatch's answer, then a restart:
/// the intent written before the call is found and linked to the run GitHub started; one
/// whose run cannot be found is "not confirmed", with its slot released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_dispatch_and_record_is_reconciled_at_restart() {
    let (gh, fake) = fake_github().await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("release.toml");
    std::fs::write(&config_path, config_text(&gh, 15, None, &apps("k9", 2))).unwrap();
    let url = format!("sqlite:{}", dir.path().join("release.db").display());
    let port = binary::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config_arg = config_path.display().to_string();
    let start = || {
        binary::serve(
            port,
            &["--database-url", &url, "--config", &config_arg],
            &[
                ("RELEASE_GITHUB_CLIENT_SECRET", SECRET),
                ("RELEASE_SECRET_KEY", KEY),
            ],
        )
    };
    let ready = || binary::wait_ready(&base);
    let mut child = start();
    ready().await;
    let store = app::store::Store::connect(&url, Default::default())
        .await
        .unwrap();
    let env = common::TestApp::external(base.clone(), gh, fake.clone(), store, dir);
    env.member("octocat", &["developers"]);
    let c = env.sign_in("octocat").await;
    // GitHub holds its answers for 20 s; the server is killed while it waits.
    fake.lock().unwrap().dispatch_delay_ms = 20_000;
    for app in ["k9-01", "k9-02"] {
        let c = c.clone();
        let base = base.clone();
        tokio::spawn(async move {
            let r = c
                .post(format!("{base}/api/deploy"))
                .form(&[
                    ("shortname", app),
                    ("environment", "integration"),
                    ("git_ref", "v4"),
                ])
                .send()
                .await;
            assert!(r.is_err(), "the server was killed before it answered");
        });
    }
    for _ in 0..200 {
        if fake.lock().unwrap().dispatches.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        fake.lock().unwrap().dispatches.len(),
        2,
        "GitHub got both dispatches"
    );
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    // k9-02's run is lost on GitHub's side too: after the restart, only k9-01's is listed.
    {
        let mut f = fake.lock().unwrap();
        f.runs.retain(|(repo, _, _)| repo == "example-org/k9-01");
    }
    assert_eq!(
        env.count(PENDING).await,
        2,
        "both intents were written before GitHub was called"
    );

    let mut child = start();
    ready().await;
    // GitHub is given 20 s to list a run before a dispatch is "not confirmed".
    until_none(&env, PENDING, 800, Duration::from_millis(50)).await;
    let rows: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT a.shortname, x.state, d.run_url, d.dispatch_state FROM dispatches x
         JOIN deployments d ON d.id = x.deployment_id JOIN applications a ON a.id = x.application_id ORDER BY a.shortname",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    let k9_01_run = fake
        .lock()
        .unwrap()
        .runs
        .iter()
        .find(|(repo, _, _)| repo == "example-org/k9-01")
        .map(|(_, _, run)| run["html_url"].as_str().unwrap().to_owned());
    assert_eq!(
        rows,
        [
            (
                "k9-01".to_string(),
                "dispatched".to_string(),
                k9_01_run,
                None
            ),
            (
                "k9-02".to_string(),
                "unconfirmed".to_string(),
                None,
                Some("not confirmed".to_string())
            ),
        ]
    );
    // The look-up went to GitHub as the person, for runs of that workflow since the intent.
    // (k9-02's is asked again while GitHub may still list it.)
    let lookups = fake.lock().unwrap().run_lookups.clone();
    assert!(lookups.len() >= 2, "{lookups:?}");
    for l in &lookups {
        assert!(
            l.path
                .contains("/actions/workflows/deploy.yml/runs?event=workflow_dispatch&created=")
                && l.path.contains("Z..")
                && l.path.ends_with("Z&per_page=100"),
            "{}",
            l.path
        );
        assert!(l.headers["authorization"].starts_with("Bearer gho_octocat."));
    }
    // k9-02's slot is free; k9-01's is held by its (running) deployment.
    let held: Vec<String> = sqlx::query_scalar(
        "SELECT a.shortname FROM deploy_locks l JOIN applications a ON a.id = l.application_id ORDER BY a.shortname",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(held, ["k9-01"]);
    let audit: Vec<(String, String)> = sqlx::query_as(
        "SELECT application, outcome FROM audit_log WHERE action = 'deploy' ORDER BY id",
    )
    .fetch_all(env.store.pool())
    .await
    .unwrap();
    assert_eq!(audit.len(), 4, "{audit:?}");
    assert!(
        audit.contains(&("k9-01".into(), "dispatched".into())),
        "{audit:?}"
    );
    assert!(
        audit.contains(&("k9-02".into(), "not confirmed".into())),
        "{audit:?}"
    );
    // Admins see the dispatch that could not be confirmed.
    fake.lock().unwrap().dispatch_delay_ms = 0;
    let unconfirmed = env.store.unconfirmed_dispatches(10).await.unwrap();
    assert_eq!(unconfirmed.len(), 1);
    assert_eq!(unconfirmed[0].application, "k9-02");
    assert!(
        unconfirmed[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("Dispatch not confirmed"),
        "{:?}",
        unconfirmed[0].error
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
