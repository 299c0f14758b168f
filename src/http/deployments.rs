//! `POST /deployments`: the Release app's notification, kept byte-compatible: a JSON body,
//! or the form body its older clients send (`repo=...&deployment[environment]=...`).

use super::api_token::ApiToken;
use super::error::{said_of, ApiError};
use super::json::JsonBody;
use super::state::ServerState;
use app::domain::{DeploymentStatus, GitRef, InvalidInput, RepoName, Sha, Trigger};
use app::store::NewDeployment;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

/// The Release app's notification.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NotifyBody {
    #[schema(schema_with = super::fields::repo)]
    repo: String,
    deployment: NotifyDeployment,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NotifyDeployment {
    #[schema(schema_with = super::fields::environment)]
    environment: String,
    #[schema(schema_with = super::fields::version)]
    version: String,
    #[schema(schema_with = super::fields::sha)]
    sha: Option<String>,
    #[schema(schema_with = super::fields::deployed_by)]
    deployed_by: Option<String>,
    #[schema(pattern = r"^(continuous|manual|promotion)$")]
    trigger: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    created_at: Option<String>,
}

/// The Release app's form body (`application/x-www-form-urlencoded`), as the OpenAPI
/// document describes it: the same fields as the JSON body, named as its clients send
/// them. Only a description: `from_form` reads the form.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct NotifyForm {
    #[schema(schema_with = super::fields::repo)]
    repo: String,
    #[schema(schema_with = super::fields::environment, rename = "deployment[environment]")]
    deployment_environment: String,
    #[schema(schema_with = super::fields::version, rename = "deployment[version]")]
    deployment_version: String,
    #[schema(schema_with = super::fields::sha, rename = "deployment[sha]")]
    deployment_sha: Option<String>,
    #[schema(schema_with = super::fields::deployed_by, rename = "deployment[deployed_by]")]
    deployment_deployed_by: Option<String>,
}

/// Parse, don't validate: turns the body into a `NewDeployment` or names the bad field.
fn parse(body: NotifyBody, state: &ServerState) -> Result<NewDeployment, InvalidInput> {
    let d = body.deployment;
    Ok(NewDeployment {
        repo: RepoName::parse_reference(&body.repo, state.default_owner.as_deref())?,
        environment: state
            .app
            .store
            .environments()
            .parse(&d.environment)
            .map_err(said_of("deployment.environment"))?,
        version: GitRef::parse(&d.version).map_err(said_of("deployment.version"))?,
        sha: d
            .sha
            .as_deref()
            .map(Sha::parse)
            .transpose()
            .map_err(said_of("deployment.sha"))?,
        deployed_by: d.deployed_by.map(|s| parse_person(&s)).transpose()?,
        trigger: d
            .trigger
            .as_deref()
            .map(Trigger::parse)
            .transpose()
            .map_err(said_of("deployment.trigger"))?
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

/// The notification's body, as JSON or as the Release app's form.
pub struct NotifyInput(NotifyBody);

impl<S: Send + Sync> axum::extract::FromRequest<S> for NotifyInput {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let form = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !form {
            let JsonBody(body) = JsonBody::<NotifyBody>::from_request(req, state).await?;
            return Ok(Self(body));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge(super::state::BODY_LIMIT)
                } else {
                    ApiError::MalformedForm(rejection.body_text())
                }
            })?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ApiError::MalformedForm(e.to_string()))?;
        from_form(&pairs).map(Self)
    }
}

/// The Release app's form fields: `repo`, `deployment[environment]`,
/// `deployment[version]`; older clients' `deployment[deployed_sha]` is the SHA and
/// `deployment[jenkins_user_name]` who deployed. Fields with no counterpart here
/// (`application_by_name`, `application_name`, `deployment[jenkins_user_email]`...) are
/// ignored. The first of a repeated field counts.
fn from_form(pairs: &[(String, String)]) -> Result<NotifyBody, ApiError> {
    // An optional field sent empty (`deployment[deployed_sha]=`, as clients that no longer
    // know it send) counts as absent, not as a bad value.
    let get = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| {
                pairs
                    .iter()
                    .find(|(name, v)| name == k && !v.trim().is_empty())
            })
            .map(|(_, v)| v.clone())
    };
    let required = |key: &str, field: &str| {
        get(&[key]).ok_or_else(|| {
            ApiError::Invalid(InvalidInput::new(
                field,
                format!("{key} is missing from the form"),
            ))
        })
    };
    Ok(NotifyBody {
        repo: required("repo", "repo")?,
        deployment: NotifyDeployment {
            environment: required("deployment[environment]", "deployment.environment")?,
            version: required("deployment[version]", "deployment.version")?,
            sha: get(&["deployment[sha]", "deployment[deployed_sha]"]),
            deployed_by: get(&["deployment[deployed_by]", "deployment[jenkins_user_name]"]),
            trigger: get(&["deployment[trigger]"]),
            created_at: get(&["deployment[created_at]"]),
        },
    })
}

/// Answers 200 with an empty body, as the Release app does; 409 when the repo matches
/// more than one application.
#[utoipa::path(
    post,
    path = "/deployments",
    request_body(content(
        (NotifyBody = "application/json"),
        (NotifyForm = "application/x-www-form-urlencoded", example = "repo=org%2Fapp&deployment%5Benvironment%5D=staging&deployment%5Bversion%5D=v12"),
    )),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recorded (an empty body, as the Release app answers)"),
        (status = 400, description = "Not JSON, or a form that does not decode", body = super::schema::ErrorJson),
        (status = 413, description = "Larger than 64 KiB", body = super::schema::ErrorJson),
        (status = 415, description = "Neither JSON nor a form", body = super::schema::ErrorJson),
        super::schema::PipelineWriteErrors,
    ),
    tag = "pipeline"
)]
pub async fn create(
    State(state): State<ServerState>,
    ApiToken(token): ApiToken,
    NotifyInput(body): NotifyInput,
) -> Result<StatusCode, ApiError> {
    let new = parse(body, &state)?;
    let outcome = state.app.store.record_deployment(&new).await?;
    metrics::counter!("release_notifications_total", "environment" => new.environment.as_str().to_owned())
        .increment(1);
    tracing::info!(
        token = %token, app = %outcome.application, environment = %new.environment, version = %new.version,
        created = outcome.created, "deployment recorded"
    );
    Ok(StatusCode::OK)
}
