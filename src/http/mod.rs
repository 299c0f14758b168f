//! The pipeline's HTTP API: where requests from the deployment pipeline enter. One module
//! per resource; every handler parses its input into domain types first and answers a
//! precise status with a JSON body (see `error`).

pub mod api_token;
pub mod applications;
pub mod deployments;
pub mod error;
pub mod events;
pub mod fields;
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

/// Every route outside Leptos's pages and server functions; each resource's module lists
/// its own (`applications::routes`, ...), so a handler and its path are read together.
pub fn routes() -> Router<ServerState> {
    Router::new()
        .route("/deployments", post(deployments::create))
        .route("/api/v1/events", post(events::create))
        .route(
            github_webhook::PATH,
            post(github_webhook::receive).layer(axum::extract::DefaultBodyLimit::max(
                github_webhook::BODY_LIMIT,
            )),
        )
        .merge(applications::routes())
        .merge(stats::routes())
        .merge(health::routes())
        .merge(login::routes())
        .route("/api/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::scrape_with_token))
        // The browser's: the grid's live stream and its fragment.
        .route("/api/live", get(sse::stream))
        .route("/api/grid.html", get(grid::fragment))
}
