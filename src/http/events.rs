//! `POST /api/v1/events`: a pipeline stage started, succeeded or failed.

use super::api_token::ApiToken;
use super::deployments::parse_time;
use super::error::{said_of, ApiError};
use super::json::JsonBody;
use super::state::ServerState;
use app::domain::{EventStatus, GitRef, InvalidInput, K8sName, RepoName, Stage};
use app::model::Workflow;
use app::store::{EventOutcome, NewEvent};
use axum::extract::State;
use axum::Json;
use serde::Deserialize;

/// A pipeline stage started, succeeded or failed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EventBody {
    #[schema(schema_with = super::fields::repo)]
    repo: String,
    #[schema(schema_with = super::fields::environment)]
    environment: String,
    #[schema(schema_with = super::fields::version)]
    version: String,
    #[schema(
        pattern = r"^(build|deploy_image|image_tag_update|sync|rollout|smoke_tests|promotion)$"
    )]
    stage: String,
    #[schema(pattern = r"^(started|succeeded|failed)$")]
    status: String,
    #[schema(max_length = 2000)]
    message: Option<String>,
    workflow: Option<WorkflowBody>,
    /// Makes the event idempotent: the same id again answers the first answer.
    #[schema(
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,200}$",
        min_length = 1,
        max_length = 200
    )]
    delivery_id: Option<String>,
    /// RFC 3339; default now.
    #[schema(format = DateTime)]
    at: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WorkflowBody {
    /// A configured environment (informational: Resubmit uses the deployment's own).
    #[schema(pattern = r"^[a-z0-9_-]{1,100}$", example = "staging")]
    environment: Option<String>,
    /// A Kubernetes namespace (DNS-1123 label).
    #[schema(pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", max_length = 63)]
    namespace: Option<String>,
    /// A Kubernetes object name (DNS-1123 subdomain).
    #[schema(
        pattern = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?){0,2}$",
        max_length = 253
    )]
    name: Option<String>,
    #[schema(
        pattern = r"^https?://[^\s\u0000-\u001F\u007F-\u009F]{1,1990}$",
        max_length = 2000
    )]
    url: Option<String>,
}

pub const MAX_MESSAGE_CHARS: usize = 2000;

fn parse(body: EventBody, state: &ServerState) -> Result<NewEvent, InvalidInput> {
    let message = match body.message {
        Some(m) if m.chars().count() > MAX_MESSAGE_CHARS => {
            return Err(InvalidInput::new(
                "message",
                format!("longer than {MAX_MESSAGE_CHARS} characters"),
            ))
        }
        m => m,
    };
    let workflow = body
        .workflow
        .map(|w| parse_workflow(w, state))
        .transpose()?;
    let delivery_id = match body.delivery_id {
        Some(d) if d.is_empty() || d.chars().count() > 200 || d.chars().any(|c| c.is_control()) => {
            return Err(InvalidInput::new(
                "delivery_id",
                "must be 1 to 200 printable characters",
            ))
        }
        d => d,
    };
    Ok(NewEvent {
        repo: RepoName::parse_reference(&body.repo, state.default_owner.as_deref())?,
        environment: state.app.store.environments().parse(&body.environment)?,
        version: GitRef::parse(&body.version)?,
        stage: Stage::parse(&body.stage)?,
        status: EventStatus::parse(&body.status)?,
        message,
        workflow,
        delivery_id,
        at_ms: body
            .at
            .as_deref()
            .map(|s| parse_time(s, "at"))
            .transpose()?,
    })
}

/// The workflow the pipeline ran. Namespace and name are Kubernetes names (they end up in
/// Argo URLs on Resubmit); the environment, when given, must be a configured one, and is
/// informational only: Resubmit always uses the deployment's own environment's Argo server.
fn parse_workflow(w: WorkflowBody, state: &ServerState) -> Result<Workflow, InvalidInput> {
    let url = match w.url {
        Some(u)
            if !(u.starts_with("https://") || u.starts_with("http://"))
                || u.len() > 2000
                || u.chars().any(|c| c.is_control() || c.is_whitespace()) =>
        {
            return Err(InvalidInput::new(
                "workflow.url",
                "must be an http(s) URL of at most 2000 characters",
            ))
        }
        u => u,
    };
    let environment = match w.environment {
        Some(e) => Some(
            state
                .app
                .store
                .environments()
                .parse(&e)
                .map_err(said_of("workflow.environment"))?
                .to_string(),
        ),
        None => None,
    };
    Ok(Workflow {
        environment,
        namespace: w
            .namespace
            .map(|n| K8sName::namespace(&n, "workflow.namespace").map(String::from))
            .transpose()?,
        name: w
            .name
            .map(|n| K8sName::object(&n, "workflow.name").map(String::from))
            .transpose()?,
        url,
    })
}

/// Answers 200 with what happened: the deployment the event attached to and its status now.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    request_body = EventBody,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Recorded (or a repeated delivery id: the first answer again)", body = super::schema::EventOutcomeJson),
        (status = 400, description = "Not JSON", body = super::schema::ErrorJson),
        super::schema::PipelineWriteErrors,
    ),
    tag = "pipeline"
)]
pub async fn create(
    State(state): State<ServerState>,
    ApiToken(_token): ApiToken,
    JsonBody(body): JsonBody<EventBody>,
) -> Result<Json<EventOutcome>, ApiError> {
    let event = parse(body, &state)?;
    let outcome = state.app.store.record_event(&event).await?;
    metrics::counter!("release_events_total", "stage" => event.stage.as_str(), "status" => event.status.as_str())
        .increment(1);
    tracing::info!(
        app = %outcome.application, environment = %event.environment, version = %event.version,
        stage = event.stage.as_str(), status = event.status.as_str(), "event recorded"
    );
    Ok(Json(outcome))
}
