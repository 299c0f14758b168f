//! Random and malformed requests against every API endpoint and server function: never a
//! 5xx, never a panic, and nothing recorded for a refused request.
//!
//! `make test` runs `FUZZ_CASES` (default 3,000) cases with a fixed seed; `make fuzz` runs
//! 100,000 with a random one. The seed is printed, and `FUZZ_SEED=N` replays a run.

use crate::common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const API: &[(&str, &str)] = &[
    ("POST", "/deployments"),
    ("POST", "/api/v1/events"),
    ("GET", "/api/v1/applications"),
    ("GET", "/api/v1/applications/publisher"),
    ("GET", "/api/v1/applications/publisher/promotion"),
    ("GET", "/applications/publisher.json"),
];

const FIELDS: &[&str] = &[
    "repo",
    "environment",
    "version",
    "sha",
    "deployed_by",
    "trigger",
    "created_at",
    "stage",
    "status",
    "message",
    "workflow",
    "namespace",
    "name",
    "url",
    "delivery_id",
    "at",
    "deployment",
    "shortname",
    "git_ref",
    "confirm",
    "override_reason",
    "deployment_id",
    "reason",
    "to",
    "q",
    "from",
];

fn nasty_string(rng: &mut StdRng) -> String {
    const PIECES: &[&str] = &[
        "", "a", "production", "staging", "integration", "alphagov/content-store", "publisher",
        "v1", "../../", "%2e%2e/", "#", "?", "\u{0}", "\t", "\n", "\\", "\u{a0}", "é", "😀",
        "'; DROP TABLE deployments; --", "<script>", "${jndi}", "-1", "0", "99999999999999999999",
        "1e309", "true", "null", "@{", ".lock", "//", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "smoke_tests",
        "failed", "succeeded", "2026-11-27T10:00:00Z", "not-a-date", "https://evil.example",
    ];
    (0..rng.gen_range(0..4))
        .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
        .collect()
}

fn random_json(rng: &mut StdRng, depth: u32) -> serde_json::Value {
    use serde_json::Value;
    match rng.gen_range(0..if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.gen()),
        2 => Value::from(rng.gen::<i64>()),
        3 => Value::from(rng.gen::<f64>()),
        4 => Value::String(nasty_string(rng)),
        5 => Value::Array(
            (0..rng.gen_range(0..3))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.gen_range(0..6) {
                let k = if rng.gen_bool(0.8) {
                    FIELDS[rng.gen_range(0..FIELDS.len())].to_string()
                } else {
                    nasty_string(rng)
                };
                m.insert(k, random_json(rng, depth + 1));
            }
            Value::Object(m)
        }
    }
}

fn random_body(rng: &mut StdRng) -> (Option<&'static str>, Vec<u8>) {
    match rng.gen_range(0..5) {
        0 => (
            Some("application/json"),
            serde_json::to_vec(&random_json(rng, 0)).unwrap(),
        ),
        1 => {
            let form: Vec<(String, String)> = (0..rng.gen_range(0..5))
                .map(|_| {
                    (
                        FIELDS[rng.gen_range(0..FIELDS.len())].to_string(),
                        nasty_string(rng),
                    )
                })
                .collect();
            (
                Some("application/x-www-form-urlencoded"),
                serde_urlencoded::to_string(form).unwrap().into_bytes(),
            )
        }
        2 => (
            None,
            (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect(),
        ),
        3 => (Some("text/plain"), nasty_string(rng).into_bytes()),
        _ => {
            // Valid-looking JSON with one hostile value.
            let mut v = serde_json::json!({"repo": "alphagov/publisher", "environment": "staging", "version": "v1",
                "stage": "build", "status": "started", "deployment": {"environment": "staging", "version": "v1"}});
            let k = FIELDS[rng.gen_range(0..FIELDS.len())];
            v[k] = random_json(rng, 1);
            (Some("application/json"), serde_json::to_vec(&v).unwrap())
        }
    }
}

async fn counts(store: &app::store::Store) -> (i64, i64, i64) {
    let q = |t: &'static str| async move {
        common::count(store, &format!("SELECT COUNT(*) FROM {t}")).await
    };
    (
        q("deployments").await,
        q("events").await,
        q("freezes").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_never_5xx_and_refused_ones_record_nothing() {
    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    // A fixed seed by default, so `make test` is deterministic; `make fuzz` picks a new one.
    let seed: u64 = match std::env::var("FUZZ_SEED").as_deref() {
        Ok("random") => rand::random(),
        Ok(v) => v.parse().expect("FUZZ_SEED is a number or \"random\""),
        Err(_) => 20261128,
    };
    eprintln!("fuzz: {cases} cases, FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let app = common::TestApp::builder()
        .config("")
        .demo()
        .settings(|s| {
            s.limits.bad_tokens_per_minute = 1_000_000;
            s.limits.auth_per_minute = 1_000_000;
            // The simulated pipeline must not write while a case is judged.
            s.demo_stage_ms = 1_000_000_000;
        })
        .spawn()
        .await;
    let fns: Vec<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(p, _)| p.to_string())
        .collect();
    let admin = app.signed_in("admin").await;
    let viewer = app.signed_in("viewer").await;
    let anonymous = common::browser();
    let run = async {
        for case in 0..cases {
            let (method, path, client, bearer) = if rng.gen_bool(0.5) {
                let (m, p) = API[rng.gen_range(0..API.len())];
                let mut p = p.to_string();
                if rng.gen_bool(0.2) {
                    p = p.replace(
                        "publisher",
                        &url::form_urlencoded::byte_serialize(nasty_string(&mut rng).as_bytes())
                            .collect::<String>(),
                    );
                }
                if rng.gen_bool(0.3) {
                    p.push_str(&format!(
                        "?to={}",
                        url::form_urlencoded::byte_serialize(nasty_string(&mut rng).as_bytes())
                            .collect::<String>()
                    ));
                }
                let bearer = match rng.gen_range(0..4) {
                    0 => None,
                    1 => Some(nasty_string(&mut rng)),
                    _ => Some(app.token.clone()),
                };
                (m, p, &app.client, bearer)
            } else {
                let p = fns[rng.gen_range(0..fns.len())].clone();
                let c = [&admin, &viewer, &anonymous][rng.gen_range(0..3)];
                ("POST", p, c, None)
            };
            let (ct, body) = random_body(&mut rng);
            let before = counts(&app.store).await;
            let mut req = client.request(method.parse().unwrap(), app.url(&path));
            if let Some(b) = &bearer {
                if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {b}")) {
                    req = req.header("authorization", v);
                }
            }
            if let Some(ct) = ct {
                req = req.header("content-type", ct);
            }
            if method == "POST" {
                req = req.body(body.clone());
            }
            let r = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("case {case}: {method} {path}: {e}"));
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            assert!(
                status < 500,
                "case {case} (FUZZ_SEED={seed}): {method} {path} {ct:?} {:?} -> {status} {text}",
                String::from_utf8_lossy(&body)
            );
            if status >= 400 {
                assert_eq!(
                    counts(&app.store).await,
                    before,
                    "case {case} (FUZZ_SEED={seed}): a refused {method} {path} ({status}) recorded something"
                );
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60 + cases as u64 / 50), run)
        .await
        .expect("the fuzz run finished in time");
}
