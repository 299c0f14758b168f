//! Runs the real server on a random port with a fresh SQLite database, as a user would.
#![allow(dead_code)]

pub mod binary;
pub mod fake_github;

use app::store::Store;
use release::configuration::Config;
use release::startup::{Server, Settings};

pub struct TestApp {
    pub base: String,
    pub token: String,
    pub store: Store,
    pub client: reqwest::Client,
    /// Where `/metrics` is served on its own, when the settings ask for it.
    pub metrics_addr: Option<std::net::SocketAddr>,
    _dir: tempfile::TempDir,
}

pub const CONFIG: &str = r##"
environments = ["integration", "staging", "production"]

[[applications]]
name = "Content Store"
repo = "alphagov/content-store"
team = "#publishing"

[[applications]]
name = "Frontend"
repo = "alphagov/frontend"
manual = ["production"]

# Two applications from one repo: notifications for it are ambiguous.
[[applications]]
name = "Mono A"
shortname = "mono-a"
repo = "alphagov/mono"

[[applications]]
name = "Mono B"
shortname = "mono-b"
repo = "alphagov/mono"
"##;

/// The development sign-in's key in tests (the server prints a random one otherwise).
pub const DEV_KEY: &str = "test-dev-sign-in-key";

pub async fn spawn() -> TestApp {
    spawn_with(CONFIG, false).await
}

pub async fn spawn_with(config: &str, demo: bool) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite:{}", dir.path().join("release.db").display());
    spawn_on(config, demo, database_url, dir).await
}

/// The settings the tests use, changed by `f`.
pub fn settings(
    database_url: String,
    config: &str,
    demo: bool,
    f: impl FnOnce(&mut Settings),
) -> Settings {
    let mut s = Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        database_url,
        config: Config::parse(config).expect("test config parses"),
        demo,
        site_root: "target/site".into(),
        github_client_secret: None,
        secret_key: None,
        // Slow enough that a simulated deploy stays in flight for a whole test.
        demo_stage_ms: 60_000,
        argo_tokens: Default::default(),
        dev_sign_in: true,
        dev_sign_in_key: Some(DEV_KEY.into()),
        limits: Default::default(),
        alert_env: Default::default(),
        alert_poll: std::time::Duration::from_millis(100),
        metrics_addr: None,
        metrics_token: None,
    };
    f(&mut s);
    s
}

/// The server with settings changed by `f`, on a fresh SQLite database.
pub async fn spawn_custom(config: &str, demo: bool, f: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite:{}", dir.path().join("release.db").display());
    start(settings(database_url, config, demo, f), dir).await
}

/// The server on a given database (several servers may share one PostgreSQL database).
pub async fn spawn_on(
    config: &str,
    demo: bool,
    database_url: String,
    dir: tempfile::TempDir,
) -> TestApp {
    start(settings(database_url, config, demo, |_| {}), dir).await
}

/// The server on a given database with settings changed by `f`.
pub async fn spawn_on_custom(
    config: &str,
    demo: bool,
    database_url: String,
    f: impl FnOnce(&mut Settings),
) -> TestApp {
    start(
        settings(database_url, config, demo, f),
        tempfile::tempdir().expect("temp dir"),
    )
    .await
}

/// Server logs on demand: `TEST_LOG=1 cargo test ...` (filter with `RUST_LOG`).
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("TEST_LOG").is_some() {
        ONCE.call_once(|| {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "release=debug,app=debug,sqlx=warn,warn".into());
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .init();
        });
    }
}

async fn start(settings: Settings, dir: tempfile::TempDir) -> TestApp {
    init_logs();
    let server = Server::build(settings).await.expect("server builds");
    let base = format!("http://{}", server.local_addr());
    let store = server.store.clone();
    let metrics_addr = server.metrics_addr();
    let token = pipeline_token(&store).await;
    tokio::spawn(server.run_until(std::future::pending()));
    TestApp {
        base,
        token,
        store,
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap(),
        metrics_addr,
        _dir: dir,
    }
}

/// A browser-like client: cookies, no redirects followed, and `Sec-Fetch-Site:
/// same-origin` on every request (what a browser sends from Release's own pages), with a
/// timeout so a test fails rather than hangs.
pub fn browser() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "sec-fetch-site",
        reqwest::header::HeaderValue::from_static("same-origin"),
    );
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Calls a server function as `c` (a form POST to `/api/{f}`): status and body.
pub async fn call(
    base: &str,
    c: &reqwest::Client,
    f: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let r = c
        .post(format!("{base}/api/{f}"))
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A new pipeline API token in `store`.
pub async fn pipeline_token(store: &Store) -> String {
    let token = release::http::api_token::generate_token();
    store
        .create_token(
            &format!("pipeline-{}", rand_suffix()),
            &release::http::api_token::hash_token(&token),
        )
        .await
        .unwrap();
    token
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn notify(&self, repo: &str, env: &str, version: &str) -> reqwest::Response {
        self.post_json("/deployments", &serde_json::json!({"repo": repo, "deployment": {"environment": env, "version": version}}))
            .await
    }

    pub async fn event(&self, body: serde_json::Value) -> reqwest::Response {
        self.post_json("/api/v1/events", &body).await
    }

    /// A browser-like client (cookies, no redirects followed) signed in through the
    /// development sign-in with `role`.
    pub async fn signed_in(&self, role: &str) -> reqwest::Client {
        let c = browser();
        let r = c
            .post(self.url("/auth/dev"))
            .form(&[("login", "demo"), ("role", role), ("key", DEV_KEY)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "development sign-in as {role}");
        c
    }

    /// A page as a signed-in viewer sees it.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let c = self.signed_in("viewer").await;
        let r = c.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// A fresh PostgreSQL database for one test: its URL, or `None` (and a SKIPPED line) when no
/// server answers, unless RELEASE_REQUIRE_POSTGRES=1 makes that a failure. Drop it with
/// `drop_postgres`.
pub async fn fresh_postgres(test: &str) -> Option<(sqlx::PgConnection, String, String)> {
    use sqlx::Connection;
    let admin_url = std::env::var("RELEASE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(err) => {
            if std::env::var("RELEASE_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "PostgreSQL is required (RELEASE_REQUIRE_POSTGRES=1) but not reachable: {err}"
                );
            }
            eprintln!("SKIPPED {test}: PostgreSQL not reachable at {admin_url} ({err})");
            return None;
        }
    };
    let db = format!(
        "release_test_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("{}/{db}", admin_url.rsplit_once('/').unwrap().0);
    Some((admin, db, url))
}

pub async fn drop_postgres(mut admin: sqlx::PgConnection, db: &str) {
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// A manual deploy's intent written straight to the store (as `actions::deploy` writes
/// it before calling GitHub): the deployment, the in-flight slot and the audit entry; or
/// who holds the slot.
pub async fn begin_deploy(
    store: &Store,
    repo: &str,
    environment: &str,
    version: &str,
    actor: &str,
    stall_ms: i64,
) -> Result<app::store::Intent, app::store::LockHolder> {
    let repo_name = app::domain::RepoName::parse(repo).unwrap();
    let application_id = store
        .applications()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.repo == repo)
        .expect("a declared application")
        .id;
    let detail = format!("{version} to {environment}");
    store
        .begin_deploy(&app::store::DeployIntent {
            application_id,
            deployment: app::store::NewDeployment {
                repo: repo_name,
                environment: app::domain::Environment::parse_name(environment).unwrap(),
                version: app::domain::GitRef::parse(version).unwrap(),
                sha: None,
                deployed_by: Some(actor.into()),
                trigger: app::domain::Trigger::Manual,
                created_at_ms: None,
                base_status: app::domain::DeploymentStatus::Requested,
            },
            actor,
            user_id: None,
            github_id: None,
            stall_ms,
            audit: app::store::NewAudit {
                actor,
                action: "deploy",
                application: None,
                environment: Some(environment),
                outcome: "requested",
                detail: &detail,
            },
            override_audit: None,
            freeze: None,
            train_id: None,
        })
        .await
        .unwrap()
}
