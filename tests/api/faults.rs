//! Faults and load survived: mixed concurrent writers on the embedded SQLite database.

use crate::common;

use serde_json::json;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Pipeline notifiers, event senders, people signing in and browsing, people deploying and
/// freezing in `--demo` (whose simulated pipeline writes too), all at once on one SQLite
/// file: no 5xx, no "database is locked", and every acknowledged notification is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_concurrent_writers_on_sqlite_never_fail() {
    let app = common::TestApp::builder()
        .config("")
        .demo()
        .settings(mixed_settings)
        .spawn()
        .await;
    mixed_writers(Arc::new(app)).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_concurrent_writers_on_postgres_never_fail() {
    common::on_postgres(
        "mixed_concurrent_writers_on_postgres_never_fail",
        |url| async move {
            let app = Arc::new(
                common::TestApp::builder()
                    .config("")
                    .demo()
                    .database(&url)
                    .settings(mixed_settings)
                    .spawn()
                    .await,
            );
            mixed_writers(app.clone()).await;
            app.store.close().await;
        },
    )
    .await;
}

fn mixed_settings(s: &mut release::startup::Settings) {
    s.demo_stage_ms = 20;
    s.limits.auth_per_minute = 1_000_000;
}

/// What the tasks of [`mixed_writers`] share: the server, until when they send, the
/// failures seen, how many requests they sent, and the notifications acknowledged.
struct Load {
    app: Arc<common::TestApp>,
    until: Instant,
    errors: Mutex<Vec<String>>,
    requests: AtomicUsize,
    acknowledged: Mutex<Vec<(String, String, String)>>,
}

impl Load {
    /// Starts `workers` tasks, `task(load, w)` for each worker `w`.
    fn spawn<F, Fut>(self: &Arc<Self>, tasks: &mut Vec<JoinHandle<()>>, workers: usize, task: F)
    where
        F: Fn(Arc<Load>, usize) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        for w in 0..workers {
            tasks.push(tokio::spawn(task(self.clone(), w)));
        }
    }

    fn running(&self) -> bool {
        Instant::now() < self.until
    }

    /// Keeps `what`'s answer as a failure when it is a 5xx or says the database is locked.
    fn check(&self, what: &str, status: u16, body: &str) {
        if status >= 500 || body.contains("locked") {
            self.errors
                .lock()
                .unwrap()
                .push(format!("{what}: {status} {body}"));
        }
    }
}

async fn mixed_writers(app: Arc<common::TestApp>) {
    let secs: u64 = std::env::var("FAULT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let load = Arc::new(Load {
        app,
        until: Instant::now() + Duration::from_secs(secs),
        errors: Mutex::default(),
        requests: AtomicUsize::new(0),
        acknowledged: Mutex::default(),
    });
    let mut tasks = Vec::new();
    load.spawn(&mut tasks, 4, |load, w| async move {
        let mut i = 0;
        while load.running() {
            i += 1;
            let (repo, env, version) = (
                format!("load-org/service-{}", (w * 7 + i) % 20),
                ["integration", "staging", "production"][i % 3].to_string(),
                format!("v{w}-{i}"),
            );
            let r = load.app.notify(&repo, &env, &version).await;
            load.requests.fetch_add(1, Ordering::Relaxed);
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            load.check("notify", status, &body);
            if status == 200 {
                load.acknowledged.lock().unwrap().push((repo, env, version));
            }
        }
    });
    load.spawn(&mut tasks, 3, |load, w| async move {
        let mut i = 0;
        while load.running() {
            i += 1;
            let stage = ["build", "sync", "smoke_tests"][i % 3];
            let r = load
                .app
                .event(
                    json!({"repo": format!("load-org/events-{}", i % 10), "environment": "staging",
                    "version": format!("e{w}-{}", i / 3), "stage": stage,
                    "status": "succeeded", "delivery_id": format!("d-{w}-{i}")}),
                )
                .await;
            load.requests.fetch_add(1, Ordering::Relaxed);
            let status = r.status().as_u16();
            load.check("event", status, &r.text().await.unwrap_or_default());
        }
    });
    load.spawn(&mut tasks, 2, |load, w| async move {
        while load.running() {
            let c = load
                .app
                .signed_in(if w == 0 { "viewer" } else { "admin" })
                .await;
            for path in ["/", "/activity", "/applications/publisher"] {
                let r = common::send(c.get(load.app.url(path))).await;
                load.requests.fetch_add(2, Ordering::Relaxed);
                let status = r.status().as_u16();
                load.check(path, status, &r.text().await.unwrap_or_default());
            }
        }
    });
    load.spawn(&mut tasks, 2, |load, w| async move {
        let shortname = ["frontend", "signon"][w];
        let c = load.app.signed_in("admin").await;
        let mut i = 0;
        while load.running() {
            i += 1;
            let git_ref = format!("v{w}{i}");
            for (f, form) in [
                (
                    "deploy",
                    vec![
                        ("shortname", shortname),
                        ("environment", "integration"),
                        ("git_ref", git_ref.as_str()),
                    ],
                ),
                (
                    "freeze",
                    vec![("shortname", shortname), ("reason", "load test")],
                ),
                ("unfreeze", vec![("shortname", shortname)]),
            ] {
                let (status, body) = common::call(&load.app.base, &c, f, &form).await;
                load.requests.fetch_add(1, Ordering::Relaxed);
                load.check(f, status, &body);
            }
        }
    });
    for t in tasks {
        t.await.unwrap();
    }
    let errors = load.errors.lock().unwrap().clone();
    let n = load.requests.load(Ordering::Relaxed);
    eprintln!(
        "mixed writers: {n} requests in {secs} s, {} errors",
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} of {n} failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(n > 100, "the load ran ({n} requests)");
    // Every acknowledged notification is recorded.
    let acknowledged = load.acknowledged.lock().unwrap().clone();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.repo, d.environment, d.version FROM deployments d JOIN applications a ON a.id = d.application_id",
    )
    .fetch_all(load.app.store.pool())
    .await
    .unwrap();
    let rows: std::collections::HashSet<_> = rows.into_iter().collect();
    let missing: Vec<_> = acknowledged.iter().filter(|a| !rows.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged notifications missing: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// GitHub slower than the configured timeout: the dispatch GitHub received is recorded
/// and linked to the run it started (looked up once the answer was lost), so the slot
/// stays held by that deploy. A lost answer with no run behind it is "not confirmed", and
/// frees the slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_github_is_looked_up_and_its_run_linked_or_the_dispatch_not_confirmed() {
    let env = common::TestApp::builder()
        .github()
        .settings(|s| {
            s.limits.outside_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await;
    env.member("octocat", &["developers"]);
    env.fake.lock().unwrap().dispatch_delay_ms = 3_000;
    let c = env.sign_in("octocat").await;
    let form = [
        ("shortname", "frontend"),
        ("environment", "integration"),
        ("git_ref", "v5"),
    ];
    let (status, body) = common::call(&env.base, &c, "deploy", &form).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("https://github.example/example-org/frontend/actions/runs/777"),
        "{body}"
    );
    assert_eq!(env.fake.lock().unwrap().dispatches.len(), 1);
    let row: (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT d.status, d.run_url, d.dispatch_state FROM deployments d WHERE d.trigger_kind = 'manual' AND d.version = 'v5'",
    )
    .fetch_one(env.store.pool())
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "requested".to_string(),
            Some("https://github.example/example-org/frontend/actions/runs/777".to_string()),
            None
        )
    );
    // That deploy is in flight: a second is refused.
    env.expect(&c, "deploy", &form, 409).await;

    // A lost answer with no run behind it (GitHub's 502): not confirmed, slot released.
    env.fake.lock().unwrap().dispatch_delay_ms = 0;
    let boom = [
        ("shortname", "publisher"),
        ("environment", "integration"),
        ("git_ref", "boom"),
    ];
    let body = env.expect(&c, "deploy", &boom, 502).await;
    assert!(body.contains("Dispatch not confirmed"), "{body}");
    assert!(
        body.contains("check the Actions tab of example-org/publisher"),
        "{body}"
    );
    let held = env.count(
        "SELECT COUNT(*) FROM deploy_locks l JOIN applications a ON a.id = l.application_id WHERE a.shortname = 'publisher'",
    )
    .await;
    assert_eq!(held, 0, "the slot is free");
    env.expect(
        &c,
        "deploy",
        &[
            ("shortname", "publisher"),
            ("environment", "integration"),
            ("git_ref", "v6"),
        ],
        200,
    )
    .await;
}

/// `kill -9` of `release serve` while notifications stream in, then a restart: every
/// notification that was acknowledged (200) is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("release.db").display());
    let bin = env!("CARGO_BIN_EXE_release");
    let out = std::process::Command::new(bin)
        .args(["token", "--database-url", &url, "create", "pipeline"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let start = || {
        let port = common::binary::free_port();
        let child = common::binary::serve(port, &["--dev-sign-in", "--database-url", &url], &[]);
        (child, format!("http://127.0.0.1:{port}"))
    };
    let http = common::http_client_within(Duration::from_secs(10));
    let ready = |base: String| async move {
        common::binary::wait_ready_within(&base, 200, Duration::from_millis(50)).await
    };
    let (mut child, base) = start();
    ready(base.clone()).await;
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut senders = Vec::new();
    for w in 0..4 {
        let (http, base, token, acknowledged, stop) = (
            http.clone(),
            base.clone(),
            token.clone(),
            acknowledged.clone(),
            stop.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let version = format!("v{w}-{i}");
                let r = http
                    .post(format!("{base}/deployments"))
                    .bearer_auth(&token)
                    .json(&json!({"repo": format!("crash-org/app-{w}"), "deployment": {"environment": "staging", "version": version}}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => acknowledged.lock().unwrap().push(version),
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 50,
        "notifications flowed ({})",
        acknowledged.len()
    );
    let (_child, base) = start();
    ready(base).await;
    let store = app::store::Store::connect(&url, Default::default())
        .await
        .unwrap();
    let versions: std::collections::HashSet<String> =
        sqlx::query_scalar::<_, String>("SELECT version FROM deployments")
            .fetch_all(store.pool())
            .await
            .unwrap()
            .into_iter()
            .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|v| !versions.contains(*v))
        .collect();
    eprintln!(
        "kill -9: {} acknowledged, {} lost",
        acknowledged.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "{lost:?}");
}

/// Argo Workflows slower than the configured timeout, then unreachable: Resubmit says so,
/// the deployment stays failed (nothing recorded as resubmitted), and the attempt is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_unreachable_argo_is_explained_and_records_nothing() {
    let slow = common::fake_argo::fake_argo("argo-secret").await;
    slow.delay_ms
        .store(3_000, std::sync::atomic::Ordering::SeqCst);
    let slow_url = slow.base.clone();
    // A port nobody listens on.
    let closed = format!("127.0.0.1:{}", common::binary::free_port());
    let env = common::TestApp::builder()
        .github()
        .extra(&format!(
            "[argo.integration]\nurl = \"{slow_url}\"\n[argo.staging]\nurl = \"http://{closed}\"\n"
        ))
        .settings(|s| s.limits.outside_timeout = Duration::from_secs(1))
        .spawn()
        .await;
    env.member("octocat", &["developers"]);
    let c = env.sign_in("octocat").await;
    let mut failed = Vec::new();
    for e in ["integration", "staging"] {
        let answer = env
            .event_json(json!({"repo": "example-org/frontend", "environment": e, "version": "v3", "stage": "smoke_tests",
                          "status": "failed", "workflow": {"namespace": "apps", "name": "post-sync-3"}}))
            .await;
        failed.push(answer["deployment_id"].as_i64().unwrap());
    }
    // Integration's Argo is slow.
    let body = env
        .expect(
            &c,
            "resubmit",
            &[("deployment_id", &failed[0].to_string())],
            502,
        )
        .await;
    assert!(
        body.contains("Argo Workflows did not answer within 1 seconds"),
        "{body}"
    );
    // Staging's is unreachable (octocat may not act on staging; an admin may).
    let admin_env_user = "release-admin";
    env.member(admin_env_user, &["release-admins"]);
    let admin = env.sign_in(admin_env_user).await;
    let (status, body) = common::call(
        &env.base,
        &admin,
        "resubmit",
        &[("deployment_id", &failed[1].to_string())],
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("Argo Workflows could not be reached"),
        "{body}"
    );
    for id in failed {
        let status: String = sqlx::query_scalar("SELECT status FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_one(env.store.pool())
            .await
            .unwrap();
        assert_eq!(status, "failed", "nothing recorded as resubmitted");
    }
    let audit = env.audit(Some("frontend"), 20).await;
    // Each attempt: its intent, then what became of it. Unreachable: nothing was sent
    // (failed); a timeout: Argo may have acted (not confirmed, check Argo).
    let outcomes = |o: &str| {
        audit
            .iter()
            .filter(|a| a.action == "resubmit" && a.outcome == o)
            .count()
    };
    assert_eq!(outcomes("requested"), 2);
    assert_eq!(outcomes("failed"), 1);
    assert_eq!(outcomes("not confirmed"), 1);
}
