use super::state::ServerState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The probes: alive (the process answers) and ready (the database answers).
pub fn routes() -> axum::Router<ServerState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/healthcheck/live", get(live))
        .route("/healthcheck/ready", get(ready))
}

/// The process is up.
#[utoipa::path(get, path = "/healthcheck/live", responses((status = 200, description = "Up", body = super::schema::HealthJson)), tag = "health")]
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: the database answers.
#[utoipa::path(get, path = "/healthcheck/ready", responses(
    (status = 200, description = "Ready", body = super::schema::HealthJson),
    (status = 503, description = "The database does not answer", body = super::schema::HealthJson),
), tag = "health")]
pub async fn ready(State(state): State<ServerState>) -> Response {
    match state.app.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok", "database": "ok" })).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
                .into_response()
        }
    }
}
