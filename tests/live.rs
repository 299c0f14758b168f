//! Live updates: a change taken by the API reaches a browser's event stream, on one
//! server (SQLite) and across two servers sharing one PostgreSQL database.

mod common;

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

async fn open_stream(app: &common::TestApp) -> reqwest::Response {
    let c = app.signed_in("viewer").await;
    let resp = c.get(app.url("/api/live")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_reaches_the_stream_within_a_second() {
    let app = common::spawn().await;
    let mut stream = open_stream(&app).await;
    let started = Instant::now();
    let r = app
        .event(json!({"repo": "alphagov/frontend", "environment": "integration", "version": "v1", "stage": "build", "status": "started"}))
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        wait_for_change(&mut stream, "frontend", Duration::from_secs(1)).await,
        "no change event within a second"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_needs_a_signed_in_person() {
    let app = common::spawn().await;
    let r = reqwest::Client::new()
        .get(app.url("/api/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database_share_changes() {
    let Some((admin, db, url)) =
        common::fresh_postgres("two_servers_on_one_postgres_database_share_changes").await
    else {
        return;
    };
    let result = tokio::spawn(async move {
        let a = common::spawn_on(
            common::CONFIG,
            false,
            url.clone(),
            tempfile::tempdir().unwrap(),
        )
        .await;
        let b = common::spawn_on(common::CONFIG, false, url, tempfile::tempdir().unwrap()).await;
        let mut stream = open_stream(&b).await;
        // Let B's listener settle, then change something through A.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            a.notify("alphagov/content-store", "staging", "v77")
                .await
                .status(),
            200
        );
        assert!(
            wait_for_change(&mut stream, "content-store", Duration::from_secs(1)).await,
            "B's browser heard A's change"
        );
        a.store.close().await;
        b.store.close().await;
    })
    .await;
    common::drop_postgres(admin, &db).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
}
