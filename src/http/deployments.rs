//! `POST /deployments`: the Release app's notification, kept byte-compatible.

use super::api_token::ApiToken;
use super::error::ApiError;
use super::json::JsonBody;
use super::state::ServerState;
use app::domain::{DeploymentStatus, GitRef, InvalidInput, RepoName, Sha, Trigger};
use app::store::NewDeployment;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct NotifyBody {
    repo: String,
    deployment: NotifyDeployment,
}

#[derive(Debug, Deserialize)]
pub struct NotifyDeployment {
    environment: String,
    version: String,
    sha: Option<String>,
    deployed_by: Option<String>,
    trigger: Option<String>,
    created_at: Option<String>,
}

/// Parse, don't validate: turns the body into a `NewDeployment` or names the bad field.
fn parse(body: NotifyBody, state: &ServerState) -> Result<NewDeployment, InvalidInput> {
    let at = |mut e: InvalidInput, field: &str| {
        e.field = field.to_owned();
        e
    };
    let d = body.deployment;
    Ok(NewDeployment {
        repo: RepoName::parse(&body.repo)?,
        environment: state
            .app
            .store
            .environments()
            .parse(&d.environment)
            .map_err(|e| at(e, "deployment.environment"))?,
        version: GitRef::parse(&d.version).map_err(|e| at(e, "deployment.version"))?,
        sha: d
            .sha
            .as_deref()
            .map(Sha::parse)
            .transpose()
            .map_err(|e| at(e, "deployment.sha"))?,
        deployed_by: d.deployed_by.map(|s| parse_person(&s)).transpose()?,
        trigger: d
            .trigger
            .as_deref()
            .map(Trigger::parse)
            .transpose()
            .map_err(|e| at(e, "deployment.trigger"))?
            .unwrap_or(Trigger::Continuous),
        created_at_ms: d
            .created_at
            .as_deref()
            .map(|s| parse_time(s, "deployment.created_at"))
            .transpose()?,
        base_status: DeploymentStatus::Succeeded,
    })
}

pub fn parse_person(s: &str) -> Result<String, InvalidInput> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 100 || s.chars().any(|c| c.is_control()) {
        return Err(InvalidInput::new(
            "deployment.deployed_by",
            "must be 1 to 100 printable characters",
        ));
    }
    Ok(s.to_owned())
}

/// An RFC 3339 time (`2026-11-27T10:00:00Z`) as milliseconds since the epoch.
pub fn parse_time(s: &str, field: &str) -> Result<i64, InvalidInput> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            InvalidInput::new(
                field,
                format!("{s:?} is not an RFC 3339 time such as 2026-11-27T10:00:00Z ({e})"),
            )
        })
}

/// Answers 200 with an empty body, as the Release app does; 409 when the repo matches
/// more than one application.
pub async fn create(
    State(state): State<ServerState>,
    ApiToken(token): ApiToken,
    JsonBody(body): JsonBody<NotifyBody>,
) -> Result<StatusCode, ApiError> {
    let new = parse(body, &state)?;
    let outcome = state.app.store.record_deployment(&new).await?;
    tracing::info!(
        token = %token, app = %outcome.application, environment = %new.environment, version = %new.version,
        created = outcome.created, "deployment recorded"
    );
    Ok(StatusCode::OK)
}
