//! Building the server: the database, the routes, the listener. Tests call `Server::build`
//! with port 0 and a fresh database to run the real app on a random port.

use crate::configuration::Config;
use crate::http;
use anyhow::Context;
use app::state::AppState;
use app::store::Store;
use axum::extract::FromRef;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The largest request body any endpoint takes. Notifications are a few hundred bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Everything a request handler can reach.
#[derive(Clone)]
pub struct ServerState {
    pub leptos_options: LeptosOptions,
    pub app: AppState,
}

impl FromRef<ServerState> for LeptosOptions {
    fn from_ref(s: &ServerState) -> Self {
        s.leptos_options.clone()
    }
}

pub struct Settings {
    pub addr: SocketAddr,
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
}

impl Server {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database_url, settings.config.environments.clone())
            .await
            .with_context(|| format!("opening the database {}", app::store::redact_url(&settings.database_url)))?;
        store.migrate().await.context("running migrations")?;
        store.sync_applications(&settings.config.applications).await?;
        let demo_loaded = if settings.demo { crate::demo::load_if_empty(&store).await? } else { false };

        let listener = TcpListener::bind(settings.addr).await.with_context(|| format!("listening on {}", settings.addr))?;
        let addr = listener.local_addr()?;
        let leptos_options = LeptosOptions::builder()
            .output_name("release")
            .site_root(settings.site_root.as_str())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let state = ServerState { leptos_options, app: AppState { store: store.clone() } };
        Ok(Self { listener, router: router(state), store, demo_loaded })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight.
    pub async fn run_until(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let service = tower::ServiceBuilder::new()
            .map_request(http::applications::rewrite_release_app_json)
            .service(self.router);
        axum::serve(self.listener, tower::make::Shared::new(service)).with_graceful_shutdown(shutdown).await?;
        self.store.close().await;
        Ok(())
    }
}

pub fn router(state: ServerState) -> Router {
    let routes = generate_route_list(app::App);
    let app_state = state.app.clone();
    let options = state.leptos_options.clone();
    Router::new()
        .merge(http::api_routes())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(app_state.clone()),
            move || app::shell(options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<ServerState, _>(app::shell))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}
