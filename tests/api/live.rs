//! Live updates: a change taken by the API reaches a browser's event stream, on one
//! server (SQLite) and across two servers sharing one PostgreSQL database.

use crate::common;

use serde_json::json;
use std::time::{Duration, Instant};

/// Reads the SSE stream until an event whose data is `want`, or gives up after `within`.
async fn wait_for_change(resp: &mut reqwest::Response, want: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut seen = String::new();
    while Instant::now() < deadline {
        match tokio::time::timeout(deadline - Instant::now(), resp.chunk()).await {
            Ok(Ok(Some(bytes))) => {
                seen.push_str(&String::from_utf8_lossy(&bytes));
                if seen.contains(&format!("event: change\ndata: {want}\n")) {
                    return true;
                }
            }
            _ => return false,
        }
    }
    false
}

/// `app` is notified of `version` of alphagov/`app_name` in staging: whether `stream`
/// hears that application change within `seconds`.
async fn notified_and_heard(
    app: &common::TestApp,
    stream: &mut reqwest::Response,
    app_name: &str,
    version: &str,
    seconds: u64,
) -> bool {
    app.notify_ok(&format!("alphagov/{app_name}"), "staging", version)
        .await;
    wait_for_change(stream, app_name, Duration::from_secs(seconds)).await
}

async fn open_stream(app: &common::TestApp) -> reqwest::Response {
    let c = app.signed_in("viewer").await;
    let resp = common::send(c.get(app.url("/api/live"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_reaches_the_stream_within_a_second() {
    let app = common::TestApp::builder().spawn().await;
    let mut stream = open_stream(&app).await;
    let started = Instant::now();
    app.event_ok(json!({"repo": "alphagov/frontend", "environment": "integration", "version": "v1", "stage": "build", "status": "started"}))
        .await;
    assert!(
        wait_for_change(&mut stream, "frontend", Duration::from_secs(1)).await,
        "no change event within a second"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_needs_a_signed_in_person() {
    let app = common::TestApp::builder().spawn().await;
    let r = common::send(reqwest::Client::new().get(app.url("/api/live"))).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database_share_changes() {
    let test = "two_servers_on_one_postgres_database_share_changes";
    common::on_postgres(test, |url| async move {
        let a = common::TestApp::builder().database(&url).spawn().await;
        let b = common::TestApp::builder().database(&url).spawn().await;
        let mut stream = open_stream(&b).await;
        // Let B's listener settle, then change something through A.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let heard = notified_and_heard(&a, &mut stream, "content-store", "v77", 1).await;
        assert!(heard, "B's browser heard A's change");
        a.store.close().await;
        b.store.close().await;
    })
    .await;
}

/// PostgreSQL's connections to Release terminated under load (`pg_terminate_backend`, as a
/// restart or failover does): the API answers 503, never 500, meanwhile; readiness comes
/// back to 200 by itself; an open live stream keeps working without a reload (the LISTEN
/// connection reconnects and tells the page to refetch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_under_load_are_survived() {
    let Some((mut admin, db, url)) =
        common::fresh_postgres("postgres_connections_cut_under_load_are_survived").await
    else {
        return;
    };
    let app = common::TestApp::builder().database(&url).spawn().await;
    let mut stream = open_stream(&app).await;
    let app = std::sync::Arc::new(app);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u16>::new()));
    let mut load = Vec::new();
    for w in 0..3 {
        let (app, stop, statuses) = (app.clone(), stop.clone(), statuses.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let r = app
                    .notify("alphagov/content-store", "staging", &format!("v{w}-{i}"))
                    .await;
                statuses.lock().unwrap().push(r.status().as_u16());
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&db)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert!(!cut.is_empty(), "there were connections to cut");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Readiness recovers by itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = app.get_json("/healthcheck/ready").await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "readiness came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "only 200 or 503: {:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert!(statuses.iter().filter(|s| **s == 200).count() > 10);
    // The open stream still hears changes (after a `*` for what it may have missed).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let heard = notified_and_heard(&app, &mut stream, "frontend", "v-after", 5).await;
    assert!(heard, "the live stream resumed without a reload");
    app.store.close().await;
    drop(app);
    common::drop_postgres(admin, &db).await;
}

/// A grid's stream (`?grid=1`) gets the changed row itself: one `grid` event with the
/// app's shortname, the new summary line and the row's HTML (escaped), within a second of
/// the notification; a stream without `grid=1` gets no rows. (Escaping: `grid_cache`'s unit
/// tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_stream_gets_the_changed_row() {
    let app = common::TestApp::builder().spawn().await;
    let c = app.signed_in("viewer").await;
    let mut grid = common::send(c.get(app.url("/api/live?grid=1"))).await;
    assert_eq!(grid.status(), 200);
    let mut plain = open_stream(&app).await;
    // Let the streams subscribe before the change.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = app.notify("alphagov/frontend", "staging", "v9").await;
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = String::new();
    let delta = loop {
        assert!(Instant::now() < deadline, "no grid event: {seen}");
        if let Ok(Ok(Some(b))) =
            tokio::time::timeout(Duration::from_millis(500), grid.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&b));
        }
        if let Some(i) = seen.find("event: grid\n") {
            let rest = &seen[i..];
            if let Some(end) = rest.find("\n\n") {
                break rest[..end].to_string();
            }
        }
    };
    let lines: Vec<&str> = delta
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(lines.len(), 3, "{delta}");
    assert_eq!(lines[0], "frontend");
    assert!(lines[1].contains("id=\"grid-summary\""), "{delta}");
    assert!(lines[2].starts_with("<tr"), "{delta}");
    assert!(lines[2].contains("<b>v9</b>"), "{delta}");
    assert!(
        delta.len() < 5_000,
        "a delta is small: {} bytes",
        delta.len()
    );
    // The plain stream has its change event, and no rows.
    assert!(wait_for_change(&mut plain, "frontend", Duration::from_secs(1)).await);
    let mut rest = String::new();
    while let Ok(Ok(Some(b))) =
        tokio::time::timeout(Duration::from_millis(300), plain.chunk()).await
    {
        rest.push_str(&String::from_utf8_lossy(&b));
    }
    assert!(!rest.contains("event: grid"), "{rest}");
}
