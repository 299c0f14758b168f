//! One test per finding of the security review (issue "Trust, part 1"), each against the
//! real server with fake GitHub and Argo servers that record every request they receive.

use crate::common;

use common::fake_github::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::call;
use common::fake_argo::{fake_argo, ArgoRequest, FakeArgo};

/// A server signing in with GitHub, and a fake Argo Workflows for each of two
/// environments, accepting the token the server has for it: the server and the fakes.
async fn with_argo([env_a, env_b]: [&str; 2]) -> (common::TestApp, FakeArgo, FakeArgo) {
    let a = fake_argo(&common::argo_token(env_a)).await;
    let b = fake_argo(&common::argo_token(env_b)).await;
    let config = format!(
        "[argo.{env_a}]\nurl = \"{}\"\n[argo.{env_b}]\nurl = \"{}\"\n",
        a.base, b.base
    );
    (common::TestApp::github_with(&config).await, a, b)
}

/// Finding 1: Resubmit acts only on the deployment's own environment, with that
/// environment's Argo server and token; pipeline-supplied workflow fields choose nothing,
/// and Argo names are Kubernetes names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubmit_never_crosses_environments_and_argo_paths_are_parsed() {
    let (env, int_argo, prod_argo) = with_argo(["integration", "production"]).await;
    env.member("octocat", &["developers"]); // integration only
    env.member("prod-person", &[]); // production only
    let event = |workflow: Value| {
        json!({"repo": "example-org/frontend", "environment": "integration", "version": "v7",
               "stage": "smoke_tests", "status": "failed", "workflow": workflow})
    };
    // Hostile workflow fields are refused on arrival, and nothing is recorded.
    for (workflow, field) in [
        (
            json!({"namespace": "../../x", "name": "ok"}),
            "workflow.namespace",
        ),
        (
            json!({"namespace": "apps", "name": "wf/terminate?"}),
            "workflow.name",
        ),
        (
            json!({"namespace": "apps", "name": "ok", "environment": "nowhere"}),
            "workflow.environment",
        ),
    ] {
        let r = env.event(event(workflow)).await;
        assert_eq!(r.status(), 422);
        assert_eq!(r.json::<Value>().await.unwrap()["field"], field);
    }
    // A failed integration deployment whose event claims a production workflow.
    let answer = env
        .event_ok(event(
            json!({"environment": "production", "namespace": "apps", "name": "post-sync-1"}),
        ))
        .await;
    let id = answer["deployment_id"].as_i64().unwrap().to_string();
    // The production-only deployer may not resubmit an integration deployment.
    let prod = env.sign_in("prod-person").await;

    env.expect(&prod, "resubmit", &[("deployment_id", &id)], 403)
        .await;
    assert!(int_argo.requests().is_empty() && prod_argo.requests().is_empty());
    // The integration deployer's resubmit goes to integration's Argo with its token.
    let dev = env.sign_in("octocat").await;

    env.expect(&dev, "resubmit", &[("deployment_id", &id)], 200)
        .await;
    assert_eq!(
        int_argo.requests(),
        vec![ArgoRequest {
            method: "PUT".to_string(),
            path: "/api/v1/workflows/apps/post-sync-1/resubmit".to_string(),
            auth: "Bearer argo-secret".to_string(),
            body: json!({"memoized": false}),
        }]
    );
    assert!(
        prod_argo.requests().is_empty(),
        "production's Argo received nothing"
    );
    // A row written before names were checked (simulated) never reaches a URL.
    sqlx::query("UPDATE deployments SET status = 'failed', workflow_namespace = '../../x', workflow_name = 'wf/terminate?' WHERE id = $1")
        .bind(id.parse::<i64>().unwrap())
        .execute(env.store.pool())
        .await
        .unwrap();
    env.expect(&dev, "resubmit", &[("deployment_id", &id)], 409)
        .await;
    assert_eq!(int_argo.requests().len(), 1);
    assert!(prod_argo.requests().is_empty());
}

/// Finding 2: no open redirect after sign-in (development sign-in and GitHub callback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_to_never_leaves_the_site() {
    let app = common::TestApp::demo().await;
    for bad in [
        "/\t/evil.example/",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
    ] {
        let c = common::browser();
        let r = common::send(c.post(app.url("/auth/dev")).form(&[
            ("login", "demo"),
            ("role", "viewer"),
            ("return_to", bad),
            ("key", common::DEV_KEY),
        ]))
        .await;
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/", "{bad:?}");
        // Signed in already: the sign-in page sends people back, to the same safe place.
        let r =
            common::send(c.get(app.url("/auth/sign-in?return_to=%2F%09%2Fevil.example%2F"))).await;
        assert_eq!(r.headers()["location"], "/");
    }
    let env = common::TestApp::builder().github().spawn().await;
    env.member("octocat", &[]);
    let c = client();
    let r = env
        .github_sign_in(&c, "octocat", "%2F%09%2Fevil.example%2F")
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
}

/// Finding 3: a connection that never finishes its headers is closed, and connections
/// beyond the cap are closed at once, so the health check keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_connections_are_capped() {
    let app = common::TestApp::builder()
        .config("")
        .settings(|s| {
            s.limits.header_read_timeout = Duration::from_millis(500);
            s.limits.max_connections = 16;
        })
        .spawn()
        .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for i in 0..40 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // Half of them send part of a request, half send nothing at all.
        if i % 2 == 0 {
            s.write_all(b"GET /healthcheck/live HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        held.push(s);
    }
    // Every half-sent request is closed by the server within the header timeout (or at
    // once, beyond the cap): reading sees the end of the stream, never a hang.
    for mut s in held {
        let mut buf = Vec::new();
        // EOF or a reset both mean closed; only a hang (the timeout) fails.
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("the server closes a connection that sends no complete headers")
            .ok();
    }
    let r = common::send(app.client.get(app.url("/healthcheck/ready"))).await;
    assert_eq!(r.status(), 200);
}

/// Finding 4: development sign-in needs the explicit switch, and each request must be
/// addressed to a loopback IP literal with no forwarding header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_sign_in_fails_closed() {
    // Without --dev-sign-in and without GitHub, Release refuses to start.
    let err = common::refused_to_start("", |s| s.dev_sign_in = false).await;
    assert!(err.contains("--dev-sign-in"), "{err}");

    let app = common::TestApp::demo().await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let attempts: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("host", "release.example.org".into()),
            ("x-forwarded-for", "203.0.113.9".into()),
        ],
        vec![
            ("host", format!("127.0.0.1:{port}")),
            ("x-forwarded-for", "203.0.113.9".into()),
        ],
        vec![
            ("host", format!("127.0.0.1:{port}")),
            ("forwarded", "for=203.0.113.9".into()),
        ],
        // The third review's finding 4: every forwarding and client-address header.
        vec![("x-forwarded-server", "proxy.example".into())],
        vec![("x-forwarded-port", "443".into())],
        vec![("x-forwarded-prefix", "/release".into())],
        vec![("x-original-forwarded-for", "203.0.113.9".into())],
        vec![("cf-connecting-ip", "203.0.113.9".into())],
        vec![("true-client-ip", "203.0.113.9".into())],
        vec![("x-client-ip", "203.0.113.9".into())],
        vec![("x-cluster-client-ip", "203.0.113.9".into())],
        vec![("via", "1.1 proxy".into())],
        // DNS rebinding: Host and Origin agree, both the attacker's name.
        vec![
            ("host", "rebind.attacker.example".into()),
            ("origin", "http://rebind.attacker.example".into()),
        ],
        vec![("host", format!("localhost:{port}"))],
    ];
    for headers in attempts {
        let c = common::browser();
        let mut req = c.post(app.url("/auth/dev")).form(&[
            ("login", "x"),
            ("role", "admin"),
            ("key", common::DEV_KEY),
        ]);
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let r = common::send(req).await;
        assert_eq!(r.status(), 404, "{headers:?}");
        let mut req = c.get(app.url("/auth/sign-in"));
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let html = common::text(req).await;
        assert!(!html.contains("Sign in as a demo user"), "{headers:?}");
    }
    // Directly on the loopback address, with the key, it works.
    let r = common::send(common::browser().post(app.url("/auth/dev")).form(&[
        ("login", "x"),
        ("role", "viewer"),
        ("key", common::DEV_KEY),
    ]))
    .await;
    assert_eq!(r.status(), 303);
}

/// The third review's finding 4: development sign-in needs the key printed at startup
/// (so a proxy that rewrites `Host`, or a page that gets a browser to post, cannot sign
/// in); the sign-in page asks for it unless its link carried it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_sign_in_needs_the_key_printed_at_startup() {
    let app = common::TestApp::demo().await;
    // Directly on the loopback address, without the key printed at startup or with a
    // wrong one: refused (a proxy that rewrites Host cannot sign in either).
    for key in [None, Some("wrong-key-wrong-key"), Some("")] {
        let mut form = vec![("login", "x"), ("role", "admin")];
        if let Some(k) = key {
            form.push(("key", k));
        }
        let r = common::send(common::browser().post(app.url("/auth/dev")).form(&form)).await;
        assert_eq!(r.status(), 403, "key {key:?}");
    }
    // The sign-in page asks for the key, unless its link carried the right one.
    let html = common::text(common::browser().get(app.url("/auth/sign-in"))).await;
    assert!(
        html.contains(r#"<input id="key" name="key" required"#),
        "{html}"
    );
    let html = common::text(
        common::browser().get(app.url(&format!("/auth/sign-in?key={}", common::DEV_KEY))),
    )
    .await;
    assert!(
        html.contains(&format!(
            r#"<input type="hidden" name="key" value="{}">"#,
            common::DEV_KEY
        )),
        "{html}"
    );
}

/// Finding 5: a deployer cannot lift an admin's freeze (which would re-open automatic
/// promotion); every lift and every refused lift is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployer_cannot_lift_an_admins_freeze() {
    let app = common::TestApp::demo().await;
    let admin = app.signed_in("admin").await;
    let deployer = app.signed_in("deployer").await;
    app.expect(
        &admin,
        "freeze",
        &[("shortname", "publisher"), ("reason", "incident 42")],
        200,
    )
    .await;
    let body = app
        .expect(&deployer, "unfreeze", &[("shortname", "publisher")], 403)
        .await;
    assert!(body.contains("only an admin may lift it"), "{body}");
    let (_, gate) = app
        .get_json("/api/v1/applications/publisher/promotion?to=production")
        .await;
    assert_eq!(gate["allowed"], false, "{gate}");
    assert!(gate["reason"].as_str().unwrap().contains("incident 42"));
    // The deployer's own freeze they may lift; the admin lifts the admin's.
    let publisher = [("shortname", "publisher")];
    let mine = [("shortname", "publisher"), ("reason", "mine")];
    app.call_all(&[
        (&admin, "unfreeze", &publisher, 200),
        (&deployer, "freeze", &mine, 200),
        (&deployer, "unfreeze", &publisher, 200),
    ])
    .await;
    let log = app.audit(Some("publisher"), 50).await;
    let unfreezes: Vec<&str> = log
        .iter()
        .filter(|a| a.action == "unfreeze")
        .map(|a| a.outcome.as_str())
        .collect();
    assert_eq!(unfreezes, ["done", "done", "refused"]);
}

/// Finding 6: a reported version cannot steer GitHub calls or links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_cannot_steer_urls() {
    let env = common::TestApp::builder().github().spawn().await;
    env.member("octocat", &["developers"]);
    let evil = "%2e%2e/%2e%2e/%2e%2e/user/keys#";
    env.notify_ok("example-org/frontend", "integration", evil)
        .await;
    let c = env.sign_in("octocat").await;
    env.preview(&c, "frontend", "integration", "v2").await;
    let requests = env.fake.lock().unwrap().requests.clone();
    assert!(
        requests
            .iter()
            .all(|(_, p)| !p.starts_with("/api/user/keys") && !p.contains("/../")),
        "{requests:?}"
    );
    let compare = requests
        .iter()
        .find(|(_, p)| p.contains("/compare/"))
        .expect("a compare call");
    assert_eq!(
        compare.1,
        "/api/repos/example-org/frontend/compare/%252e%252e%2F%252e%252e%2F%252e%252e%2Fuser%2Fkeys%23...v2"
    );
    // The version link stays in the repository's tree.
    let html = env.get_text(&c, "/applications/frontend").await;
    assert!(
        html.contains("https://github.com/example-org/frontend/tree/%252e%252e/%252e%252e/%252e%252e/user/keys%23"),
        "the link is encoded"
    );
}

/// Finding 7: people are keyed by GitHub id: a recycled login does not inherit the
/// previous holder's row or token; a renamed person keeps theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_keyed_by_github_id() {
    let env = common::TestApp::builder().github().spawn().await;
    env.member("alice", &["developers"]);
    env.fake.lock().unwrap().ids.insert("alice".into(), 1001);
    env.sign_in("alice").await;
    let first = env.store.users().await.unwrap();
    assert_eq!(first.len(), 1);
    let alice_row = first[0].user.user_id;
    // GitHub gives the login "alice" to someone else (id 2002).
    env.fake.lock().unwrap().ids.insert("alice".into(), 2002);
    env.sign_in("alice").await;
    let users = env.store.users().await.unwrap();
    assert_eq!(users.len(), 2);
    let (old, new) = (with_github_id(&users, 1001), with_github_id(&users, 2002));
    assert_eq!(old.user.login, format!("alice~{alice_row}"));
    assert_ne!(new.user.user_id, alice_row);
    for (row, what) in [
        (old, "the old token is dropped"),
        (new, "never read across ids"),
    ] {
        let token = env.store.user_token_for(row.user.user_id, 1001).await;
        assert!(token.unwrap().is_none(), "{what}");
    }
    // The first person, renamed to "alice-renamed", signs in again: same row.
    env.member("alice-renamed", &["developers"]);
    env.fake
        .lock()
        .unwrap()
        .ids
        .insert("alice-renamed".into(), 1001);
    env.sign_in("alice-renamed").await;
    let users = env.store.users().await.unwrap();
    assert_eq!(users.len(), 2);
    let renamed = with_github_id(&users, 1001);
    assert_eq!(renamed.user.user_id, alice_row);
    assert_eq!(renamed.user.login, "alice-renamed");
}

/// The person GitHub knows by `id` among `users`.
fn with_github_id(users: &[app::store::UserRow], id: i64) -> &app::store::UserRow {
    users.iter().find(|u| u.user.github_id == Some(id)).unwrap()
}

/// Finding 8: at most 8 live streams per session (429 beyond), and they end at sign-out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_streams_are_capped_per_session_and_end_with_it() {
    let app = common::TestApp::demo().await;
    let c = app.signed_in("viewer").await;
    let mut open = Vec::new();
    for _ in 0..8 {
        let r = common::send(c.get(app.url("/api/live"))).await;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let r = common::send(c.get(app.url("/api/live"))).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Signing in again does not buy more streams (the cap is per person)...
    let again = app.signed_in("viewer").await;
    assert_eq!(
        common::send(again.get(app.url("/api/live"))).await.status(),
        429
    );
    // ...but another person has their own allowance.
    let other = app.signed_in("admin").await;
    assert_eq!(
        common::send(other.get(app.url("/api/live"))).await.status(),
        200
    );
    // Sign-out ends every stream of the session.
    let r = common::send(c.post(app.url("/auth/sign-out"))).await;
    assert_eq!(r.status(), 303);
    for mut stream in open {
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match stream.chunk().await {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the stream ended with the session");
    }
}

/// Finding 9: starting a sign-in writes nothing on the server; sign-in and bad bearer
/// tokens are rate limited with 429 and Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_writes_nothing_and_is_rate_limited() {
    let env = common::TestApp::builder().github().spawn().await;
    let count = || env.count("SELECT COUNT(*) FROM sessions");
    let before = count().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut limited = None;
    for _ in 0..40 {
        let r = common::send(http.get(format!("{}/auth/github", env.base))).await;
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 303);
        let cookies: Vec<_> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            cookies
                .iter()
                .all(|c| c.starts_with("release_oauth=") && c.contains("HttpOnly")),
            "{cookies:?}"
        );
    }
    assert_eq!(
        count().await,
        before,
        "no session rows for anonymous sign-in starts"
    );
    let limited = limited.expect("sign-in is rate limited");
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );

    let app = common::TestApp::builder().spawn().await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let r = common::send(
            app.client
                .get(app.url("/api/v1/applications"))
                .bearer_auth(format!("rel_wrong{i}")),
        )
        .await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert!(
        statuses.contains(&401) && statuses.last() == Some(&429),
        "{statuses:?}"
    );
    // The pipeline's valid token is never limited, whatever others sent from its address.
    app.get_json_ok("/api/v1/applications").await;
}

/// Finding 10: a cookie-authenticated POST needs a same-origin `Origin` or
/// `Sec-Fetch-Site: same-origin`; an oversized server-function body is a 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_without_origin_evidence_are_refused_and_big_bodies_are_413() {
    let app = common::TestApp::demo().await;
    let c = app.signed_in("viewer").await;
    let bare = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = common::send(bare.post(app.url("/auth/dev")).form(&[
        ("login", "x"),
        ("role", "viewer"),
        ("key", common::DEV_KEY),
    ]))
    .await;
    assert_eq!(r.status(), 403, "no Origin and no Sec-Fetch-Site");
    let r = common::send(
        bare.post(app.url("/auth/dev"))
            .header("origin", &app.base)
            .form(&[("login", "x"), ("role", "viewer"), ("key", common::DEV_KEY)]),
    )
    .await;
    assert_eq!(r.status(), 303, "a same-origin Origin is enough");
    let r = common::send(bare.post(app.url("/api/grid"))).await;
    assert_eq!(r.status(), 403);
    let r = common::send(bare.post(app.url("/api/grid")).header("origin", &app.base)).await;
    assert_eq!(r.status(), 200);
    let r = common::send(
        bare.post(app.url("/api/grid"))
            .header("origin", &app.base)
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_eq!(r.status(), 403);
    let big = format!(
        "shortname=publisher&environment=integration&git_ref={}",
        "v".repeat(200_000)
    );
    let r = common::send(
        c.post(app.url("/api/deploy"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big),
    )
    .await;
    assert_eq!(r.status(), 413);
}

/// Finding 11: the page guard decides on the normalised path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_guard_sees_through_dot_segments() {
    let app = common::TestApp::demo().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    for path in [
        "/pkg/../audit",
        "/pkg/%2e%2e/audit",
        "/pkg//../audit",
        "/favicon/../audit",
    ] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&buf);
        let status_line = text.lines().next().unwrap_or("");
        assert!(
            !status_line.contains(" 200 ") && !text.contains("Audit log</h1>"),
            "{path}: {status_line}"
        );
    }
}

/// Finding 12: the pages' CSP has no `'self'` in `script-src`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csp_script_src_is_nonce_only() {
    let app = common::TestApp::demo().await;
    let c = app.signed_in("viewer").await;
    let r = common::send(c.get(app.url("/"))).await;
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert!(
        !script_src.contains("'self'") && script_src.contains("'nonce-"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("rel=\"modulepreload\""),
        "no preload link without a nonce"
    );
}

/// The invariant across every button: a person who may deploy only to integration causes
/// nothing in staging or production, by any server function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_deployer_causes_nothing_beyond_integration_by_any_button() {
    let (env, staging_argo, prod_argo) = with_argo(["staging", "production"]).await;
    env.member("octocat", &["developers"]);
    let mut failed = Vec::new();
    for e in ["staging", "production"] {
        let answer = env
            .event_json(json!({"repo": "example-org/frontend", "environment": e, "version": "v9", "stage": "smoke_tests",
                          "status": "failed", "workflow": {"environment": e, "namespace": "apps", "name": "post-sync-9"}}))
            .await;
        failed.push(answer["deployment_id"].as_i64().unwrap().to_string());
    }
    let rows = || env.count("SELECT COUNT(*) FROM deployments WHERE environment <> 'integration'");
    let before = rows().await;
    let c = env.sign_in("octocat").await;
    let mut statuses = Vec::new();
    for e in ["staging", "production"] {
        for confirm in ["", "yes"] {
            statuses.push(
                call(
                    &env.base,
                    &c,
                    "deploy",
                    &[
                        ("shortname", "frontend"),
                        ("environment", e),
                        ("git_ref", "v10"),
                        ("confirm", confirm),
                        ("override_reason", "because"),
                    ],
                )
                .await
                .0,
            );
        }
    }
    for id in &failed {
        statuses.push(
            call(&env.base, &c, "resubmit", &[("deployment_id", id)])
                .await
                .0,
        );
    }
    statuses.push(call(&env.base, &c, "freeze", &[("reason", "site")]).await.0);
    statuses.push(call(&env.base, &c, "unfreeze", &[]).await.0);
    assert!(statuses.iter().all(|s| *s == 403), "{statuses:?}");
    assert_eq!(
        rows().await,
        before,
        "no deployment recorded beyond integration"
    );
    assert!(
        env.fake.lock().unwrap().dispatches.is_empty(),
        "GitHub dispatched nothing"
    );
    assert!(
        staging_argo.requests().is_empty() && prod_argo.requests().is_empty(),
        "Argo received nothing"
    );
    assert!(env.store.all_active_freezes().await.unwrap().is_empty());
    let audit = env.audit(None, 100).await;
    assert!(audit.iter().all(|a| a.outcome == "refused"), "{audit:?}");
}

/// The third review's finding 3, across every button: an integration-only deployer's
/// freeze and rollback hold integration (and promotion into it) and nothing later; the
/// production deployer deploys, and production's and staging's gates stay open; another
/// integration deployer may lift the freeze.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_deployer_cannot_block_a_later_environment_by_any_button() {
    let app = common::TestApp::demo().await;
    let bob = app.signed_in("deployer:integration").await;
    let prod = app.signed_in("deployer:production").await;
    let gate = |to: &'static str| {
        let app = &app;
        async move {
            app.get_json_ok(&format!("/api/v1/applications/signon/promotion?to={to}"))
                .await
        }
    };
    let body = app
        .expect(
            &bob,
            "freeze",
            &[("shortname", "signon"), ("reason", "bob's freeze")],
            200,
        )
        .await;
    assert!(
        body.contains("Deploys of signon to integration are frozen"),
        "{body}"
    );
    assert_eq!(gate("integration").await["allowed"], false);
    for to in ["staging", "production"] {
        assert_eq!(gate(to).await["allowed"], true, "{to}");
    }
    let to_production = [
        ("shortname", "signon"),
        ("environment", "production"),
        ("git_ref", "v941"),
        ("confirm", "yes"),
    ];
    let to_integration = [
        ("shortname", "signon"),
        ("environment", "integration"),
        ("git_ref", "v941"),
    ];
    let roll_back = [
        ("shortname", "signon"),
        ("environment", "integration"),
        ("reason", "bad build"),
    ];
    app.call_all(&[
        // The production deployer deploys to production: not held.
        (&prod, "deploy", &to_production, 200),
        // bob's own deploy to integration is held.
        (&bob, "deploy", &to_integration, 409),
        // bob rolls back integration: held by bob's own freeze (a rollback is a
        // deploy): refused, nothing frozen more.
        (&bob, "rollback", &roll_back, 409),
    ])
    .await;
    // Another integration deployer lifts bob's freeze; then bob's rollback goes through.
    let other = app.signed_in_as("ada", "deployer:integration").await;
    app.call_all(&[
        (&other, "unfreeze", &[("shortname", "signon")], 200),
        (&bob, "rollback", &roll_back, 200),
    ])
    .await;
    let g = gate("integration").await;
    assert_eq!(g["allowed"], false);
    assert!(
        g["reason"]
            .as_str()
            .unwrap()
            .contains("into integration is frozen"),
        "{g}"
    );
    assert_eq!(
        gate("staging").await["allowed"],
        true,
        "staging's gate stays open"
    );
    assert_eq!(gate("production").await["allowed"], true);
    // The production deployer may not lift what holds integration only; nor need to.
    app.expect(&prod, "unfreeze", &[("shortname", "signon")], 403)
        .await;
}
