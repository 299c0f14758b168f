//! What really runs: a fake Argo CD that speaks its API (the application list, and the
//! watch stream as newline-delimited JSON), asserting the exact requests and token; an
//! out-of-pipeline version recorded as `observed`; the watch dropping and reconnecting;
//! Argo CD down then up; two Release servers observing at once without duplicates.

use crate::common::fake_argo::{application, fake_argo};
use crate::common::{self, binary};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "argocd-staging-token";

fn config(fake: &str) -> String {
    format!("{}\n[argocd.staging]\nurl = \"{fake}\"\n", common::CONFIG)
}

fn with_token(s: &mut release::startup::Settings) {
    s.alert_env
        .insert("RELEASE_ARGOCD_TOKEN_STAGING".into(), TOKEN.into());
}

/// A server with `config`, reading Argo CD with the staging token.
async fn spawn(config: &str) -> common::TestApp {
    common::TestApp::builder()
        .config(config)
        .settings(with_token)
        .spawn()
        .await
}

/// A fake Argo CD, and a server watching it that flags drift after a second.
async fn watched_with_a_second_of_grace() -> (common::fake_argo::FakeArgo, common::TestApp) {
    let argocd = fake_argo(TOKEN).await;
    let config = format!(
        "{}\n[deploys]\ndrift_grace_seconds = 1\n",
        config(&argocd.base)
    );
    let app = spawn(&config).await;
    (argocd, app)
}

/// Waits (at most 10 s) until `f` holds for content-store's staging as the API shows it.
async fn wait_for(app: &common::TestApp, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (_, body) = app.get_json("/api/v1/applications/content-store").await;
        if f(&body["environments"]["staging"]) {
            return body["environments"]["staging"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, body) = app.get_json("/api/v1/applications/content-store").await;
    panic!("{what}: {}", body["environments"]["staging"]);
}

/// Whether the grid, as a viewer sees it, says `what` within 5 s.
async fn grid_says(app: &common::TestApp, what: &str) -> bool {
    for _ in 0..50 {
        let (_, html) = app.page("/").await;
        if html.contains(what) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_state_follows_argo_cd() {
    let argocd = fake_argo(TOKEN).await;
    let fake = argocd.base.clone();
    let app = spawn(&config(&fake)).await;
    // The pipeline's notification first (Argo CD lists nothing yet), so v5 is known.
    app.notify_ok("alphagov/content-store", "staging", "v5")
        .await;
    argocd.wait_for_watch().await;
    // The exact requests, with the environment's token: the list, then the watch.
    assert_eq!(
        argocd.requests_to("/api/v1/applications")[0],
        format!("Bearer {TOKEN}")
    );
    assert_eq!(
        argocd.requests_to("/api/v1/stream/applications")[0],
        format!("Bearer {TOKEN}")
    );
    argocd.list(application("content-store", "v5", "Healthy"));
    argocd.push("ADDED", application("content-store", "v5", "Healthy"));
    let staging = wait_for(&app, "the watched state", |s| s["live"]["version"] == "v5").await;
    assert_eq!(staging["live"]["health"], "Healthy");
    assert_eq!(staging["live"]["sync_status"], "Synced");
    assert_eq!(staging["live"]["operation_phase"], "Succeeded");
    assert_eq!(staging["live"]["argocd_app"], "content-store");
    assert!(staging["live"]["unknown_since"].is_null());
    assert_eq!(
        staging["current"]["trigger"], "continuous",
        "a known version is not re-recorded"
    );

    let content_store = |kind: &str, version: &str, health: &str| {
        argocd.push(kind, application("content-store", version, health))
    };
    // Someone syncs a version the pipeline never reported: it is live, and the history
    // records it as observed (current in staging).
    // While it rolls out (Progressing) it is live but not yet history.
    content_store("MODIFIED", "v6-hotfix", "Progressing");
    let staging = wait_for(&app, "the rollout", |s| s["live"]["version"] == "v6-hotfix").await;
    assert_eq!(staging["live"]["health"], "Progressing");
    assert_eq!(
        staging["current"]["version"], "v5",
        "a rollout in flight is not recorded"
    );
    // Settled (Healthy, Synced): recorded as observed, current in staging.
    content_store("MODIFIED", "v6-hotfix", "Healthy");
    // (The API reads the history and the live state one after the other: wait for both.)
    let staging = wait_for(&app, "the settled change", |s| {
        s["live"]["health"] == "Healthy" && s["current"]["version"] == "v6-hotfix"
    })
    .await;
    assert_eq!(staging["current"]["trigger"], "observed", "{staging}");
    // Seen again (a relist, a restart): not recorded twice.
    content_store("MODIFIED", "v6-hotfix", "Healthy");
    content_store("MODIFIED", "v6-hotfix", "Degraded");
    wait_for(&app, "degraded", |s| s["live"]["health"] == "Degraded").await;
    let n = app
        .count("SELECT COUNT(*) FROM deployments WHERE version = 'v6-hotfix'")
        .await;
    assert_eq!(n, 1);
    // An application that is not ours is ignored; a known version is not re-recorded.
    argocd.push("ADDED", application("somebody-elses", "v1", "Healthy"));
    argocd.push("MODIFIED", application("content-store", "v5", "Healthy"));
    wait_for(&app, "back to v5", |s| s["live"]["version"] == "v5").await;
    let observed: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM deployments WHERE trigger_kind = 'observed'")
            .fetch_one(app.store.pool())
            .await
            .unwrap();
    assert_eq!(observed, 1);

    // Argo CD goes down (the watch drops, the list answers 503): "unknown since", never a
    // stale version as the truth. Then up again: known, and the watch reopened.
    argocd.down.store(true, Ordering::SeqCst);
    argocd.drop_watches();
    let staging = wait_for(&app, "unknown", |s| !s["live"]["unknown_since"].is_null()).await;
    assert!(
        staging["live"]["unknown_reason"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{staging}"
    );
    let unknown = grid_says(&app, "live state unknown").await;
    assert!(unknown, "the grid's cell says its live state is unknown");
    let watches = argocd.requests_to("/api/v1/stream/applications").len();
    argocd.down.store(false, Ordering::SeqCst);
    argocd.apps.lock().unwrap()[0] = application("content-store", "v7", "Healthy");
    wait_for(&app, "known again", |s| {
        s["live"]["unknown_since"].is_null() && s["live"]["version"] == "v7"
    })
    .await;
    for _ in 0..100 {
        if argocd.requests_to("/api/v1/stream/applications").len() > watches {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        argocd.requests_to("/api/v1/stream/applications").len() > watches,
        "the watch reopened"
    );
    // Readiness stays up through it all.
    let r = common::send(app.client.get(app.url("/healthcheck/ready"))).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_says_unknown_and_two_servers_record_once() {
    // A wrong token: 401 from the list, the cells unknown with the reason.
    let argocd = fake_argo(TOKEN).await;
    let fake = argocd.base.clone();
    argocd.list(application("content-store", "v5", "Healthy"));
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("release.db").display());
    let on_db = || {
        common::TestApp::builder()
            .config(&config(&fake))
            .database(&db)
            .settings(with_token)
            .spawn()
    };
    let (one, two) = (on_db().await, on_db().await);
    wait_for(&one, "observed", |s| s["live"]["version"] == "v5").await;
    // Both servers watch; a new version reaches both at once: one observed deployment.
    for _ in 0..100 {
        if argocd.watchers.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        argocd.watchers.lock().unwrap().len() >= 2,
        "both servers watch"
    );
    argocd.push("MODIFIED", application("content-store", "v8", "Healthy"));
    wait_for(&two, "both", |s| s["live"]["version"] == "v8").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = one
        .count("SELECT COUNT(*) FROM deployments WHERE version = 'v8'")
        .await;
    assert_eq!(n, 1, "two observers, one record");

    let fake = fake_argo(TOKEN).await.base;
    let refused = common::TestApp::builder()
        .config(&config(&fake))
        .settings(|s| {
            s.alert_env
                .insert("RELEASE_ARGOCD_TOKEN_STAGING".into(), "wrong".into());
        })
        .spawn()
        .await;
    // It has never seen the app: nothing to mark, and nothing invented.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, body) = refused.get_json("/api/v1/applications/content-store").await;
    assert!(body["environments"]["staging"]["live"].is_null(), "{body}");
}

/// Drift: what runs differs from Release's current deployment for longer than the grace
/// period. Not during it (a rollout); flagged after, with both versions, in the API and on
/// the grid; gone once they agree again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_flagged_after_the_grace_period() {
    let (argocd, app) = watched_with_a_second_of_grace().await;
    for v in ["v5", "v9"] {
        app.notify_ok("alphagov/content-store", "staging", v).await;
    }
    argocd.wait_for_watch().await;
    // Argo CD still runs v5 (someone synced the old revision, or the rollout of v9 has
    // not happened): within the grace period, no flag.
    argocd.push("MODIFIED", application("content-store", "v5", "Healthy"));
    wait_for(&app, "observed", |s| s["live"]["version"] == "v5").await;
    let drift = |body: &Value| {
        body["flags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "drift")
            .cloned()
    };
    let (_, body) = app.get_json("/api/v1/applications/content-store").await;
    assert_eq!(drift(&body), None, "not drift during the grace period");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, body) = app.get_json("/api/v1/applications/content-store").await;
    let flag = drift(&body).expect("drift after the grace period");
    assert_eq!(flag["environment"], "staging");
    assert_eq!(flag["running"], "v5");
    assert_eq!(flag["expected"], "v9");
    // The grid says it too (its row re-rendered at the next change of the app).
    argocd.push("MODIFIED", application("content-store", "v5", "Degraded"));
    wait_for(&app, "degraded", |s| s["live"]["health"] == "Degraded").await;
    let seen = grid_says(&app, "drift: staging").await;
    assert!(seen, "the grid shows the drift flag");
    let (_, html) = app.page("/").await;
    assert!(
        html.contains("<s>Degraded</s>"),
        "the cell says what Argo CD says of its health"
    );
    // Argo CD catches up: no drift.
    argocd.push("MODIFIED", application("content-store", "v9", "Healthy"));
    wait_for(&app, "caught up", |s| s["live"]["version"] == "v9").await;
    let (_, body) = app.get_json("/api/v1/applications/content-store").await;
    assert_eq!(drift(&body), None);
}

/// An application as Argo CD's field-filtered list and watch carry it, with these images
/// (the sorted union of its pods' images).
fn with_images(name: &str, images: &[&str], health: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "argocd"},
        "status": {
            "sync": {"status": "Synced"},
            "health": {"status": health},
            "summary": {"images": images},
            "operationState": {"phase": "Succeeded"}
        }
    })
}

/// The third review's Argo CD findings, with objects shaped as Argo CD's own test data:
/// the list asks only for the fields read; two tags of one image are a rollout (no drift,
/// nothing recorded, never chosen by string order); a moving tag is not a version; a
/// digest alone is said; a deleted application is "not in Argo CD", by the watch and by a
/// relist; its reason clears once Argo CD has it again; the stream's error chunk ends the
/// watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_as_it_really_answers() {
    let (argocd, app) = watched_with_a_second_of_grace().await;
    app.notify_ok("alphagov/content-store", "staging", "v301")
        .await;
    argocd.wait_for_watch().await;
    // Only the fields Release reads, as Argo CD's list selects them.
    let q = argocd.list_queries.lock().unwrap()[0].clone();
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        fields,
        [(
            "fields".to_string(),
            "items.metadata.name,items.status.summary,items.status.health,items.status.sync.status,items.status.operationState.phase".to_string()
        )]
    );
    let registry = "172025368201.dkr.ecr.eu-west-1.amazonaws.com/github/alphagov/govuk";
    let observed = || app.count("SELECT COUNT(*) FROM deployments WHERE trigger_kind = 'observed'");
    let drift = |s: &Value| s.to_string().contains("\"drift\"");
    // Content Store, Healthy, running these tags of its image (":v1", "@sha256:...").
    let images = |tags: &[&str]| {
        let images: Vec<String> = tags
            .iter()
            .map(|t| format!("{registry}/content-store{t}"))
            .collect();
        let images: Vec<&str> = images.iter().map(String::as_str).collect();
        with_images("content-store", &images, "Healthy")
    };
    // Two tags of one image, Healthy and Synced (an old pod still terminating).
    argocd.push(
        "MODIFIED",
        with_images(
            "content-store",
            &[
                &format!("{registry}/content-store:release-v300"),
                &format!("{registry}/content-store:release-v301"),
                "docker.io/library/nginx:1.25",
            ],
            "Healthy",
        ),
    );
    let staging = wait_for(&app, "mid-rollout", |s| {
        s["live"]["note"] == "rolling out: v300, v301"
    })
    .await;
    assert!(staging["live"]["version"].is_null(), "{staging}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, body) = app.get_json("/api/v1/applications/content-store").await;
    assert!(
        !drift(&body["flags"]),
        "no drift mid-rollout: {}",
        body["flags"]
    );
    assert_eq!(observed().await, 0);
    // v100 and v99: never chosen by string order.
    argocd.push("MODIFIED", images(&[":v100", ":v99"]));
    wait_for(&app, "v100 and v99", |s| {
        s["live"]["note"] == "rolling out: v100, v99"
    })
    .await;
    assert_eq!(observed().await, 0);
    // A moving tag is not a version.
    argocd.push("MODIFIED", images(&[":latest"]));
    let staging = wait_for(&app, "latest", |s| {
        s["live"]["note"] == "tag latest is not a version"
    })
    .await;
    assert!(staging["live"]["version"].is_null());
    // A digest alone.
    argocd.push(
        "MODIFIED",
        images(&[&format!("@sha256:{}", "a".repeat(64))]),
    );
    wait_for(&app, "digest", |s| {
        s["live"]["note"] == "runs an image by digest only"
    })
    .await;
    assert_eq!(observed().await, 0, "nothing but versions is recorded");
    // One tag again: v301, as the pipeline said.
    argocd.push("MODIFIED", images(&[":release-v301"]));
    wait_for(&app, "v301", |s| {
        s["live"]["version"] == "v301" && s["live"]["note"].is_null()
    })
    .await;

    // Deleted in Argo CD (the watch's DELETED event).
    argocd.push("DELETED", images(&[":release-v301"]));
    let staging = wait_for(&app, "deleted", |s| {
        s["live"]["unknown_reason"] == "not in Argo CD"
    })
    .await;
    assert!(staging["live"]["version"].is_null());
    // Back: known again, the reason cleared.
    argocd.push("ADDED", images(&[":release-v301"]));
    wait_for(&app, "back", |s| {
        s["live"]["unknown_reason"].is_null() && s["live"]["version"] == "v301"
    })
    .await;
    // Gone from a relist (the watch dropped; the list no longer has it).
    argocd.apps.lock().unwrap().clear();
    argocd.drop_watches();
    wait_for(&app, "not in the relist", |s| {
        s["live"]["unknown_reason"] == "not in Argo CD"
    })
    .await;
    // Argo CD ends the stream with grpc-gateway's error chunk (no newline): the watch
    // ends; the observer lists instead; nothing is corrupted.
    argocd.wait_for_watch().await;
    let lists = argocd.requests_to("/api/v1/applications").len();
    argocd.end_with(
        r#"{"error":{"grpc_code":16,"http_code":401,"message":"no session information","http_status":"Unauthorized"}}"#,
    );
    argocd.list(images(&[":release-v301"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, body) = app.get_json("/api/v1/applications/content-store").await;
    assert_eq!(
        body["environments"]["staging"]["live"]["unknown_reason"], "not in Argo CD",
        "an error chunk is not an application"
    );
    assert_eq!(argocd.requests_to("/api/v1/applications").len(), lists);
}

/// Argo CD restarted: once a list succeeds again, the watch reopens at once (the backoff
/// is reset), not after the longest wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_argo_cd_is_watched_again_at_once() {
    let argocd = fake_argo(TOKEN).await;
    let fake = argocd.base.clone();
    argocd.list(application("content-store", "v5", "Healthy"));
    let app = spawn(&config(&fake)).await;
    wait_for(&app, "observed", |s| s["live"]["version"] == "v5").await;
    // The watch is open before Argo CD goes down (a watch refused while down would be
    // the other path: listing every 30 s).
    argocd.wait_for_watch().await;
    // Down for a while: the backoff grows (1, 2, 4, 8 s...).
    argocd.down.store(true, Ordering::SeqCst);
    argocd.drop_watches();
    wait_for(&app, "unknown", |s| !s["live"]["unknown_since"].is_null()).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let watches = argocd.requests_to("/api/v1/stream/applications").len();
    argocd.down.store(false, Ordering::SeqCst);
    let up = std::time::Instant::now();
    wait_for(&app, "known again", |s| {
        s["live"]["unknown_since"].is_null()
    })
    .await;
    for _ in 0..100 {
        if argocd.requests_to("/api/v1/stream/applications").len() > watches
            && !argocd.watchers.lock().unwrap().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !argocd.watchers.lock().unwrap().is_empty(),
        "the watch reopened"
    );
    assert!(
        up.elapsed() < Duration::from_secs(12),
        "the watch reopened {:?} after Argo CD came back",
        up.elapsed()
    );
}

/// The third review's finding 5: a large list costs about its own size. The real binary
/// reads a list of 200,000 small applications (most not Release's) from a fake Argo CD;
/// its peak RSS grows by less than the list's size (it was 35 times it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_list_costs_about_its_size() {
    let mut items = String::from("{\"metadata\":{\"resourceVersion\":\"9\"},\"items\":[");
    for i in 0..200_000 {
        if i > 0 {
            items.push(',');
        }
        items.push_str(&format!(
            "{{\"metadata\":{{\"name\":\"app-{i}\"}},\"status\":{{\"health\":{{\"status\":\"Healthy\"}},\"summary\":{{\"images\":[\"reg.example/x/app-{i}:v{i}\"]}},\"sync\":{{\"status\":\"Synced\"}}}}}}"
        ));
    }
    items.push_str("]}");
    let size = items.len() as u64;
    let body = bytes::Bytes::from(items);
    let go = Arc::new(tokio::sync::Notify::new());
    let watched = Arc::new(AtomicBool::new(false));
    let router = {
        let (go, body, watched) = (go.clone(), body.clone(), watched.clone());
        axum::Router::new()
            .route(
                "/api/v1/applications",
                axum::routing::get(move || {
                    let (go, body) = (go.clone(), body.clone());
                    async move {
                        go.notified().await;
                        (
                            [(axum::http::header::CONTENT_TYPE, "application/json")],
                            axum::body::Body::from_stream(futures::stream::iter(
                                body.chunks(64 * 1024)
                                    .map(|c| {
                                        Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c))
                                    })
                                    .collect::<Vec<_>>(),
                            )),
                        )
                    }
                }),
            )
            .route(
                "/api/v1/stream/applications",
                axum::routing::get(move || {
                    watched.store(true, Ordering::SeqCst);
                    async move {
                        axum::body::Body::from_stream(futures::stream::pending::<
                            Result<bytes::Bytes, std::io::Error>,
                        >())
                    }
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("release.toml");
    std::fs::write(&config_path, config(&fake)).unwrap();
    let url = format!("sqlite:{}", dir.path().join("release.db").display());
    let port = binary::free_port();
    let config_arg = config_path.display().to_string();
    let mut child = binary::serve(
        port,
        &[
            "--dev-sign-in",
            "--database-url",
            &url,
            "--config",
            &config_arg,
        ],
        &[("RELEASE_ARGOCD_TOKEN_STAGING", TOKEN)],
    );
    let pid = child.id().unwrap();
    let hwm = || binary::memory(pid, "VmHWM");
    binary::wait_ready(&format!("http://127.0.0.1:{port}")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = hwm();
    go.notify_waiters();
    go.notify_one();
    for _ in 0..600 {
        if watched.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        watched.load(Ordering::SeqCst),
        "the list was read and the watch opened"
    );
    let grown = hwm().saturating_sub(before);
    eprintln!(
        "a list of {} KiB: peak RSS grew by {} KiB",
        size >> 10,
        grown >> 10
    );
    assert!(
        grown < size,
        "peak RSS grew by {} MiB for a list of {} MiB",
        grown >> 20,
        size >> 20
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
