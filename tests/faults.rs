//! Faults and load survived: mixed concurrent writers on the embedded SQLite database.

mod common;

use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pipeline notifiers, event senders, people signing in and browsing, people deploying and
/// freezing in `--demo` (whose simulated pipeline writes too), all at once on one SQLite
/// file: no 5xx, no "database is locked", and every acknowledged notification is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_concurrent_writers_on_sqlite_never_fail() {
    let secs: u64 = std::env::var("FAULT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let app = Arc::new(
        common::spawn_custom("", true, |s| {
            s.demo_stage_ms = 20;
            s.limits.auth_per_minute = 1_000_000;
        })
        .await,
    );
    let until = Instant::now() + Duration::from_secs(secs);
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let requests = Arc::new(AtomicUsize::new(0));
    let acknowledged: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    let check = |errors: &Arc<Mutex<Vec<String>>>, what: &str, status: u16, body: &str| {
        if status >= 500 || body.contains("locked") {
            errors
                .lock()
                .unwrap()
                .push(format!("{what}: {status} {body}"));
        }
    };
    for w in 0..4 {
        let (app, errors, requests, acknowledged) = (
            app.clone(),
            errors.clone(),
            requests.clone(),
            acknowledged.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                i += 1;
                let (repo, env, version) = (
                    format!("load-org/service-{}", (w * 7 + i) % 20),
                    ["integration", "staging", "production"][i % 3].to_string(),
                    format!("v{w}-{i}"),
                );
                let r = app.notify(&repo, &env, &version).await;
                requests.fetch_add(1, Ordering::Relaxed);
                let status = r.status().as_u16();
                let body = r.text().await.unwrap_or_default();
                check(&errors, "notify", status, &body);
                if status == 200 {
                    acknowledged.lock().unwrap().push((repo, env, version));
                }
            }
        }));
    }
    for w in 0..3 {
        let (app, errors, requests) = (app.clone(), errors.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                i += 1;
                let stage = ["build", "sync", "smoke_tests"][i % 3];
                let r = app
                    .event(json!({"repo": format!("load-org/events-{}", i % 10), "environment": "staging",
                        "version": format!("e{w}-{}", i / 3), "stage": stage,
                        "status": "succeeded", "delivery_id": format!("d-{w}-{i}")}))
                    .await;
                requests.fetch_add(1, Ordering::Relaxed);
                let status = r.status().as_u16();
                check(&errors, "event", status, &r.text().await.unwrap_or_default());
            }
        }));
    }
    for w in 0..2 {
        let (app, errors, requests) = (app.clone(), errors.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let c = app.signed_in(if w == 0 { "viewer" } else { "admin" }).await;
                for path in ["/", "/activity", "/applications/publisher"] {
                    let r = c.get(app.url(path)).send().await.unwrap();
                    requests.fetch_add(2, Ordering::Relaxed);
                    let status = r.status().as_u16();
                    check(&errors, path, status, &r.text().await.unwrap_or_default());
                }
            }
        }));
    }
    for (w, shortname) in ["frontend", "signon"].into_iter().enumerate() {
        let (app, errors, requests) = (app.clone(), errors.clone(), requests.clone());
        tasks.push(tokio::spawn(async move {
            let c = app.signed_in("admin").await;
            let mut i = 0;
            while Instant::now() < until {
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
                    let (status, body) = common::call(&app.base, &c, f, &form).await;
                    requests.fetch_add(1, Ordering::Relaxed);
                    check(&errors, f, status, &body);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let errors = errors.lock().unwrap().clone();
    let n = requests.load(Ordering::Relaxed);
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
    let acknowledged = acknowledged.lock().unwrap().clone();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.repo, d.environment, d.version FROM deployments d JOIN applications a ON a.id = d.application_id",
    )
    .fetch_all(app.store.pool())
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
