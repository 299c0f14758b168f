//! Building the server: the database, the routes, the listener. Tests call `Server::build`
//! with port 0 and a fresh database to run the real app on a random port.

use crate::configuration::Config;
use crate::configuration::SessionSettings;
use crate::crypto::TokenCipher;
use crate::github::GitHub;
use crate::http;
use crate::http::state::{AuthState, Limits, ServerState, Sessions, BODY_LIMIT};
use anyhow::Context;
use app::state::AppState;
use app::store::Store;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Settings {
    pub addr: SocketAddr,
    /// `RELEASE_GITHUB_CLIENT_SECRET`: needed when `[github]` is configured.
    pub github_client_secret: Option<String>,
    /// `RELEASE_SECRET_KEY`: 64 hex digits; needed when `[github]` is configured.
    pub secret_key: Option<String>,
    /// How long each stage of the demo's simulated pipeline takes (`RELEASE_DEMO_STAGE_MS`).
    pub demo_stage_ms: u64,
    /// Argo server tokens per environment (`RELEASE_ARGO_TOKEN_<ENVIRONMENT>`).
    pub argo_tokens: std::collections::HashMap<String, String>,
    pub database_url: String,
    pub config: Config,
    pub demo: bool,
    /// Where the compiled site (`pkg/`, assets) is; `LEPTOS_SITE_ROOT` or `target/site`.
    pub site_root: String,
    /// The development sign-in (`--dev-sign-in`, implied by `--demo`): only without GitHub,
    /// only on a loopback address.
    pub dev_sign_in: bool,
    /// The development sign-in's key (`RELEASE_DEV_SIGN_IN_KEY`, 16 characters or more);
    /// `None`: a random one, printed at startup.
    pub dev_sign_in_key: Option<String>,
    pub limits: Limits,
    /// `RELEASE_ALERT_URL_<NAME>`, `RELEASE_ALERT_SECRET_<NAME>`,
    /// `RELEASE_ARGOCD_TOKEN_<ENVIRONMENT>` and `RELEASE_GITHUB_STATS_TOKEN` variables, by
    /// name.
    pub alert_env: std::collections::HashMap<String, String>,
    /// How often the alert outbox and the stats are looked at (1 s).
    pub alert_poll: std::time::Duration,
    /// `--metrics-addr`: `/metrics` on an address of its own (no token).
    pub metrics_addr: Option<SocketAddr>,
    /// `RELEASE_METRICS_TOKEN`: `/metrics` on the main address, with this bearer token.
    pub metrics_token: Option<String>,
}

/// The reporter of deployments to GitHub's Deployments API: with `[github.app]` and its key
/// (`RELEASE_GITHUB_APP_KEY`), or a token (`RELEASE_GITHUB_REPORT_TOKEN`); none without.
fn github_reporter(
    settings: &Settings,
    store: &Store,
    pipeline: &Arc<app::pipeline::Pipeline>,
    public_url: &str,
    alerts: &crate::alerts::AlertSettings,
) -> anyhow::Result<Option<crate::github_deployments::Reporter>> {
    use crate::github_deployments::{AppCredentials, Credentials, Reporter};
    let Some(github) = &settings.config.github else {
        return Ok(None);
    };
    let secret = |name: &str| {
        settings
            .alert_env
            .get(name)
            .filter(|v| !v.trim().is_empty())
    };
    let credentials = match (github.reports.app, secret("RELEASE_GITHUB_APP_KEY")) {
        (Some(app), Some(key)) => {
            Credentials::App(AppCredentials::parse(app.id, app.installation_id, key)?)
        }
        (Some(_), None) => {
            anyhow::bail!("[github.app] needs the App's private key in RELEASE_GITHUB_APP_KEY")
        }
        (None, _) => match secret("RELEASE_GITHUB_REPORT_TOKEN") {
            Some(t) => Credentials::Token(t.trim().to_owned()),
            None => return Ok(None),
        },
    };
    Ok(Some(Reporter {
        store: store.clone(),
        pipeline: pipeline.clone(),
        public_url: public_url.to_owned(),
        credentials,
        environments: github.reports.environments.clone(),
        production: settings
            .config
            .environments
            .names()
            .last()
            .map(|s| (*s).to_owned())
            .unwrap_or_default(),
        retry_first: alerts.retry_first,
        every: settings.alert_poll,
    }))
}

pub struct Server {
    listener: TcpListener,
    router: Router,
    limits: Limits,
    live: Arc<http::streams::LiveStreams>,
    pub store: Store,
    pub demo_loaded: bool,
    pub dev_sign_in: bool,
    dev_key: String,
    metrics_addr: Option<SocketAddr>,
}

impl Server {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mut store =
            Store::connect(&settings.database_url, settings.config.environments.clone())
                .await
                .with_context(|| {
                    format!(
                        "opening the database {}",
                        app::store::redact_url(&settings.database_url)
                    )
                })?;
        store.set_drift_grace_ms(settings.config.drift_grace_seconds * 1000);
        store.set_stall_ms(settings.config.stall_minutes * 60_000);
        store.migrate().await.context("running migrations")?;
        store
            .sync_applications(&settings.config.applications)
            .await?;
        let demo_loaded = if settings.demo {
            crate::demo::load_if_empty(&store).await?
        } else {
            false
        };

        let listener = TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("listening on {}", settings.addr))?;
        let addr = listener.local_addr()?;
        let auth = auth_state(&settings, addr)?;
        let leptos_options = LeptosOptions::builder()
            .output_name("release")
            .site_root(settings.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let stall_ms = settings.config.stall_minutes * 60_000;
        let simulated = settings.demo && settings.config.github.is_none();
        let gates = Arc::new({
            let mut g = settings.config.gates.clone();
            g.argocd_environments = settings
                .config
                .argocd
                .iter()
                .map(|(e, _)| e.clone())
                .collect();
            // The demo shows a soak time at work when no gates are configured:
            // search-api's version in staging soaks two hours before production.
            if settings.demo && settings.config.gates == Default::default() {
                g.applications.insert(
                    "search-api".into(),
                    app::domain::gates::ApplicationGates {
                        required_checks: None,
                        soak_minutes: [("production".to_string(), 120)].into(),
                    },
                );
            }
            g
        });
        let grid = app::grid_cache::GridCache::start(store.clone(), simulated, gates.clone())
            .await
            .context("rendering the grid")?;
        let alert_settings = Arc::new(alert_settings(&settings)?);
        let public_url = settings
            .config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        crate::alerts::spawn_sender(
            store.clone(),
            alert_settings.clone(),
            public_url.clone(),
            stall_ms,
        );
        let argocd: Vec<crate::argocd::ArgoCd> = settings
            .config
            .argocd
            .iter()
            .map(|(env, url)| crate::argocd::ArgoCd {
                environment: env.clone(),
                url: url.clone(),
                token: app::crypto::Secret::new(
                    settings
                        .alert_env
                        .get(&format!(
                            "RELEASE_ARGOCD_TOKEN_{}",
                            env.to_ascii_uppercase().replace('-', "_")
                        ))
                        .cloned()
                        .unwrap_or_default(),
                ),
            })
            .collect();
        crate::argocd::spawn_observers(
            store.clone(),
            argocd,
            crate::argocd::Reading {
                apps: crate::argocd::AppMap(settings.config.argocd_apps.clone()),
                rules: crate::argocd::VersionRules::from_patterns(
                    settings.config.version_pattern.as_deref(),
                    &settings.config.version_patterns,
                ),
            },
        );
        let pipeline = Arc::new(pipeline(&settings));
        // Deployments told back to GitHub, when a token that needs no person is configured.
        let reporter = github_reporter(&settings, &store, &pipeline, &public_url, &alert_settings)?;
        let reported = match &reporter {
            Some(r) => r.reported(&settings.config.environments.names()),
            None => vec![],
        };
        store.set_report_environments(&reported).await?;
        if let Some(r) = reporter {
            tracing::info!(environments = ?reported, credentials = ?r.credentials, "deployments are told to GitHub");
            r.spawn();
        }
        crate::stats::spawn(
            store.clone(),
            pipeline.clone(),
            crate::stats::StatsSettings {
                every: settings.alert_poll,
                github_token: settings
                    .alert_env
                    .get("RELEASE_GITHUB_STATS_TOKEN")
                    .filter(|t| !t.is_empty())
                    .cloned(),
            },
        );
        let secure_cookies = auth.secure_cookies();
        let (session_layer, sessions) = session_layer(&store, secure_cookies, &auth.session);
        let state = ServerState::new(http::state::ServerStateInner {
            leptos_options,
            app: AppState {
                store: store.clone(),
                pipeline,
                cipher: auth.cipher.clone(),
                stall_ms,
                grid,
                alert_receivers: Arc::new(
                    alert_settings.receivers.iter().map(|r| r.info()).collect(),
                ),
                who_may_deploy: Arc::new({
                    let access = &settings.config.access;
                    let mut who = access.deployers.clone();
                    if !access.admins.is_empty() {
                        who.push(("every environment (admins)".into(), access.admins.clone()));
                    }
                    who
                }),
                gates: gates.clone(),
                // The demo without GitHub drives a simulated pipeline instead.
                simulator: (settings.demo && settings.config.github.is_none())
                    .then(|| Arc::new(app::simulator::Simulator::new(settings.demo_stage_ms))),
            },
            auth: Arc::new(auth),
            token_cache: Arc::default(),
            auth_limiter: Arc::new(http::rate_limit::RateLimiter::new(
                settings.limits.auth_per_minute,
            )),
            token_limiter: Arc::new(http::rate_limit::RateLimiter::new(
                settings.limits.bad_tokens_per_minute,
            )),
            live: Arc::default(),
            sessions,
            limits: settings.limits.clone(),
            default_owner: settings.config.default_owner.clone(),
            metrics_token: settings.metrics_token.clone().filter(|t| !t.is_empty()),
            github_webhook_secret: settings
                .alert_env
                .get("RELEASE_GITHUB_WEBHOOK_SECRET")
                .filter(|s| !s.is_empty())
                .cloned(),
        });
        // Runs Release dispatched that wait for a reviewer: polled with ETags (for
        // installations without the webhook), fifteen times the alert sender's interval
        // (15 s in production).
        if settings.config.github.is_some() {
            app::actions::approvals::spawn_poller(state.app.clone(), settings.alert_poll * 15);
        }
        // The daily digest per team, when `[alerts] digest_at` is set.
        if let Some(time) = settings.config.alerts.digest {
            crate::digest::spawn(
                state.app.clone(),
                crate::digest::DigestSettings {
                    time,
                    alerts: alert_settings.clone(),
                    public_url: public_url.clone(),
                    token: settings
                        .alert_env
                        .get("RELEASE_GITHUB_STATS_TOKEN")
                        .filter(|t| !t.is_empty())
                        .cloned(),
                    every: settings.alert_poll * 10,
                },
            );
        }
        // Intents whose outcome was lost (a restart between GitHub's answer and its
        // record) are reconciled at once and then every 5 s.
        app::actions::reconcile::spawn_reconciler(
            state.app.clone(),
            std::time::Duration::from_secs(5),
            store.backend() == app::store::Backend::Sqlite,
        );
        // The recorder exists before the first request is counted.
        http::metrics::handle();
        let metrics_addr = match settings.metrics_addr {
            Some(addr) => Some(serve_metrics(addr, state.clone()).await?),
            None => None,
        };
        let router = outer_layers(router(state.clone()).layer(session_layer), &state);
        Ok(Self {
            listener,
            router,
            limits: settings.limits.clone(),
            live: state.live.clone(),
            store,
            demo_loaded,
            dev_sign_in: state.auth.dev_sign_in,
            dev_key: state.auth.dev_key.clone(),
            metrics_addr,
        })
    }

    /// Where `/metrics` is served on its own, when it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The development sign-in's link with its key, when development sign-in is on.
    pub fn dev_sign_in_link(&self) -> Option<String> {
        self.dev_sign_in.then(|| {
            format!(
                "http://{}/auth/sign-in?key={}",
                self.local_addr(),
                self.dev_key
            )
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight (live
    /// streams are ended; other requests get up to 30 s).
    ///
    /// Our own accept loop rather than `axum::serve`, for the limits it cannot set: a
    /// connection must send its headers within `header_read_timeout`, and at most
    /// `max_connections` are open (more are closed as soon as they are accepted, so the
    /// process never runs out of file descriptors and keeps answering its health check).
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        use hyper_util::rt::{TokioIo, TokioTimer};
        use tower::ServiceExt;
        let service = tower::ServiceBuilder::new()
            .map_request(http::applications::rewrite_release_app_json)
            .service(self.router);
        // HTTP/1.1 only (browsers speak plain-text HTTP/2 to nobody): no protocol sniffing
        // step, so the header timeout runs from the first byte a connection may send, and
        // a connection that sends nothing is closed too.
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(self.limits.max_connections));
        let mut refused_at: Option<std::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                if refused_at.is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(60)) {
                    tracing::warn!(
                        max = self.limits.max_connections,
                        "connection limit reached: closing new connections"
                    );
                    refused_at = Some(std::time::Instant::now());
                }
                drop(stream);
                continue;
            };
            let service = service.clone();
            let hyper_service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    service.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = builder.serve_connection(TokioIo::new(stream), hyper_service);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(slot);
            });
        }
        drop(self.listener);
        self.live.shutdown();
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {
                tracing::warn!("requests still in flight after 30 s: stopping anyway");
            }
        }
        self.store.close().await;
        Ok(())
    }
}

/// `/metrics` alone on `addr` (for a network only Prometheus reaches): no token, no pages.
async fn serve_metrics(addr: SocketAddr, state: ServerState) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/metrics", axum::routing::get(http::metrics::scrape))
        .with_state(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(bound)
}

/// The alert receivers with their URLs and secrets from the environment: a receiver
/// without a URL, or a webhook without a secret, stops the server with the variable to set.
fn alert_settings(settings: &Settings) -> anyhow::Result<crate::alerts::AlertSettings> {
    let config = &settings.config.alerts;
    let mut receivers = Vec::new();
    for r in &config.receivers {
        let url_var = format!("RELEASE_ALERT_URL_{}", r.env_suffix());
        let secret_var = format!("RELEASE_ALERT_SECRET_{}", r.env_suffix());
        let url = match (&r.url, settings.alert_env.get(&url_var)) {
            (_, Some(u)) if u.starts_with("https://") || u.starts_with("http://") => u.clone(),
            (_, Some(_)) => anyhow::bail!("{url_var} must be an http(s) URL"),
            (Some(u), None) => u.clone(),
            (None, None) => anyhow::bail!(
                "alert receiver {:?} has no url: set it in [[alerts.receivers]] or in {url_var}",
                r.name
            ),
        };
        let secret = settings.alert_env.get(&secret_var).cloned();
        if r.kind == crate::alerts::ReceiverKind::Webhook
            && secret.as_deref().is_none_or(|s| s.len() < 16)
        {
            anyhow::bail!(
                "webhook receiver {:?} needs a signing secret of at least 16 characters in {secret_var}",
                r.name
            );
        }
        receivers.push(crate::alerts::Receiver {
            route: app::store::AlertRoute {
                name: r.name.clone(),
                teams: r.teams.clone(),
                kinds: r.events.clone(),
            },
            kind: r.kind,
            url: app::crypto::Secret::new(url),
            secret: secret.map(app::crypto::Secret::new),
        });
    }
    Ok(crate::alerts::AlertSettings {
        receivers,
        retry_first: config.retry_first,
        give_up_after: config.give_up_after,
        poll: settings.alert_poll,
    })
}

fn pipeline(settings: &Settings) -> app::pipeline::Pipeline {
    let argo = settings
        .config
        .argo
        .iter()
        .map(|(env, url)| {
            let token = settings.argo_tokens.get(env).cloned().unwrap_or_default();
            (
                env.clone(),
                app::pipeline::ArgoServer {
                    url: url.clone(),
                    token: app::crypto::Secret::new(token),
                },
            )
        })
        .collect();
    app::pipeline::Pipeline::with_timeout(
        settings.config.github.as_ref().map(|g| g.api_url.clone()),
        argo,
        settings.limits.outside_timeout,
    )
}

fn auth_state(settings: &Settings, bound: SocketAddr) -> anyhow::Result<AuthState> {
    let config = &settings.config;
    let loopback = settings.addr.ip().is_loopback();
    let public = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{bound}"));
    let public_url = url::Url::parse(&public)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .with_context(|| format!("public_url {public:?} is not an http(s) URL"))?;
    let (github, cipher) = match &config.github {
        Some(gh) => {
            anyhow::ensure!(
                !settings.dev_sign_in || settings.demo,
                "--dev-sign-in cannot be combined with GitHub sign-in ([github] in the configuration file)"
            );
            let secret = settings
                .github_client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .context("[github] is configured but RELEASE_GITHUB_CLIENT_SECRET is not set")?;
            let key = settings
                .secret_key
                .as_deref()
                .context("[github] is configured but RELEASE_SECRET_KEY (64 hex digits) is not set: it encrypts people's GitHub tokens")?;
            let public = public.trim_end_matches('/');
            let github = GitHub::new(gh, secret, format!("{public}/auth/callback"))?;
            (Some(github), TokenCipher::from_hex(key)?)
        }
        None => {
            anyhow::ensure!(
                settings.dev_sign_in,
                "no GitHub OAuth app is configured ([github] in the configuration file), so nobody could sign in: \
                 configure GitHub sign-in, or pass --dev-sign-in to try Release on this machine"
            );
            anyhow::ensure!(
                loopback,
                "development sign-in is refused on {}, which is not a loopback address: configure GitHub sign-in, \
                 or listen on 127.0.0.1",
                settings.addr
            );
            let cipher = match &settings.secret_key {
                Some(k) => TokenCipher::from_hex(k)?,
                None => TokenCipher::random(),
            };
            (None, cipher)
        }
    };
    let dev_key = settings
        .dev_sign_in_key
        .clone()
        .filter(|k| k.len() >= 16)
        .unwrap_or_else(|| {
            use rand::Rng;
            hex::encode(rand::thread_rng().gen::<[u8; 16]>())
        });
    Ok(AuthState {
        dev_sign_in: github.is_none() && loopback && settings.dev_sign_in,
        dev_key,
        github,
        cipher,
        access: config.access.clone(),
        session: config.session.clone(),
        public_url,
        public_url_configured: config.public_url.is_some(),
    })
}

/// Sessions live in our own table, in the same database as everything else (expired ones
/// are deleted every hour). Returns the layer and the store.
fn session_layer(
    store: &Store,
    secure: bool,
    s: &SessionSettings,
) -> (tower_sessions::SessionManagerLayer<Sessions>, Sessions) {
    use tower_sessions::cookie::{time::Duration, SameSite};
    use tower_sessions::{Expiry, SessionManagerLayer};
    let sweeper = store.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            if let Err(e) = sweeper.delete_expired_sessions().await {
                tracing::warn!(error = %e, "could not delete expired sessions; trying again in an hour");
            }
        }
    });
    let sessions = Sessions(store.clone());
    // Lax, not Strict: the GitHub callback is a top-level navigation from github.com and
    // must carry the session cookie.
    let layer = SessionManagerLayer::new(sessions.clone())
        .with_name("release_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(Duration::minutes(s.idle_minutes)));
    (layer, sessions)
}

/// The app's routes, generated once per process.
///
/// Generating them runs the whole app with resource loading suppressed through a
/// process-global flag in leptos_server (leptos issue #4773): a resource first polled by a
/// render while any server in the process is generating its route list waits forever.
/// One server per process never meets it (routes are generated before it serves), but
/// several in one process (the tests) did, about one test run in six: a page request that
/// never answered. Generating the list once, before any server can serve, closes that.
pub fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(app::App)).clone()
}

pub fn router(state: ServerState) -> Router {
    let routes = route_list();
    let app_state = state.app.clone();
    let options = state.leptos_options.clone();
    Router::new()
        .merge(http::routes())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(app_state.clone()),
            move || app::shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<ServerState, _>(
            app::shell,
        ))
        // Inner to `authenticate`: it runs after it, for signed-in people only.
        .layer(stateful(&state, http::grid::fresh_grid))
        .layer(stateful(&state, http::guard::authenticate))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::compression::CompressionLayer::new())
        .layer(axum::middleware::from_fn(http::metrics::record))
        .with_state(state)
}

/// A middleware function as a layer, with the server's state (`from_fn_with_state`).
fn stateful<F, T>(state: &ServerState, f: F) -> axum::middleware::FromFnLayer<F, ServerState, T> {
    axum::middleware::from_fn_with_state(state.clone(), f)
}

/// Layers outside the session layer: they see every response, sessions or not. The
/// outermost run first: headers on everything, then rate limits, time and size limits,
/// then the cross-site check.
pub fn outer_layers(router: Router, state: &ServerState) -> Router {
    router
        .layer(stateful(state, http::guard::refuse_cross_site))
        .layer(axum::middleware::from_fn(http::limits::server_fn_status))
        .layer(axum::middleware::from_fn(http::limits::limit_body))
        .layer(stateful(state, http::limits::request_timeout))
        .layer(stateful(state, http::login::limit_sign_in))
        .layer(axum::middleware::from_fn(http::guard::security_headers))
        .layer(axum::middleware::from_fn(crate::telemetry::request_id))
}
