//! Building the server: the database, the routes, the listener. Tests call `Server::build`
//! with port 0 and a fresh database to run the real app on a random port.

use crate::configuration::Config;
use crate::configuration::{Access, SessionSettings};
use crate::crypto::TokenCipher;
use crate::github::GitHub;
use crate::http;
use anyhow::Context;
use app::state::AppState;
use app::store::Store;
use axum::extract::FromRef;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The largest request body any endpoint takes. Notifications are a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Everything a request handler can reach.
#[derive(Clone)]
pub struct ServerState {
    pub leptos_options: LeptosOptions,
    pub app: AppState,
    pub auth: Arc<AuthState>,
    pub token_cache: Arc<crate::http::api_token::TokenCache>,
}

/// How people sign in and what they may do.
pub struct AuthState {
    /// `None`: no GitHub OAuth app configured (development sign-in instead).
    pub github: Option<GitHub>,
    /// Encrypts people's GitHub tokens at rest.
    pub cipher: TokenCipher,
    pub access: Access,
    pub session: SessionSettings,
    /// The development sign-in: on only without GitHub, on a loopback address.
    pub dev_sign_in: bool,
}

impl FromRef<ServerState> for LeptosOptions {
    fn from_ref(s: &ServerState) -> Self {
        s.leptos_options.clone()
    }
}

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
}

pub struct Server {
    listener: TcpListener,
    router: Router,
    pub store: Store,
    pub demo_loaded: bool,
    pub dev_sign_in: bool,
}

impl Server {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database_url, settings.config.environments.clone())
            .await
            .with_context(|| {
                format!(
                    "opening the database {}",
                    app::store::redact_url(&settings.database_url)
                )
            })?;
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
        let secure_cookies = settings
            .config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"));
        let state = ServerState {
            leptos_options,
            app: AppState {
                store: store.clone(),
                pipeline: Arc::new(pipeline(&settings)),
                cipher: auth.cipher.clone(),
                stall_ms: settings.config.stall_minutes * 60_000,
                // The demo without GitHub drives a simulated pipeline instead.
                simulator: (settings.demo && settings.config.github.is_none())
                    .then(|| Arc::new(app::simulator::Simulator::new(settings.demo_stage_ms))),
            },
            auth: Arc::new(auth),
            token_cache: Arc::default(),
        };
        let router = router(state.clone());
        let router = outer_layers(
            with_sessions(
                router,
                &settings.database_url,
                secure_cookies,
                &state.auth.session,
            )
            .await?,
        );
        Ok(Self {
            listener,
            router,
            store,
            demo_loaded,
            dev_sign_in: state.auth.dev_sign_in,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let service = tower::ServiceBuilder::new()
            .map_request(http::applications::rewrite_release_app_json)
            .service(self.router);
        axum::serve(self.listener, tower::make::Shared::new(service))
            .with_graceful_shutdown(shutdown)
            .await?;
        self.store.close().await;
        Ok(())
    }
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
                    token,
                },
            )
        })
        .collect();
    app::pipeline::Pipeline::new(
        settings.config.github.as_ref().map(|g| g.api_url.clone()),
        argo,
    )
}

fn auth_state(settings: &Settings, bound: SocketAddr) -> anyhow::Result<AuthState> {
    let config = &settings.config;
    let loopback = settings.addr.ip().is_loopback();
    let (github, cipher) = match &config.github {
        Some(gh) => {
            let secret = settings
                .github_client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .context("[github] is configured but RELEASE_GITHUB_CLIENT_SECRET is not set")?;
            let key = settings
                .secret_key
                .as_deref()
                .context("[github] is configured but RELEASE_SECRET_KEY (64 hex digits) is not set: it encrypts people's GitHub tokens")?;
            let public = config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{bound}"));
            let github = GitHub::new(gh, secret, format!("{public}/auth/callback"))?;
            (Some(github), TokenCipher::from_hex(key)?)
        }
        None => {
            anyhow::ensure!(
                loopback,
                "no GitHub OAuth app is configured ([github] in the configuration file), and development sign-in is refused \
                 on {}, which is not a loopback address: configure GitHub sign-in, or listen on 127.0.0.1",
                settings.addr
            );
            let cipher = match &settings.secret_key {
                Some(k) => TokenCipher::from_hex(k)?,
                None => TokenCipher::random(),
            };
            (None, cipher)
        }
    };
    Ok(AuthState {
        dev_sign_in: github.is_none() && loopback,
        github,
        cipher,
        access: config.access.clone(),
        session: config.session.clone(),
    })
}

/// Sessions live in the same database as everything else, in the store crate's table.
async fn with_sessions(
    router: Router,
    database_url: &str,
    secure: bool,
    s: &SessionSettings,
) -> anyhow::Result<Router> {
    use tower_sessions::cookie::{time::Duration, SameSite};
    use tower_sessions::{ExpiredDeletion, Expiry, SessionManagerLayer};
    let idle = Duration::minutes(s.idle_minutes);
    // Lax, not Strict: the GitHub callback is a top-level navigation from github.com and
    // must carry the session that holds the PKCE verifier and state.
    macro_rules! layer {
        ($store:expr) => {{
            let store = $store;
            store
                .migrate()
                .await
                .context("creating the sessions table")?;
            tokio::spawn(
                store
                    .clone()
                    .continuously_delete_expired(std::time::Duration::from_secs(3600)),
            );
            let layer = SessionManagerLayer::new(store)
                .with_name("release_session")
                .with_http_only(true)
                .with_same_site(SameSite::Lax)
                .with_secure(secure)
                .with_expiry(Expiry::OnInactivity(idle));
            Ok(router.layer(layer))
        }};
    }
    if database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(database_url).await?;
        layer!(tower_sessions_sqlx_store::PostgresStore::new(pool))
    } else {
        let url = if database_url.contains("mode=") {
            database_url.to_owned()
        } else {
            format!("{database_url}?mode=rwc")
        };
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
        let pool =
            sqlx::SqlitePool::connect_with(opts.busy_timeout(std::time::Duration::from_secs(5)))
                .await?;
        layer!(tower_sessions_sqlx_store::SqliteStore::new(pool))
    }
}

pub fn router(state: ServerState) -> Router {
    let routes = generate_route_list(app::App);
    let app_state = state.app.clone();
    let options = state.leptos_options.clone();
    Router::new()
        .merge(http::api_routes())
        .merge(http::login_routes())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(app_state.clone()),
            move || app::shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<ServerState, _>(
            app::shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::guard::authenticate,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

/// Layers outside the session layer: they see every response, sessions or not.
pub fn outer_layers(router: Router) -> Router {
    router
        .layer(axum::middleware::from_fn(http::guard::refuse_cross_site))
        .layer(axum::middleware::from_fn(http::guard::security_headers))
}
