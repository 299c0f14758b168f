//! The daily digest: two servers on one PostgreSQL database, both past the digest's time;
//! the receiver of a team with waiting apps gets exactly one message with the exact text
//! (a manual deployment waiting, with the commits behind from GitHub's compare, and a
//! failed cell), a team with nothing to say gets nothing, and a site-wide receiver (no
//! teams) gets no digest.

use crate::common::{self, TestApp};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Got = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver that records each JSON body by path.
async fn receiver() -> (String, Got) {
    let got: Got = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().fallback(axum::routing::post(
        move |uri: axum::http::Uri, axum::Json(body): axum::Json<Value>| async move {
            keep.lock().unwrap().push((uri.path().to_owned(), body));
            "ok"
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (base, got)
}

/// The configuration; `at`: the digest's time (none: no digest on this server).
fn config(hooks: &str, at: Option<&str>) -> String {
    let digest = at
        .map(|t| format!("digest_at = \"{t}\"\ntime_zone = \"UTC\""))
        .unwrap_or_default();
    format!(
        r##"
[alerts]
retry_first_seconds = 0.2
{digest}
receivers = [
  {{ name = "publishing-hook", kind = "webhook", url = "{hooks}/publishing", teams = ["#publishing"] }},
  {{ name = "search-hook", kind = "webhook", url = "{hooks}/search", teams = ["#search"] }},
  {{ name = "everything", kind = "webhook", url = "{hooks}/everything" }},
]

[[applications]]
name = "Router"
repo = "example-org/router"
team = "#publishing"
manual = ["production"]

[[applications]]
name = "Frontend"
repo = "example-org/frontend"
team = "#publishing"

[[applications]]
name = "Search"
repo = "example-org/search"
team = "#search"
"##
    )
}

async fn server(url: &str, config: &str) -> TestApp {
    TestApp::builder()
        .github()
        .database(url)
        .public_url("https://release.example")
        .extra(config)
        .settings(|s| {
            s.demo = false;
            for name in ["PUBLISHING_HOOK", "SEARCH_HOOK", "EVERYTHING"] {
                s.alert_env.insert(
                    format!("RELEASE_ALERT_SECRET_{name}"),
                    "a-secret-of-at-least-16".into(),
                );
            }
            s.alert_env
                .insert("RELEASE_GITHUB_STATS_TOKEN".into(), "stats-token".into());
        })
        .spawn()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_digest_a_day_per_team_across_two_servers() {
    common::on_postgres("one_digest_a_day", |url| async move {
        // The digest's time: a minute ago (UTC), past midnight so it is today's.
        while chrono::Utc::now().time() < chrono::NaiveTime::from_hms_opt(0, 2, 0).unwrap() {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let now = chrono::Utc::now();
        let at = (now - chrono::TimeDelta::minutes(1))
            .format("%H:%M")
            .to_string();
        let (hooks, got) = receiver().await;
        // What the digest will say is recorded through a server with no digest of its own.
        let a = server(&url, &config(&hooks, None)).await;
        for (repo, env, version) in [
            ("example-org/router", "staging", "v2"),
            ("example-org/router", "production", "v1"),
            ("example-org/search", "integration", "v3"),
        ] {
            assert_eq!(a.notify(repo, env, version).await.status(), 200);
        }
        a.event_ok(
            json!({"repo": "example-org/frontend", "environment": "staging", "version": "v7",
                "stage": "rollout", "status": "failed"}),
        )
        .await;
        // Two servers on the same database, both past the digest's time.
        let config = config(&hooks, Some(&at));
        let b = server(&url, &config).await;
        let c = server(&url, &config).await;
        for s in [&b, &c] {
            s.fake
                .lock()
                .unwrap()
                .tokens
                .insert("stats-token".into(), "stats-bot".into());
        }

        // The receivers take every alert too: the digests are those of event `digest`.
        let digests = || -> Vec<(String, Value)> {
            got.lock()
                .unwrap()
                .iter()
                .filter(|(_, b)| b["event"] == "digest")
                .cloned()
                .collect()
        };
        let mut waited = 0;
        while digests().is_empty() && waited < 150 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += 1;
        }
        // Several more ticks of both servers: still one message.
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        let got = digests();
        assert_eq!(got.len(), 1, "{got:?}");
        let (path, body) = &got[0];
        assert_eq!(path, "/publishing");
        assert_eq!(body["event"], "digest");
        let date = now.format("%A %-d %B %Y");
        let expected = format!(
            "Release digest for #publishing, {date}

Waiting for a manual deployment (1):
• Router: v2 in staging waits to go to production (production runs v1) for 0 min, 2 commits behind https://release.example/applications/router

Failed (1):
• Frontend: v7 failed in staging at rollout https://release.example/applications/frontend"
        );
        assert_eq!(body["message"], expected);
        assert_eq!(
            body["text"],
            format!("Release digest for #publishing, {date}")
        );
        // The compare was asked with the token that needs no person.
        let compares: Vec<_> = [&b, &c]
            .iter()
            .flat_map(|s| s.fake.lock().unwrap().compares.clone())
            .collect();
        assert!(compares.iter().any(
            |c| c.path == "/api/repos/example-org/router/compare/v1...v2"
                && c.headers["authorization"] == "Bearer stats-token"
        ));
        assert_eq!(a.count("SELECT COUNT(*) FROM digests").await, 1);
    })
    .await;
}
