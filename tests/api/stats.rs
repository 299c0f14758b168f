//! Delivery metrics: `/api/v1/stats`, its CSV, the `/stats` page, and commit times from
//! GitHub for the lead time.

use crate::common::{self, fake_github};
use serde_json::{json, Value};
use std::time::Duration;

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const HOUR: i64 = 3_600_000;

/// Polls `path` until `ready` holds for its JSON (the stats task counts a little later).
async fn stats_when(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = common::send(client.get(url).bearer_auth(token)).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        if ready(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stats never became ready: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Content Store's notifications (environment, version, time), each accepted.
async fn notify_all(app: &common::TestApp, notes: &[(&str, &str, i64)]) {
    for (env, v, at) in notes {
        let body = json!({"repo": "alphagov/content-store", "deployment": {"environment": env, "version": v, "created_at": iso(*at)}});
        let status = app.post_json("/deployments", &body).await.status();
        assert_eq!(status, 200, "{env} {v}");
    }
}

#[tokio::test]
async fn the_four_metrics_count_failures_rollbacks_and_restores() {
    let app = common::TestApp::builder().spawn().await;
    // Two days ago, at midnight UTC, so everything falls on one day.
    let t0 = (app::store::now_ms() / 86_400_000 - 2) * 86_400_000;
    notify_all(
        &app,
        &[
            ("integration", "v1", t0),
            ("staging", "v1", t0 + HOUR / 2),
            ("production", "v1", t0 + 2 * HOUR),
            ("integration", "v2", t0 + 2 * HOUR + 1000),
        ],
    )
    .await;
    // v2 fails in production (the event creates the deployment)...
    for status in ["started", "failed"] {
        let r = app
            .event(json!({"repo": "alphagov/content-store", "environment": "production", "version": "v2",
                "stage": "rollout", "status": status, "at": iso(t0 + 3 * HOUR), "message": "CrashLoopBackOff"}))
            .await;
        assert!(r.status().is_success(), "{status}: {}", r.status());
    }
    // ...v3 restores it two hours later; then v1 comes back: a rollback of v3.
    notify_all(
        &app,
        &[
            ("production", "v3", t0 + 5 * HOUR),
            ("production", "v1", t0 + 6 * HOUR),
        ],
    )
    .await;
    let v = stats_when(&app.client, &app.url("/api/v1/stats"), &app.token, |v| {
        v["change_failure_rate"]["production_deployments"] == 4
    })
    .await;
    assert_eq!(v["days"], 90);
    assert_eq!(
        v["environments"],
        json!(["integration", "staging", "production"])
    );
    assert_eq!(v["deployment_frequency"]["integration"]["deployments"], 2);
    assert_eq!(v["deployment_frequency"]["staging"]["deployments"], 1);
    assert_eq!(v["deployment_frequency"]["production"]["failed"], 1);
    let cfr = &v["change_failure_rate"];
    assert_eq!(
        (cfr["failed_changes"].as_u64(), cfr["rollbacks"].as_u64()),
        (Some(2), Some(1)),
        "{cfr}"
    );
    assert_eq!(cfr["rate"], 0.5);
    // Lead time: v1 twice (2 h and 6 h after its integration deploy), v2 from its own
    // integration deploy (about 1 h); v3 never went through integration.
    let lead = &v["lead_time"];
    assert_eq!(
        (lead["count"].as_u64(), lead["from_commit"].as_u64()),
        (Some(3), Some(0)),
        "{lead}"
    );
    let near = |got: &Value, want_s: f64| (got.as_f64().unwrap() / want_s - 1.0).abs() < 0.025;
    assert!(near(&lead["median_seconds"], 7200.0), "{lead}");
    // Restores: v2's failure to v3 (2 h), and v3 replaced by the rollback an hour later.
    let ttr = &v["time_to_restore"];
    assert_eq!(ttr["count"], 2, "{ttr}");
    assert!(near(&ttr["median_seconds"], 3600.0), "{ttr}");
    let day = chrono::DateTime::from_timestamp_millis(t0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let daily = v["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 90);
    let that_day = daily.iter().find(|d| d["date"] == day.as_str()).unwrap();
    assert_eq!(that_day["deployments"]["production"], 4);
    assert!(v["weekly"].as_array().unwrap().len() >= 13);

    // One application, one environment, a range.
    let one = app
        .get_json_ok(&format!(
            "/api/v1/stats?application=content-store&environment=production&from={day}&to={day}"
        ))
        .await;
    assert_eq!(one["environments"], json!(["production"]));
    assert_eq!(one["days"], 1);
    assert_eq!(one["change_failure_rate"], v["change_failure_rate"]);
    assert_eq!(one["time_to_restore"], v["time_to_restore"]);
    let (_, other) = app.get_json("/api/v1/stats?application=frontend").await;
    assert_eq!(other["change_failure_rate"]["production_deployments"], 0);
    assert_eq!(other["change_failure_rate"]["rate"], Value::Null);

    // The CSV: one line per day and environment.
    let r = common::send(
        app.client
            .get(app.url(&format!("/api/v1/stats.csv?from={day}&to={day}")))
            .bearer_auth(&app.token),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.text().await.unwrap(),
        format!("date,environment,deployments\n{day},integration,2\n{day},staging,1\n{day},production,4\n")
    );
}

#[tokio::test]
async fn bad_stats_queries_get_precise_errors() {
    let app = common::TestApp::builder().spawn().await;
    for (query, status, field) in [
        ("from=yesterday", 422, Some("from")),
        ("from=2026-02-01&to=2026-01-01", 422, Some("from")),
        ("from=2020-01-01&to=2026-01-01", 422, Some("from")),
        ("to=2026-02-30", 422, Some("to")),
        ("environment=qa", 422, Some("environment")),
        ("application=..%2Fetc", 422, Some("application")),
        ("application=nope", 404, None),
        ("from=%FF", 422, None),
    ] {
        let (s, body) = app.get_json(&format!("/api/v1/stats?{query}")).await;
        assert_eq!(s, status, "{query}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{query}: {body}"
        );
        if let Some(f) = field {
            assert_eq!(body["field"], f, "{query}: {body}");
        }
    }
    // The pipeline API wants a token; the page's CSV wants a signed-in person.
    let r = common::send(app.client.get(app.url("/api/v1/stats"))).await;
    assert_eq!(r.status(), 401);
    let anonymous = common::browser();
    let r = common::send(anonymous.get(app.url("/stats.csv"))).await;
    assert_eq!(r.status(), 303);
    assert!(common::header(&r, "location").starts_with("/auth/sign-in"));
    let viewer = app.signed_in("viewer").await;
    let r = common::send(viewer.get(app.url("/stats.csv?environment=staging"))).await;
    assert_eq!(r.status(), 200);
    assert!(common::header(&r, "content-disposition")
        .starts_with("attachment; filename=\"release-stats-"));
    let body = r.text().await.unwrap();
    assert_eq!(body.lines().count(), 91, "{body}");
    assert!(body.lines().skip(1).all(|l| l.ends_with(",staging,0")));
}

#[tokio::test]
async fn the_stats_page_draws_charts_with_tables_beside_them() {
    let app = common::TestApp::builder().spawn().await;
    let now = app::store::now_ms();
    for (env, v) in [
        ("integration", "v1"),
        ("staging", "v1"),
        ("production", "v1"),
    ] {
        let body = json!({"repo": "alphagov/frontend", "deployment": {"environment": env, "version": v, "created_at": iso(now - HOUR)}});
        assert_eq!(app.post_json("/deployments", &body).await.status(), 200);
    }
    stats_when(&app.client, &app.url("/api/v1/stats"), &app.token, |v| {
        v["change_failure_rate"]["production_deployments"] == 1
    })
    .await;
    let html = app.page_ok("/stats").await;
    for want in [
        "Delivery stats",
        "Deployments to production a day",
        "Lead time for changes",
        "Change failure rate",
        "0.0%",
        "Time to restore",
        "<svg",
        "role=\"img\"",
        "<caption>Deployments per week</caption>",
        "href=\"/stats.csv\"",
    ] {
        assert!(html.contains(want), "missing {want:?}");
    }
    assert_eq!(html.matches("<svg").count(), 4);
    // A filter that names nothing is an error on the page, with its status.
    let (status, html) = app.page("/stats?application=nope").await;
    assert_eq!(status, 404, "{html}");
    assert!(html.contains("no application nope"));
    let (status, _) = app.page("/stats?from=tomorrow").await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn lead_time_starts_at_the_commit_when_github_knows_it() {
    let extra = r#"
[[applications]]
name = "Frontend"
repo = "example-org/frontend"
"#;
    let env = common::TestApp::builder()
        .github()
        .extra(extra)
        .settings(|s| {
            s.demo = false;
            s.alert_env
                .insert("RELEASE_GITHUB_STATS_TOKEN".into(), "stats-token".into());
        })
        .spawn()
        .await;
    let token = env.token.clone();
    let now = app::store::now_ms();
    let known = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let unknown = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    env.fake
        .lock()
        .unwrap()
        .commits
        .insert(known.into(), iso(now - 10 * HOUR));
    let client = fake_github::client();
    for (version, sha) in [("v1", known), ("v2", unknown)] {
        for (env_name, at) in [("integration", now - 4 * HOUR), ("production", now - HOUR)] {
            let r = common::send(client
                .post(format!("{}/deployments", env.base))
                .bearer_auth(&token)
                .json(&json!({"repo": "example-org/frontend", "deployment": {"environment": env_name, "version": version, "sha": sha, "created_at": iso(at)}}))).await;
            assert_eq!(r.status(), 200);
        }
    }
    let v = stats_when(
        &client,
        &format!("{}/api/v1/stats", env.base),
        &token,
        |v| v["lead_time"]["from_commit"] == 1 && v["lead_time"]["count"] == 2,
    )
    .await;
    // v1 from its commit (9 h), v2 from its integration deploy (3 h): p90 is the commit's.
    let p90 = v["lead_time"]["p90_seconds"].as_f64().unwrap();
    assert!((p90 / 32_400.0 - 1.0).abs() < 0.025, "{v:#}");
    let lookups = env.fake.lock().unwrap().commit_lookups.clone();
    let mut paths: Vec<&str> = lookups.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            format!("/api/repos/example-org/frontend/commits/{known}"),
            format!("/api/repos/example-org/frontend/commits/{unknown}")
        ]
    );
    for r in &lookups {
        assert_eq!(r.headers["authorization"], "Bearer stats-token");
        assert_eq!(r.headers["accept"], "application/vnd.github+json");
    }
}

/// The same counting on PostgreSQL (the SQL runs on both).
#[tokio::test]
async fn stats_count_on_postgres() {
    common::on_postgres("stats_count_on_postgres", |url| async move {
        let app = common::TestApp::builder().database(&url).spawn().await;
        let now = app::store::now_ms();
        for (env, v, at) in [
            ("integration", "v1", now - 3 * HOUR),
            ("production", "v1", now - 2 * HOUR),
            ("production", "v2", now - HOUR),
            ("production", "v1", now - HOUR / 2),
        ] {
            let body = json!({"repo": "alphagov/content-store", "deployment": {"environment": env, "version": v, "created_at": iso(at)}});
            assert_eq!(app.post_json("/deployments", &body).await.status(), 200);
        }
        let v = stats_when(&app.client, &app.url("/api/v1/stats"), &app.token, |v| {
            v["change_failure_rate"]["production_deployments"] == 3
        })
        .await;
        assert_eq!(v["change_failure_rate"]["rollbacks"], 1);
        assert_eq!(v["lead_time"]["count"], 2);
        let one = app
            .get_json_ok("/api/v1/stats?application=content-store")
            .await;
        assert_eq!(one["change_failure_rate"], v["change_failure_rate"]);
        app.store.close().await;
    })
    .await;
}

/// A failure on one day restored on a later one: the later day's count reads production's
/// state before it (the last deployment, and since when it has been failing).
#[tokio::test]
async fn a_restore_spanning_days_is_counted() {
    let app = common::TestApp::builder().spawn().await;
    let today = app::store::now_ms() / 86_400_000 * 86_400_000;
    for (v, at) in [
        ("v1", today - 3 * 86_400_000),
        ("v2", today - 2 * 86_400_000),
    ] {
        for status in ["started", "failed"] {
            app.event_ok(
                json!({"repo": "alphagov/content-store", "environment": "production", "version": v,
                    "stage": "rollout", "status": status, "at": iso(at)}),
            )
            .await;
        }
    }
    let body = json!({"repo": "alphagov/content-store", "deployment": {"environment": "production", "version": "v3", "created_at": iso(today + 60_000)}});
    assert_eq!(app.post_json("/deployments", &body).await.status(), 200);
    let v = stats_when(&app.client, &app.url("/api/v1/stats"), &app.token, |v| {
        v["change_failure_rate"]["production_deployments"] == 3 && v["counting"] == false
    })
    .await;
    // Failing since v1 (three days before v3 succeeded), one restore.
    let ttr = &v["time_to_restore"];
    assert_eq!(ttr["count"], 1, "{ttr}");
    let days = ttr["median_seconds"].as_f64().unwrap() / 86_400.0;
    assert!((days / 3.0 - 1.0).abs() < 0.025, "{ttr}");
    assert_eq!(v["change_failure_rate"]["failed_changes"], 2);
    // Counting the days again from scratch gives what was counted a pass at a time.
    let days: Vec<i64> = (0..=3).map(|n| today / 86_400_000 - n).rev().collect();
    app.store.recount_stats(&days).await.unwrap();
    let (_, again) = app.get_json("/api/v1/stats").await;
    assert_eq!(again, v);
    // One application, counted on demand for today alone, reads the same history.
    let day = chrono::DateTime::from_timestamp_millis(today)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let (_, one) = app
        .get_json(&format!(
            "/api/v1/stats?application=content-store&from={day}&to={day}"
        ))
        .await;
    assert_eq!(one["time_to_restore"]["count"], 1, "{one}");
}

/// The third review's finding 7: one application's stats are counted once per change of
/// its history (then answered from memory), and at most two applications are counted at
/// once: beyond, 429 with Retry-After, while answers already counted still come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_applications_stats_are_counted_once_per_change_and_bounded() {
    let app = common::TestApp::builder().spawn().await;
    let id = app
        .store
        .application("content-store")
        .await
        .unwrap()
        .unwrap()
        .id;
    let now = app::store::now_ms();
    // Two thousand production deployments over two years.
    let rows: Vec<(i64, String, String, i64)> = (0..2_000i64)
        .map(|i| {
            (
                id,
                "production".to_string(),
                format!("v{i}"),
                now - (2_000 - i) * 8 * HOUR,
            )
        })
        .collect();
    app.store.bulk_insert_deployments(&rows).await.unwrap();
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%d")
            .to_string()
    };
    let (from, to) = (day(now - 730 * 24 * HOUR), day(now));
    let url = |app_name: &str| format!("/api/v1/stats?application={app_name}&from={from}&to={to}");
    let first = app.get_json_ok(&url("content-store")).await;
    assert_eq!(
        first["change_failure_rate"]["production_deployments"],
        2_000
    );
    // Every counting slot taken: the answer already counted still comes, from memory.
    let held: Vec<_> = std::iter::from_fn(|| app.store.hold_stats_counting()).collect();
    assert_eq!(held.len(), 2);
    let again = app.get_json_ok(&url("content-store")).await;
    assert!(again == first, "the same answer");
    // An application not counted yet must wait: 429 with Retry-After.
    let r = common::send(
        app.client
            .get(app.url(&url("frontend")))
            .bearer_auth(&app.token),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    drop(held);
    let (s, _) = app.get_json(&url("frontend")).await;
    assert_eq!(s, 200);
    // A new deployment changes the history: counted again.
    app.notify_ok("alphagov/content-store", "production", "v5000")
        .await;
    let (s, after) = app.get_json(&url("content-store")).await;
    assert_eq!(s, 200);
    assert_eq!(
        after["change_failure_rate"]["production_deployments"],
        2_001
    );
}
