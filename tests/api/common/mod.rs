//! Runs the real server on a random port with a fresh SQLite database, as a user would.
#![allow(dead_code)]

pub mod binary;
pub mod fake_argo;
pub mod fake_deployments;
pub mod fake_github;
pub mod incoming;

use app::store::Store;
use release::configuration::Config;
use release::startup::{Server, Settings};

/// A running server for one test, with the fake GitHub it may talk to.
///
/// Built by [`TestApp::builder`]: every test starts the real server the same way, on a
/// random port with a fresh database, so one change to how Release starts reaches all.
pub struct TestApp {
    pub base: String,
    /// A pipeline API token (the `/deployments` and `/api/v1` bearer).
    pub token: String,
    pub store: Store,
    pub client: reqwest::Client,
    /// Where `/metrics` is served on its own, when the settings ask for it.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The fake GitHub's base URL (its API is under `/api`).
    pub gh: String,
    /// What the fake GitHub knows and received.
    pub fake: fake_github::Fake,
    _dir: tempfile::TempDir,
}

/// The settings change a test asks for.
type SettingsChange = Box<dyn FnOnce(&mut Settings) + Send>;

/// How a test's server is set up. The default: [`CONFIG`], no demo, the development
/// sign-in (with [`DEV_KEY`]), a fresh SQLite database.
pub struct Builder {
    config: Option<String>,
    extra: String,
    demo: bool,
    github: bool,
    refresh_minutes: i64,
    public_url: Option<String>,
    database_url: Option<String>,
    changes: Vec<SettingsChange>,
}

impl Builder {
    /// The configuration file's text instead of [`CONFIG`] (with `.github()`: what comes
    /// before the GitHub sign-in's sections).
    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(text.to_owned());
        self
    }

    /// More configuration after the rest (applications, `[argo.*]`, `[gates.*]`...).
    pub fn extra(mut self, text: &str) -> Self {
        self.extra.push_str(text);
        self.extra.push('\n');
        self
    }

    /// The demo applications and the simulated pipeline.
    pub fn demo(mut self) -> Self {
        self.demo = true;
        self
    }

    /// Sign-in through the fake GitHub (OAuth with PKCE, org and team membership), the
    /// access rules of [`fake_github::config_text`], Argo tokens per environment, the
    /// demo, and no development sign-in.
    pub fn github(mut self) -> Self {
        self.github = true;
        self.demo = true;
        self
    }

    /// How often (minutes) roles are read again from GitHub; with `.github()`.
    pub fn refresh_minutes(mut self, minutes: i64) -> Self {
        self.refresh_minutes = minutes;
        self
    }

    /// Release's public URL (the OAuth callback's origin); with `.github()`.
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_owned());
        self
    }

    /// A database URL instead of a fresh SQLite file (several servers on one
    /// PostgreSQL database).
    pub fn database(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// Changes the server's settings before it starts.
    pub fn settings(mut self, f: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.changes.push(Box::new(f));
        self
    }

    /// Starts the fake GitHub, then the server, and waits until it listens.
    pub async fn spawn(self) -> TestApp {
        init_logs();
        let (gh, fake) = fake_github::fake_github().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = self
            .database_url
            .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("release.db").display()));
        let config = if self.github {
            let before = self.config.unwrap_or_default();
            fake_github::config_text(
                &gh,
                self.refresh_minutes,
                self.public_url.as_deref(),
                &format!("{before}\n{}", self.extra),
            )
        } else {
            format!(
                "{}\n{}",
                self.config.as_deref().unwrap_or(CONFIG),
                self.extra
            )
        };
        let mut s = settings(database_url, &config, self.demo);
        if self.github {
            s.github_client_secret = Some(fake_github::SECRET.into());
            s.secret_key = Some(fake_github::KEY.into());
            s.demo_stage_ms = 50;
            s.argo_tokens = ["integration", "staging", "production"]
                .into_iter()
                .map(|e| (e.to_string(), argo_token(e)))
                .collect();
            s.dev_sign_in = false;
            s.dev_sign_in_key = None;
        }
        for change in self.changes {
            change(&mut s);
        }
        let server = Server::build(s).await.expect("server builds");
        let base = format!("http://{}", server.local_addr());
        let store = server.store.clone();
        let metrics_addr = server.metrics_addr();
        let token = pipeline_token(&store).await;
        tokio::spawn(server.run_until(std::future::pending()));
        TestApp {
            base,
            token,
            store,
            client: http_client(),
            metrics_addr,
            gh,
            fake,
            _dir: dir,
        }
    }
}

impl TestApp {
    /// A server with the demo applications alone (no configuration of its own).
    pub async fn demo() -> TestApp {
        Self::builder().config("").demo().spawn().await
    }

    /// A server signing in through the fake GitHub (see [`Builder::github`]), with `extra`
    /// configuration.
    pub async fn github_with(extra: &str) -> TestApp {
        Self::builder().github().extra(extra).spawn().await
    }

    pub fn builder() -> Builder {
        Builder {
            config: None,
            extra: String::new(),
            demo: false,
            github: false,
            refresh_minutes: 15,
            public_url: None,
            database_url: None,
            changes: Vec::new(),
        }
    }

    /// A `TestApp` for a server started elsewhere (the real binary) on `store`'s database.
    pub fn external(
        base: String,
        gh: String,
        fake: fake_github::Fake,
        store: Store,
        dir: tempfile::TempDir,
    ) -> Self {
        Self {
            base,
            token: String::new(),
            store,
            client: http_client(),
            metrics_addr: None,
            gh,
            fake,
            _dir: dir,
        }
    }
}

/// Content Store and Frontend as [`CONFIG`] declares them (macro: for `concat!`).
macro_rules! two_apps {
    () => {
        r##"
[[applications]]
name = "Content Store"
repo = "alphagov/content-store"
team = "#publishing"

[[applications]]
name = "Frontend"
repo = "alphagov/frontend"
manual = ["production"]
"##
    };
}

/// The two applications of [`CONFIG`] that have a repo of their own.
pub const TWO_APPS: &str = two_apps!();

pub const CONFIG: &str = concat!(
    r##"
environments = ["integration", "staging", "production"]
"##,
    two_apps!(),
    r##"
# Two applications from one repo: notifications for it are ambiguous.
[[applications]]
name = "Mono A"
shortname = "mono-a"
repo = "alphagov/mono"

[[applications]]
name = "Mono B"
shortname = "mono-b"
repo = "alphagov/mono"
"##
);

/// The development sign-in's key in tests (the server prints a random one otherwise).
pub const DEV_KEY: &str = "test-dev-sign-in-key";

/// The Argo Workflows token a server built with [`Builder::github`] has for
/// `environment` (what a fake Argo there must accept).
pub fn argo_token(environment: &str) -> String {
    match environment {
        "integration" => "argo-secret".to_owned(),
        e => format!("argo-secret-{e}"),
    }
}

/// The settings the tests start from: the development sign-in, a simulated pipeline slow
/// enough that a simulated deploy stays in flight for a whole test.
pub fn settings(database_url: String, config: &str, demo: bool) -> Settings {
    Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        database_url,
        config: Config::parse(config).expect("test config parses"),
        demo,
        site_root: "target/site".into(),
        github_client_secret: None,
        secret_key: None,
        demo_stage_ms: 60_000,
        argo_tokens: Default::default(),
        dev_sign_in: true,
        dev_sign_in_key: Some(DEV_KEY.into()),
        limits: Default::default(),
        alert_env: Default::default(),
        alert_poll: std::time::Duration::from_millis(100),
        metrics_addr: None,
        metrics_token: None,
    }
}

/// Why a server with the [`settings`] for `config`, changed by `change`, refuses to start
/// (the error with its causes, `{:#}`); a server that starts fails the test.
pub async fn refused_to_start(config: &str, change: impl FnOnce(&mut Settings)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(
        format!("sqlite:{}", dir.path().join("r.db").display()),
        config,
        false,
    );
    change(&mut s);
    let err = Server::build(s).await.err().expect("refused");
    format!("{err:#}")
}

/// An HTTP client with a timeout, so a test fails rather than hangs.
pub fn http_client() -> reqwest::Client {
    http_client_within(std::time::Duration::from_secs(30))
}

/// An HTTP client that gives up on a request after `timeout`.
pub fn http_client_within(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
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
    status_text(c.post(format!("{base}/api/{f}")).form(form)).await
}

/// Sends a request that must get an answer (any status).
pub async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.unwrap()
}

/// The body of the answer to a request, whatever its status.
pub async fn text(request: reqwest::RequestBuilder) -> String {
    send(request).await.text().await.unwrap()
}

/// The status and body of the answer to a request.
pub async fn status_text(request: reqwest::RequestBuilder) -> (u16, String) {
    let r = send(request).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Asserts an answer's status and that its body contains `needle`: the body.
pub async fn expect_text(r: reqwest::Response, status: u16, needle: &str) -> String {
    assert_eq!(r.status(), status);
    let body = r.text().await.unwrap();
    assert!(body.contains(needle), "{needle:?} not in {body}");
    body
}

/// A body that must be JSON, parsed.
pub fn json<T: serde::de::DeserializeOwned>(body: &str) -> T {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// An answer's header `name` (which it must have), as text.
pub fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()[name].to_str().unwrap()
}

/// Calls a server function as `c` and asserts its status: the body.
pub async fn call_expect(
    base: &str,
    c: &reqwest::Client,
    f: &str,
    form: &[(&str, &str)],
    status: u16,
) -> String {
    let (s, body) = call(base, c, f, form).await;
    assert_eq!(s, status, "{f}: {body}");
    body
}

impl TestApp {
    /// Calls server function `f` as `c` and asserts the status; the body.
    pub async fn expect(
        &self,
        c: &reqwest::Client,
        f: &str,
        form: &[(&str, &str)],
        status: u16,
    ) -> String {
        call_expect(&self.base, c, f, form, status).await
    }
}

/// One server function call of [`call_all`]: who, which function, the form, the status.
pub type Step<'a> = (&'a reqwest::Client, &'a str, &'a [(&'a str, &'a str)], u16);

/// Calls server functions one after the other, asserting each one's status.
pub async fn call_all(base: &str, steps: &[Step<'_>]) {
    for (c, f, form, status) in steps {
        call_expect(base, c, f, form, *status).await;
    }
}

impl TestApp {
    /// [`call_all`] on this server.
    pub async fn call_all(&self, steps: &[Step<'_>]) {
        call_all(&self.base, steps).await
    }
}

/// The number `store`'s database answers `sql` with (a `SELECT COUNT(*) ...`).
pub async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

impl TestApp {
    /// The number this server's database answers `sql` with (a `SELECT COUNT(*) ...`).
    pub async fn count(&self, sql: &str) -> i64 {
        count(&self.store, sql).await
    }
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

    /// A form POST to `path` with the pipeline token (the Release app's form body).
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        send(
            self.client
                .post(self.url(path))
                .bearer_auth(&self.token)
                .form(form),
        )
        .await
    }

    /// A notification in the Release app's form body that the server must accept: 200,
    /// with the empty body its older clients expect.
    pub async fn notify_form_ok(&self, form: &[(&str, &str)]) {
        let r = self.post_form("/deployments", form).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "");
    }

    /// The body of `c`'s GET of `path`.
    pub async fn get_text(&self, c: &reqwest::Client, path: &str) -> String {
        text(c.get(self.url(path))).await
    }

    /// The status and body of `c`'s GET of `path`.
    pub async fn get_status_text(&self, c: &reqwest::Client, path: &str) -> (u16, String) {
        status_text(c.get(self.url(path))).await
    }

    /// An event sent with the pipeline token that the server must accept (200): its JSON
    /// answer.
    pub async fn event_ok(&self, body: serde_json::Value) -> serde_json::Value {
        let r = self.event(body).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// An event sent with the pipeline token: its JSON answer.
    pub async fn event_json(&self, body: serde_json::Value) -> serde_json::Value {
        self.event(body).await.json().await.unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = send(self.client.get(self.url(path)).bearer_auth(&self.token)).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A GET of `path` with the pipeline token that must answer 200: its JSON.
    pub async fn get_json_ok(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get_json(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn notify(&self, repo: &str, env: &str, version: &str) -> reqwest::Response {
        self.post_json("/deployments", &serde_json::json!({"repo": repo, "deployment": {"environment": env, "version": version}}))
            .await
    }

    /// A notification the server must accept (200).
    pub async fn notify_ok(&self, repo: &str, env: &str, version: &str) {
        let r = self.notify(repo, env, version).await;
        assert_eq!(r.status(), 200, "notifying {repo} {version} in {env}");
    }

    pub async fn event(&self, body: serde_json::Value) -> reqwest::Response {
        self.post_json("/api/v1/events", &body).await
    }

    /// A browser-like client (cookies, no redirects followed) signed in through the
    /// development sign-in with `role`.
    pub async fn signed_in(&self, role: &str) -> reqwest::Client {
        self.signed_in_as("demo", role).await
    }

    /// A browser-like client signed in through the development sign-in as `login` with
    /// `role`.
    pub async fn signed_in_as(&self, login: &str, role: &str) -> reqwest::Client {
        let c = browser();
        let form = [("login", login), ("role", role), ("key", DEV_KEY)];
        let r = send(c.post(self.url("/auth/dev")).form(&form)).await;
        assert_eq!(r.status(), 303, "development sign-in as {role}");
        c
    }

    /// A successful continuous deployment of `repo` (`owner/name`), written straight to
    /// the store as the pipeline's notification would record it.
    pub async fn record(&self, repo: &str, environment: &str, version: &str) {
        use app::domain::{DeploymentStatus, Environment, GitRef, RepoName, Trigger};
        self.store
            .record_deployment(&app::store::NewDeployment {
                repo: RepoName::parse(repo).unwrap(),
                environment: Environment::parse_name(environment).unwrap(),
                version: GitRef::parse(version).unwrap(),
                sha: None,
                deployed_by: Some("pipeline".into()),
                trigger: Trigger::Continuous,
                created_at_ms: None,
                base_status: DeploymentStatus::Succeeded,
            })
            .await
            .unwrap();
    }

    /// `c`'s preview of a deploy of `git_ref` of `app` to `to`: status and body.
    pub async fn preview(
        &self,
        c: &reqwest::Client,
        app: &str,
        to: &str,
        git_ref: &str,
    ) -> (u16, String) {
        let form = [
            ("shortname", app),
            ("environment", to),
            ("git_ref", git_ref),
        ];
        call(&self.base, c, "preview", &form).await
    }

    /// The newest `limit` audit entries of `application` (or all), newest first.
    pub async fn audit(
        &self,
        application: Option<&str>,
        limit: i64,
    ) -> Vec<app::store::AuditEntry> {
        self.store
            .audit_log(application, None, limit)
            .await
            .unwrap()
    }

    /// A page as a signed-in viewer sees it, which must answer 200: its HTML.
    pub async fn page_ok(&self, path: &str) -> String {
        let (status, html) = self.page(path).await;
        assert_eq!(status, 200, "{path}");
        html
    }

    /// A page as a signed-in viewer sees it.
    pub async fn page(&self, path: &str) -> (u16, String) {
        let c = self.signed_in("viewer").await;
        self.get_status_text(&c, path).await
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

/// Runs `test` against a fresh PostgreSQL database (given its URL), then drops the
/// database whether the test passed or not; skipped as [`fresh_postgres`] says when no
/// server answers.
pub async fn on_postgres<F, Fut>(name: &str, test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some((admin, db, url)) = fresh_postgres(name).await else {
        return;
    };
    let result = tokio::spawn(test(url)).await;
    drop_postgres(admin, &db).await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic.into_panic());
    }
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
            gate_override: None,
            freeze: None,
            train_id: None,
        })
        .await
        .unwrap()
}
