//! Signing in with GitHub against a local fake GitHub (a real HTTP server that checks the
//! PKCE verifier, the client secret and the redirect URI), sessions, the authorization
//! matrix, cross-site refusal and security headers.

use crate::common;

use serde_json::{json, Value};
use std::collections::HashSet;

use common::fake_github::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_flow_signs_a_member_in_and_checks_pkce_secret_and_redirect() {
    let env = common::TestApp::builder().github().spawn().await;
    env.member("octocat", &["developers"]);
    let c = client();
    // Signed out: a page sends you to sign in, remembering where you were.
    let r = common::send(c.get(format!("{}/activity?environment=staging", env.base))).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        "/auth/sign-in?return_to=%2Factivity%3Fenvironment%3Dstaging"
    );
    let page = env.get_text(&c, "/auth/sign-in").await;
    assert!(page.contains("Sign in with GitHub"));
    assert!(
        !page.contains("demo user"),
        "no development sign-in when GitHub is configured"
    );

    let before = env.fake.lock().unwrap().token_requests.len();
    let r = env
        .github_sign_in(&c, "octocat", "%2Factivity%3Fenvironment%3Dstaging")
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/activity?environment=staging");
    let cookie = session_cookie(&r).expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "not Secure on plain http");

    let reqs = env.fake.lock().unwrap().token_requests.clone();
    let req = &reqs[before];
    assert_eq!(req["client_secret"], SECRET);
    assert_eq!(req["redirect_uri"], format!("{}/auth/callback", env.base));
    assert_eq!(req["grant_type"], "authorization_code");
    assert!(req["code_verifier"].len() >= 43, "PKCE verifier sent");

    let me = env.me(&c).await;
    assert_eq!(me["login"], "octocat");
    assert_eq!(me["deploy_environments"], json!(["integration"]));
    assert_eq!(me["admin"], false);
    let html = env.get_text(&c, "/").await;
    assert!(
        html.contains("octocat")
            && html.contains("deployer (integration)")
            && html.contains("Sign out")
    );
    assert!(
        !html.contains("gho_"),
        "the token never reaches the browser"
    );

    // The token is stored encrypted.
    let ct: Option<String> =
        sqlx::query_scalar("SELECT token_ciphertext FROM users WHERE login = 'octocat'")
            .fetch_one(env.store.pool())
            .await
            .unwrap();
    let ct = ct.unwrap();
    assert!(!ct.contains("gho_") && ct.len() > 48);
    assert!(release::crypto::TokenCipher::from_hex(KEY)
        .unwrap()
        .decrypt(&ct)
        .unwrap()
        .starts_with("gho_octocat."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_state_and_reused_codes_are_refused() {
    let env = common::TestApp::builder().github().spawn().await;
    env.member("octocat", &[]);
    let c = client();
    let (code, _state) = authorize(&env, &c, "octocat", "%2F").await;
    let query = format!("code={code}&state=forged");
    env.expect_callback(&c, &query, 400, "state mismatch").await;
    // The pending sign-in was spent by the failed attempt: the right state no longer works.
    let r = env.callback(&c, &format!("code={code}")).await;
    assert_eq!(r.status(), 400);
    assert_eq!(env.me(&c).await, Value::Null);

    let (code, state) = authorize(&env, &c, "octocat", "%2F").await;
    let r = env.callback(&c, &format!("code={code}")).await;
    assert_eq!(r.status(), 400, "missing state");
    let _ = state;

    // A code used twice: the second exchange is refused by GitHub, and so by Release.
    let (code, state) = authorize(&env, &c, "octocat", "%2F").await;
    assert_eq!(
        env.callback(&c, &format!("code={code}&state={state}"))
            .await
            .status(),
        303
    );
    let other = client();
    let (_, state2) = authorize(&env, &other, "octocat", "%2F").await;
    let query = format!("code={code}&state={state2}");
    env.expect_callback(&other, &query, 400, "did not accept the sign-in code")
        .await;
    assert_eq!(env.me(&other).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_authorization_and_a_non_member_are_told_why() {
    let env = common::TestApp::builder().github().spawn().await;
    let c = client();
    let (_code, state) = authorize(&env, &c, "stranger", "%2F").await;
    let query = format!("error=access_denied&state={state}");
    env.expect_callback(&c, &query, 401, "did not authorise Release")
        .await;

    let r = env.github_sign_in(&c, "stranger", "%2F").await;
    let body = common::expect_text(r, 403, "not an active member").await;
    assert!(body.contains("example-org"), "{body}");
    assert_eq!(env.me(&c).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_from_a_team_or_the_org_takes_effect_mid_session() {
    // refresh_minutes = 0: memberships are read again on every request.
    let env = common::TestApp::builder()
        .github()
        .refresh_minutes(0)
        .spawn()
        .await;
    env.member("octocat", &["developers", "release-admins"]);
    let c = env.sign_in("octocat").await;
    let me = env.me(&c).await;
    assert_eq!(me["admin"], true);
    env.fake
        .lock()
        .unwrap()
        .teams
        .remove(&("release-admins".into(), "octocat".into()));
    let me = env.me(&c).await;
    assert_eq!(
        me["admin"], false,
        "removed from the admins team: no longer admin"
    );
    assert_eq!(me["deploy_environments"], json!(["integration"]));
    let html = env.get_text(&c, "/admin/users").await;
    assert!(html.contains("this needs the admin role"));

    env.fake.lock().unwrap().org_members.remove("octocat");
    let r = common::send(c.get(format!("{}/", env.base))).await;
    assert_eq!(r.status(), 303, "removed from the organisation: signed out");
    assert_eq!(env.me(&c).await, Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_id_changes_at_sign_in_and_sign_out_kills_it() {
    let env = common::TestApp::builder().github().spawn().await;
    env.member("octocat", &[]);
    let c = client();
    // A session the browser already has (here: an earlier sign-in) is replaced, not
    // reused, by the next sign-in.
    let before = session_cookie(&env.github_sign_in(&c, "octocat", "%2F").await).unwrap();
    let after = session_cookie(&env.github_sign_in(&c, "octocat", "%2F").await).unwrap();
    let value = |c: &str| c.split(';').next().unwrap().to_owned();
    assert_ne!(value(&before), value(&after), "a new session id at sign-in");

    // Sign out, then replay the old cookie by hand: it is worth nothing.
    let r = common::send(c.post(format!("{}/auth/sign-out", env.base))).await;
    assert_eq!(r.status(), 303);
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = common::send(
        raw.get(format!("{}/", env.base))
            .header("cookie", value(&after)),
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(common::header(&r, "location").starts_with("/auth/sign-in"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_behind_https() {
    let env = common::TestApp::builder()
        .github()
        .public_url("https://release.example.org")
        .spawn()
        .await;
    env.member("octocat", &[]);
    let raw = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let r = common::send(raw.get(format!("{}/auth/github", env.base))).await;
    let pending = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        pending.starts_with("release_oauth=")
            && pending.contains("Secure")
            && pending.contains("HttpOnly")
            && pending.contains("SameSite=Lax"),
        "{pending}"
    );
    let q = query(r.headers()["location"].to_str().unwrap());
    assert_eq!(
        q["redirect_uri"],
        "https://release.example.org/auth/callback"
    );
    // Finish the sign-in (the browser would send the Secure cookie over https).
    let code = format!("octocat.{}", rand_code());
    env.fake.lock().unwrap().codes.insert(
        code.clone(),
        (q["code_challenge"].clone(), q["redirect_uri"].clone()),
    );
    let r = raw
        .get(format!(
            "{}/auth/callback?code={code}&state={}",
            env.base, q["state"]
        ))
        .header("cookie", pending.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = session_cookie(&r).unwrap();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
}

/// Every page (GET) and every server function (POST), for each kind of caller: anonymous,
/// viewer, integration-only deployer, deployer to every environment, admin. A page or
/// server function without a row here fails
/// `the_matrix_covers_every_page_and_server_function`.
const ROUTES: &[(&str, &str, [u16; 5])] = &[
    ("GET", "/", [303, 200, 200, 200, 200]),
    ("GET", "/activity", [303, 200, 200, 200, 200]),
    (
        "GET",
        "/applications/{shortname}",
        [303, 200, 200, 200, 200],
    ),
    // The page answers 403 to a signed-in non-admin, with the reason on it.
    ("GET", "/admin/users", [303, 403, 403, 403, 200]),
    ("GET", "/audit", [303, 200, 200, 200, 200]),
    ("GET", "/train", [303, 200, 200, 200, 200]),
    ("GET", "/stats", [303, 200, 200, 200, 200]),
    // Server functions, same callers.
    ("POST", "/api/grid", [401, 200, 200, 200, 200]),
    ("POST", "/api/activity", [401, 200, 200, 200, 200]),
    ("POST", "/api/application", [401, 200, 200, 200, 200]),
    ("POST", "/api/me", [200, 200, 200, 200, 200]),
    ("POST", "/api/users", [401, 403, 403, 403, 200]),
    ("POST", "/api/audit", [401, 200, 200, 200, 200]),
    // A deploy to integration: the demo's simulated pipeline takes the integration
    // deployer's; the others', right after, find it in flight (tests/deploys.rs covers
    // GitHub's dispatch itself).
    ("POST", "/api/deploy", [401, 403, 200, 409, 409]),
    // Publisher's failed staging deployment: the integration-only deployer may not touch
    // it; the deployer resubmits it; then it is no longer failed, so the admin's is refused.
    ("POST", "/api/resubmit", [401, 403, 403, 200, 409]),
    ("POST", "/api/preview", [401, 200, 200, 200, 200]),
    ("POST", "/api/refs", [401, 200, 200, 200, 200]),
    // Each caller freezes the app, then lifts their own freeze.
    ("POST", "/api/freeze", [401, 403, 200, 200, 200]),
    ("POST", "/api/unfreeze", [401, 403, 200, 200, 200]),
    ("POST", "/api/alerts", [401, 403, 403, 403, 200]),
    ("POST", "/api/unconfirmed", [401, 403, 403, 403, 200]),
    ("POST", "/api/github_reports", [401, 403, 403, 403, 200]),
    ("POST", "/api/train_candidates", [401, 200, 200, 200, 200]),
    ("POST", "/api/train_status", [401, 200, 200, 200, 200]),
    ("POST", "/api/stats", [401, 200, 200, 200, 200]),
    // Viewers may not; the integration deployer may not promote to staging; the demo's
    // publisher has nothing to promote there (409; in a train, an item skipped).
    ("POST", "/api/promote", [401, 403, 403, 409, 409]),
    ("POST", "/api/train", [401, 403, 403, 200, 200]),
    // Any signed-in person may read a train, as the audit log (train 1: the deployer's).
    ("POST", "/api/train_progress", [401, 404, 404, 200, 200]),
    // A page read before: the version to roll back to is not "nope" (409, nothing done).
    ("POST", "/api/rollback", [401, 403, 403, 409, 409]),
    // The demo has no alert receivers: an admin's test for one is a 404.
    ("POST", "/api/alert_test", [401, 403, 403, 403, 404]),
    // The demo's "merge to main": whoever may deploy to the first environment.
    ("POST", "/api/simulate_merge", [401, 403, 200, 200, 200]),
    // No run Release dispatched for deployment 1 (the demo's pipeline has none).
    ("POST", "/api/review_deployment", [401, 404, 404, 404, 404]),
];

/// The form each server function is posted in the matrix (`failed`: a failed deployment).
fn server_fn_form(path: &str, failed: i64) -> String {
    match path {
        "/api/application" => "shortname=publisher".to_string(),
        "/api/deploy" => "shortname=publisher&environment=integration&git_ref=v1".to_string(),
        "/api/resubmit" => format!("deployment_id={failed}"),
        "/api/freeze" => "shortname=publisher&reason=matrix".to_string(),
        "/api/unfreeze" => "shortname=publisher".to_string(),
        "/api/alert_test" => "receiver=nobody".to_string(),
        "/api/simulate_merge" => "shortname=publisher".to_string(),
        "/api/review_deployment" => "deployment_id=1&decision=approve".to_string(),
        "/api/train_status" => "environment=staging&applications[0]=publisher".to_string(),
        "/api/train_progress" => "id=1".to_string(),
        "/api/promote" => "shortname=publisher&environment=staging".to_string(),
        "/api/rollback" => {
            "shortname=publisher&environment=staging&reason=matrix&expected_version=nope"
                .to_string()
        }
        "/api/train" => "environment=staging&applications[0]=publisher".to_string(),
        "/api/refs" => "shortname=publisher".to_string(),
        "/api/preview" => "shortname=publisher&environment=integration&git_ref=v1".to_string(),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_matrix() {
    let app = common::TestApp::demo().await;
    let callers = [
        None,
        Some("viewer"),
        Some("deployer:integration"),
        Some("deployer"),
        Some("admin"),
    ];
    let failed: i64 = sqlx::query_scalar(
        "SELECT d.id FROM deployments d JOIN applications a ON a.id = d.application_id WHERE a.shortname = 'publisher' AND d.status = 'failed' AND d.environment = 'staging' ORDER BY d.id DESC LIMIT 1",
    )
    .fetch_one(app.store.pool())
    .await
    .unwrap();
    for (i, role) in callers.iter().enumerate() {
        let c = match role {
            Some(r) => app.signed_in(r).await,
            None => common::browser(),
        };
        for (method, path, expect) in ROUTES {
            let request = match *method {
                "GET" => c.get(app.url(&path.replace("{shortname}", "publisher"))),
                _ => c
                    .post(app.url(path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(server_fn_form(path, failed)),
            };
            let r = common::send(request).await;
            let status = r.status().as_u16();
            assert_eq!(
                status,
                expect[i],
                "{method} {path} as {role:?}: {}",
                r.text().await.unwrap_or_default()
            );
        }
    }
    // The admin page tells a non-admin why.
    let viewer = app.signed_in("viewer").await;
    let html = app.get_text(&viewer, "/admin/users").await;
    assert!(html.contains("this needs the admin role"));
    let admin = app.signed_in("admin").await;
    let html = app.get_text(&admin, "/admin/users").await;
    assert!(html.contains("demo-viewer") && html.contains("demo-admin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_covers_every_page_and_server_function() {
    let pages: HashSet<String> = release::startup::route_list()
        .iter()
        .map(|r| r.path().to_string())
        .collect();
    let listed = |method: &str| -> HashSet<String> {
        ROUTES
            .iter()
            .filter(|(m, _, _)| *m == method)
            .map(|(_, p, _)| p.to_string())
            .collect()
    };
    assert_eq!(pages, listed("GET"), "every page has a row in ROUTES");
    let fns: HashSet<String> = leptos::server_fn::axum::server_fn_paths()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(
        fns,
        listed("POST"),
        "every server function has a row in ROUTES"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused() {
    let app = common::TestApp::demo().await;
    let c = app.signed_in("viewer").await;
    let host = app.base.trim_start_matches("http://").to_owned();
    let r = common::send(
        c.post(app.url("/auth/sign-out"))
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = common::send(
        c.post(app.url("/api/grid"))
            .header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = common::send(
        c.post(app.url("/auth/dev"))
            .header("origin", "null")
            .form(&[("login", "x"), ("role", "admin"), ("key", common::DEV_KEY)]),
    )
    .await;
    assert_eq!(r.status(), 403);
    // Still signed in: the refused sign-out did nothing.
    let r = common::send(
        c.post(app.url("/api/grid"))
            .header("origin", format!("http://{host}"))
            .header("sec-fetch-site", "same-origin"),
    )
    .await;
    assert_eq!(r.status(), 200);
    // The pipeline API (bearer tokens, no cookies) is not affected by Origin.
    let r = common::send(
        app.client
            .post(app.url("/deployments"))
            .bearer_auth(&app.token)
            .header("origin", "https://ci.example")
            .json(
                &json!({"repo": "a/b", "deployment": {"environment": "staging", "version": "v1"}}),
            ),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_headers_on_pages_and_api() {
    let app = common::TestApp::demo().await;
    let c = app.signed_in("viewer").await;
    let r = common::send(c.get(app.url("/"))).await;
    let h = r.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("'nonce-")
            && csp.contains("'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    let html = r.text().await.unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the CSP nonce"
    );
    let r = common::send(app.client.get(app.url("/healthcheck/live"))).await;
    assert!(common::header(&r, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_sign_in_is_refused_off_loopback() {
    let err = common::refused_to_start("", |s| {
        s.addr = "0.0.0.0:0".parse().unwrap();
        s.dev_sign_in_key = None;
    })
    .await;
    assert!(err.contains("not a loopback address"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_needs_its_secrets() {
    let config = "[github]\nclient_id = \"x\"\n[access]\norg = \"o\"";
    let err = common::refused_to_start(config, |s| {
        s.secret_key = Some(KEY.into());
        s.dev_sign_in = false;
        s.dev_sign_in_key = None;
    })
    .await;
    assert!(err.contains("RELEASE_GITHUB_CLIENT_SECRET"), "{err}");
}
