//! The JSON the pipeline API answers, as types: the handlers build them, and the OpenAPI
//! document (`openapi`) describes them from here.

use serde::{Deserialize, Serialize};
use utoipa::{IntoResponses, ToSchema};

/// Every error: a message, and the input at fault when there is one.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorJson {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The errors of the pipeline's writes (`POST /deployments`, `POST /api/v1/events`),
/// besides each one's own.
#[derive(IntoResponses)]
pub enum PipelineWriteErrors {
    #[response(status = 401, description = "No token, or an unknown one")]
    Unauthorized(ErrorJson),
    #[response(status = 409, description = "The repo belongs to several applications")]
    Ambiguous(ErrorJson),
    #[response(status = 422, description = "A field that does not parse")]
    Invalid(ErrorJson),
    #[response(status = 503, description = "The database is busy; retry")]
    Busy(ErrorJson),
}

/// The errors of reading one application.
#[derive(IntoResponses)]
pub enum ApplicationErrors {
    #[response(status = 401, description = "No token, or an unknown one")]
    Unauthorized(ErrorJson),
    #[response(status = 404, description = "No such application")]
    NotFound(ErrorJson),
    #[response(status = 422, description = "Not a shortname")]
    Invalid(ErrorJson),
}

/// The errors of the delivery metrics, JSON or CSV.
#[derive(IntoResponses)]
pub enum StatsErrors {
    #[response(status = 401, description = "No token, or an unknown one")]
    Unauthorized(ErrorJson),
    #[response(status = 404, description = "No such application")]
    NotFound(ErrorJson),
    #[response(status = 422, description = "A parameter that does not parse")]
    Invalid(ErrorJson),
    #[response(
        status = 429,
        description = "Too many applications' stats being counted at once; retry after Retry-After"
    )]
    TooMany(ErrorJson),
    #[response(status = 503, description = "The database is busy; retry")]
    Busy(ErrorJson),
}

/// The answer to an event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventOutcomeJson {
    pub application: String,
    pub deployment_id: i64,
    pub event_id: i64,
    #[schema(pattern = "^(requested|in_progress|succeeded|failed)$")]
    pub deployment_status: String,
    /// The event came before any notification of its deployment.
    pub created_deployment: bool,
}

/// The deployment running in an environment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CurrentJson {
    pub version: String,
    pub sha: Option<String>,
    #[schema(pattern = "^(requested|in_progress|succeeded|failed)$")]
    pub status: String,
    pub failed_stage: Option<String>,
    pub trigger: String,
    pub deployed_by: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// What Argo CD says runs (only where an Argo CD is observed).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LiveJson {
    pub version: Option<String>,
    pub health: String,
    pub sync_status: Option<String>,
    pub operation_phase: Option<String>,
    pub argocd_app: String,
    pub observed_at: Option<String>,
    pub version_since: Option<String>,
    pub unknown_since: Option<String>,
    pub unknown_reason: Option<String>,
    /// Why there is no version when the images say ("rolling out: v300, v301", "tag
    /// latest is not a version", "runs an image by digest only").
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentJson {
    pub continuously_deployed: bool,
    pub current: Option<CurrentJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveJson>,
}

/// Why an application needs attention.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FlagJson {
    pub kind: String,
    pub environment: String,
    /// The flag in a sentence.
    pub explanation: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApplicationJson {
    pub name: String,
    pub shortname: String,
    pub repo: String,
    pub team: String,
    /// The Release app's one-line status.
    pub status: String,
    pub needs_attention: bool,
    pub flags: Vec<FlagJson>,
    /// By environment name.
    pub environments: std::collections::BTreeMap<String, EnvironmentJson>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApplicationsJson {
    /// In pipeline order.
    pub environments: Vec<String>,
    pub applications: Vec<ApplicationJson>,
}

/// The Release app's `/applications/{shortname}.json`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReleaseAppJson {
    pub name: String,
    pub shortname: String,
    pub deploy_freeze: bool,
    pub notes: Option<String>,
    pub repository_url: String,
    pub repository_default_branch: String,
    pub continuously_deployed: bool,
}

/// May the pipeline promote to that environment now?
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GateJson {
    pub allowed: bool,
    /// Why not, when not.
    pub reason: Option<String>,
    /// A soak time not yet served: when it will have been (seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthJson {
    #[schema(pattern = "^(ok|unavailable)$")]
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}
