//! Operations: Prometheus metrics, the OpenAPI description checked against real answers
//! of every endpoint, and request ids.

use crate::common::{self, binary};
use serde_json::{json, Value};

#[tokio::test]
async fn metrics_on_their_own_address_and_behind_a_token_on_the_main_one() {
    let app = common::TestApp::builder()
        .settings(|s| {
            s.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
            s.metrics_token = Some("metrics-secret-token".into());
        })
        .spawn()
        .await;
    // Something to count.
    app.notify_ok("alphagov/frontend", "integration", "v1")
        .await;
    app.event_ok(json!({"repo": "alphagov/frontend", "environment": "integration", "version": "v1", "stage": "build", "status": "started"}))
        .await;
    let (s, _) = app.get_json("/api/v1/applications/nope").await;
    assert_eq!(s, 404);

    // The main address: not without the token, and not with a wrong one.
    let r = common::send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let with_token =
        |token: &str| common::send(app.client.get(app.url("/metrics")).bearer_auth(token));
    assert_eq!(with_token("metrics-secret-tokeX").await.status(), 401);
    let r = with_token("metrics-secret-token").await;
    assert_eq!(r.status(), 200);
    assert!(common::header(&r, "content-type").starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    for want in [
        "release_http_requests_total{method=\"POST\",route=\"/deployments\",status=\"200\"}",
        "release_http_requests_total{method=\"GET\",route=\"/api/v1/applications/{shortname}\",status=\"404\"}",
        "release_http_request_duration_seconds_bucket{method=\"POST\",route=\"/deployments\",le=\"0.005\"}",
        "release_notifications_total{environment=\"integration\"}",
        "release_events_total{stage=\"build\",status=\"started\"}",
        "release_current_deployments{environment=\"integration\",status=\"in_progress\"}",
        "release_live_streams_open",
        "release_db_pool_connections{state=\"idle\"}",
        "release_alert_outbox_pending 0",
        "release_db_up 1",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
    // Raw paths never become labels.
    assert!(!text.contains("route=\"/api/v1/applications/nope\""));

    // The metrics address: no token needed, nothing else served.
    let addr = format!("http://{}", app.metrics_addr.expect("metrics address"));
    let r = common::send(app.client.get(format!("{addr}/metrics"))).await;
    common::expect_text(r, 200, "release_http_requests_total").await;
    let r = common::send(app.client.get(format!("{addr}/api/v1/applications"))).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn no_metrics_on_the_main_address_without_a_token_configured() {
    let app = common::TestApp::builder().spawn().await;
    let r = common::send(app.client.get(app.url("/metrics")).bearer_auth("anything")).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn every_response_has_a_request_id_and_a_plain_one_is_kept() {
    let app = common::TestApp::builder().spawn().await;
    let r = common::send(app.client.get(app.url("/healthcheck/live"))).await;
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 16);
    let r = common::send(app.client.get(app.url("/healthcheck/live"))).await;
    assert_ne!(
        r.headers()["x-request-id"],
        id.as_str(),
        "each request its own id"
    );
    // What a load balancer sent is kept when it is plain, replaced when it is not.
    let sent = |path: &str, id: &str| {
        common::send(app.client.get(app.url(path)).header("x-request-id", id))
    };
    let r = sent("/nope", "lb-1234.abc").await;
    assert_eq!(r.headers()["x-request-id"], "lb-1234.abc");
    let r = sent("/healthcheck/live", "a b\"c").await;
    assert_ne!(r.headers()["x-request-id"], "a b\"c");
}

/// The response schema the document gives for `method path` and `status`, with the
/// document's components, so `$ref`s resolve.
fn schema_for(doc: &Value, path: &str, method: &str, status: u16) -> Option<Value> {
    let resp = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(
        resp.is_object(),
        "{method} {path} documents no {status} answer"
    );
    let schema = resp["content"]["application/json"]["schema"].clone();
    if schema.is_null() {
        return None;
    }
    let mut s = json!({"components": doc["components"].clone()});
    for (k, v) in schema.as_object().unwrap() {
        s[k] = v.clone();
    }
    Some(s)
}

fn check(doc: &Value, path: &str, method: &str, status: u16, body: &[u8]) {
    match schema_for(doc, path, method, status) {
        Some(schema) => {
            let body: Value = serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("{method} {path} {status}: not JSON ({e})"));
            let v = jsonschema::validator_for(&schema).expect("the document's schema compiles");
            let errors: Vec<String> = v
                .iter_errors(&body)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {path} {status}: {errors:?}\n{body:#}"
            );
        }
        None => assert!(
            body.is_empty() || status == 200,
            "{method} {path} {status}: undocumented body"
        ),
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_real_answer() {
    let app = common::TestApp::builder().spawn().await;
    let r = common::send(app.client.get(app.url("/api/openapi.json"))).await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    for p in [
        "/deployments",
        "/api/v1/events",
        "/api/v1/applications",
        "/api/v1/applications/{shortname}",
        "/api/v1/applications/{shortname}/release-app",
        "/api/v1/applications/{shortname}/promotion",
        "/api/v1/stats",
        "/api/v1/stats.csv",
        "/healthcheck/live",
        "/healthcheck/ready",
    ] {
        assert!(paths.iter().any(|x| *x == p), "{p} is not described");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    let c = &app.client;
    let t = &app.token;
    let send = |rb: reqwest::RequestBuilder| async move {
        let r = common::send(rb).await;
        let status = r.status().as_u16();
        (status, r.bytes().await.unwrap().to_vec())
    };
    // The pipeline's two notifications, good and bad.
    let good = json!({"repo": "alphagov/frontend", "deployment": {"environment": "staging", "version": "v7"}});
    let (s, b) = send(c.post(app.url("/deployments")).bearer_auth(t).json(&good)).await;
    assert_eq!(s, 200);
    check(&doc, "/deployments", "post", s, &b);
    for (body, want) in [
        (
            json!({"repo": "alphagov/frontend", "deployment": {"environment": "qa", "version": "v7"}}),
            422,
        ),
        (
            json!({"repo": "alphagov/mono", "deployment": {"environment": "staging", "version": "v7"}}),
            409,
        ),
    ] {
        let (s, b) = send(c.post(app.url("/deployments")).bearer_auth(t).json(&body)).await;
        assert_eq!(s, want, "{body}");
        check(&doc, "/deployments", "post", s, &b);
    }
    let (s, b) = send(
        c.post(app.url("/deployments"))
            .bearer_auth(t)
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    assert_eq!(s, 400);
    check(&doc, "/deployments", "post", s, &b);
    let (s, b) = send(c.post(app.url("/deployments")).json(&good)).await;
    assert_eq!(s, 401);
    check(&doc, "/deployments", "post", s, &b);
    let event = json!({"repo": "alphagov/frontend", "environment": "staging", "version": "v7", "stage": "smoke_tests", "status": "failed", "message": "boom"});
    let (s, b) = send(
        c.post(app.url("/api/v1/events"))
            .bearer_auth(t)
            .json(&event),
    )
    .await;
    assert_eq!(s, 200);
    check(&doc, "/api/v1/events", "post", s, &b);
    let (s, b) = send(
        c.post(app.url("/api/v1/events"))
            .bearer_auth(t)
            .json(&json!({"repo": "alphagov/frontend"})),
    )
    .await;
    assert_eq!(s, 422);
    check(&doc, "/api/v1/events", "post", s, &b);

    // What the pipeline reads back.
    for (url, path, want) in [
        ("/api/v1/applications", "/api/v1/applications", 200),
        (
            "/api/v1/applications/frontend",
            "/api/v1/applications/{shortname}",
            200,
        ),
        (
            "/api/v1/applications/nope",
            "/api/v1/applications/{shortname}",
            404,
        ),
        (
            "/api/v1/applications/NOPE!",
            "/api/v1/applications/{shortname}",
            422,
        ),
        (
            "/api/v1/applications/frontend/release-app",
            "/api/v1/applications/{shortname}/release-app",
            200,
        ),
        (
            "/api/v1/applications/nope/release-app",
            "/api/v1/applications/{shortname}/release-app",
            404,
        ),
        (
            "/api/v1/applications/frontend/promotion?to=production",
            "/api/v1/applications/{shortname}/promotion",
            200,
        ),
        (
            "/api/v1/applications/frontend/promotion",
            "/api/v1/applications/{shortname}/promotion",
            422,
        ),
        ("/api/v1/stats", "/api/v1/stats", 200),
        (
            "/api/v1/stats?application=frontend&environment=staging",
            "/api/v1/stats",
            200,
        ),
        ("/api/v1/stats?from=nope", "/api/v1/stats", 422),
        ("/api/v1/stats?application=nope", "/api/v1/stats", 404),
    ] {
        let (s, b) = send(c.get(app.url(url)).bearer_auth(t)).await;
        assert_eq!(s, want, "{url}");
        check(&doc, path, "get", s, &b);
    }
    let (s, b) = send(c.get(app.url("/api/v1/applications"))).await;
    assert_eq!(s, 401);
    check(&doc, "/api/v1/applications", "get", s, &b);
    for path in ["/healthcheck/live", "/healthcheck/ready"] {
        let (s, b) = send(c.get(app.url(path))).await;
        assert_eq!(s, 200);
        check(&doc, path, "get", s, &b);
    }
    let r = common::send(c.get(app.url("/api/v1/stats.csv")).bearer_auth(t)).await;
    assert_eq!(r.status(), 200);
    assert!(
        doc["paths"]["/api/v1/stats.csv"]["get"]["responses"]["200"]["content"]["text/csv"]
            .is_object()
    );
}

/// Issue 19, finding 1: a label value is a series kept for the life of the process, so a
/// caller who could choose one could grow the server's memory (and every scrape) without
/// limit. The real binary is flooded with a new method and a new path on every request;
/// the series stay the bounded set and the process's memory stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_methods_and_paths_adds_no_series_and_no_memory() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("release.db").display());
    let (port, metrics_port) = (binary::free_port(), binary::free_port());
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut child = binary::serve(
        port,
        &[
            "--dev-sign-in",
            "--metrics-addr",
            &metrics_addr,
            "--database-url",
            &url,
        ],
        &[],
    );
    let pid = child.id().expect("the server runs");
    let base = format!("http://127.0.0.1:{port}");
    // What the review's attacker sent: a non-browser client says it is same-origin.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "sec-fetch-site",
        reqwest::header::HeaderValue::from_static("same-origin"),
    );
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .default_headers(headers)
        .build()
        .unwrap();
    binary::wait_ready(&base).await;
    let rss_kib = || binary::memory(pid, "VmRSS") / 1024;
    let flood = |from: usize, to: usize| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            futures::stream::iter(from..to)
                .map(|i| {
                    let (http, base) = (http.clone(), base.clone());
                    async move {
                        let method =
                            reqwest::Method::from_bytes(format!("X{i:07}METHOD").as_bytes())
                                .unwrap();
                        let path = match i % 3 {
                            0 => "/healthcheck/live".to_owned(),
                            1 => format!("/nope-{i}/x"),
                            _ => format!("/pkg/chunk-{i}.js"),
                        };
                        let r = http
                            .request(method, format!("{base}{path}"))
                            .send()
                            .await
                            .expect("the server answers every request");
                        assert!(r.status().is_client_error(), "{path}: {}", r.status());
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<()>>()
                .await;
        }
    };
    let scrape = || {
        let (http, metrics_port) = (http.clone(), metrics_port);
        async move {
            let r =
                common::send(http.get(format!("http://127.0.0.1:{metrics_port}/metrics"))).await;
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("release_http_requests_total{"))
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<_>>()
    };

    // Warm up (every route and allocator arena touched), then measure.
    flood(0, 3_000).await;
    let before_text = scrape().await;
    let before_rss = rss_kib();
    flood(3_000, 23_000).await;
    let after_text = scrape().await;
    let after_rss = rss_kib();

    let (before, after) = (series(&before_text), series(&after_text));
    assert_eq!(
        before.len(),
        after.len(),
        "20,000 new methods and paths added series: {:?}",
        after.difference(&before).take(5).collect::<Vec<_>>()
    );
    assert!(after.len() <= 12, "series: {after:#?}");
    for line in &after {
        assert!(
            !line.contains("METHOD"),
            "a caller's method became a label: {line}"
        );
        assert!(!line.contains("nope-"), "a raw path became a label: {line}");
        assert!(
            !line.contains("chunk-"),
            "a raw path became a label: {line}"
        );
    }
    assert!(
        after_text.contains(
            "release_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"}"
        ),
        "{after_text}"
    );
    // The scrape does not grow either (counts grow by digits only).
    assert!(
        after_text.len() < before_text.len() + 2_000,
        "the scrape grew from {} to {} bytes",
        before_text.len(),
        after_text.len()
    );
    // Before the fix, 20,000 such requests grew RSS by about 40 MB.
    let grown = after_rss.saturating_sub(before_rss);
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB ({before_rss} -> {after_rss}) over 20,000 requests"
    );
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// Every route the server's own HTTP modules list (`http::routes`: the pipeline API, sign-in,
/// the stream, the fragment; Leptos's pages have their matrix in `auth.rs`) is still
/// served, with its method. A route lost from a module's `routes()` would answer the
/// fallback (an HTML 404 under `/api`, a sign-in redirect elsewhere), a changed method 405;
/// so each row names its handler's own answer: the status, and where the fallback could
/// answer the same status, words only the handler says.
#[tokio::test]
async fn every_route_of_the_http_modules_is_served() {
    let app = common::TestApp::builder().spawn().await;
    // A viewer's session: no redirect followed, same-origin (the sign-in's POSTs pass the
    // cross-site check); the pipeline token is sent as well.
    let client = app.signed_in("viewer").await;
    // (request line, status, words in the answer): one route a line.
    #[rustfmt::skip]
    let routes: &[(&str, u16, &str)] = &[
        // An empty JSON object: the handler names the first missing field.
        ("POST /deployments", 422, "repo"),
        ("POST /api/v1/events", 422, "repo"),
        // No GitHub webhook secret configured.
        ("POST /api/v1/github/webhook", 404, "webhook"),
        ("GET /api/v1/applications", 200, "mono-a"),
        ("GET /api/v1/applications/mono-a", 200, "mono-a"),
        ("GET /api/v1/applications/mono-a/release-app", 200, "mono-a"),
        ("GET /api/v1/applications/mono-a/promotion?to=staging", 200, "allowed"),
        ("GET /api/v1/stats", 200, "production"),
        ("GET /api/v1/stats.csv", 200, "date,environment"),
        ("GET /api/openapi.json", 200, "openapi"),
        // No metrics token configured: an empty 404, not the fallback's page.
        ("GET /metrics", 404, ""),
        ("GET /healthcheck/live", 200, "ok"),
        ("GET /healthcheck/ready", 200, "ok"),
        ("GET /auth/sign-in", 303, ""),
        ("GET /auth/github", 404, "Sign-in with GitHub is off"),
        ("GET /auth/callback", 404, "Sign-in with GitHub is off"),
        // A JSON body: the development sign-in takes a form.
        ("POST /auth/dev", 415, "Form requests"),
        ("GET /api/live", 200, ""),
        ("GET /api/grid.html", 200, "mono-a"),
        ("GET /stats.csv", 200, "date,environment"),
        // Last: it ends the session.
        ("POST /auth/sign-out", 303, ""),
    ];
    let mut wrong = Vec::new();
    for (request, expected, says) in routes {
        let (method, path) = request.split_once(' ').unwrap();
        let rb = match method {
            "POST" => client.post(app.url(path)).json(&json!({})),
            _ => client.get(app.url(path)),
        };
        let r = common::send(rb.bearer_auth(&app.token)).await;
        let status = r.status().as_u16();
        let html = r
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
        // The stream never ends: its status and type are its answer.
        let body = if path == "/api/live" {
            String::new()
        } else {
            r.text().await.unwrap_or_default()
        };
        if status != *expected || !body.contains(says) || (path == "/metrics" && html) {
            wrong.push(format!(
                "{request}: {status} (expected {expected}, saying {says:?}) {body:.200}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
