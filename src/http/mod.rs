//! The pipeline's HTTP API: where requests from the deployment pipeline enter. One module
//! per resource; every handler parses its input into domain types first and answers a
//! precise status with a JSON body (see `error`).

pub mod api_token;
pub mod applications;
pub mod deployments;
pub mod error;
pub mod events;
pub mod github_webhook;
pub mod grid;
pub mod guard;
pub mod health;
pub mod json;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod schema;
pub mod sse;
pub mod state;
pub mod stats;
pub mod streams;
pub mod token_cache;

use axum::routing::{get, post};
use axum::Router;
use state::ServerState;

pub fn api_routes() -> Router<ServerState> {
    Router::new()
        .route("/deployments", post(deployments::create))
        .route("/api/v1/events", post(events::create))
        .route(
            github_webhook::PATH,
            post(github_webhook::receive).layer(axum::extract::DefaultBodyLimit::max(
                github_webhook::BODY_LIMIT,
            )),
        )
        .route("/api/v1/applications", get(applications::list))
        .route("/api/v1/applications/{shortname}", get(applications::show))
        .route(
            "/api/v1/applications/{shortname}/release-app",
            get(applications::release_app_shape),
        )
        .route(
            "/api/v1/applications/{shortname}/promotion",
            get(applications::promotion),
        )
        .route("/api/v1/stats", get(stats::json))
        .route("/api/v1/stats.csv", get(stats::csv))
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::scrape_with_token))
        .route("/healthcheck/live", get(health::live))
        .route("/healthcheck/ready", get(health::ready))
}

/// Signing in and out (browser sessions).
pub fn login_routes() -> Router<ServerState> {
    Router::new()
        .route("/auth/sign-in", get(login::sign_in_page))
        .route("/auth/github", get(login::start_github))
        .route("/auth/callback", get(login::callback))
        .route("/auth/dev", post(login::dev_sign_in))
        .route("/auth/sign-out", post(login::sign_out))
        .route("/api/live", get(sse::stream))
        .route("/api/grid.html", get(grid::fragment))
        .route("/stats.csv", get(stats::csv_for_person))
}
