//! Reading applications: `GET /api/v1/applications`, `GET /api/v1/applications/{shortname}`
//! and the Release app's `GET /applications/{shortname}.json`.

use super::api_token::ApiToken;
use super::error::{said_of, ApiError};
use super::state::ServerState;
use app::domain::Shortname;
use app::model::{AppSummary, Grid};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// The applications' routes (`/api/v1/applications/...`).
pub fn routes() -> axum::Router<ServerState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/applications", get(list))
        .route("/api/v1/applications/{shortname}", get(show))
        .route(
            "/api/v1/applications/{shortname}/release-app",
            get(release_app_shape),
        )
        .route("/api/v1/applications/{shortname}/promotion", get(promotion))
}

/// The application a path names: its `{shortname}`, parsed (422 when it is not one). The
/// parameter is documented here, once for every path that has it.
#[derive(utoipa::IntoParams)]
#[into_params(names("shortname"), parameter_in = Path)]
pub struct ShortnamePath(
    /// The application's shortname
    #[param(value_type = String, pattern = r"^[a-z0-9_-]{1,100}$")]
    pub Shortname,
);

impl<S: Send + Sync> FromRequestParts<S> for ShortnamePath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Path(shortname) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Shortname::parse(&shortname)
            .map(Self)
            .map_err(|e| ApiError::from(e).into_response())
    }
}

fn summary_json(envs: &[String], a: &AppSummary) -> Value {
    let mut environments = Map::new();
    for (i, env) in envs.iter().enumerate() {
        let cell = a.cells.get(i).cloned().flatten();
        environments.insert(
            env.clone(),
            json!({
                "continuously_deployed": a.continuous.get(i).copied().unwrap_or(true),
                "current": cell.map(|c| json!({
                    "version": c.version,
                    "sha": c.sha,
                    "status": c.status.as_str(),
                    "failed_stage": c.failed_stage.map(|s| s.as_str()),
                    "trigger": c.trigger,
                    "deployed_by": c.deployed_by,
                    "created_at": app::model::exact_time(c.created_at_ms).replace(" UTC", "Z").replacen(' ', "T", 1),
                })),
            }),
        );
    }
    json!({
        "name": a.name,
        "shortname": a.shortname,
        "repo": a.repo,
        "team": a.team,
        "status": a.release_status,
        "needs_attention": !a.flags.is_empty(),
        "flags": a.flags.iter().map(|f| {
            let mut v = serde_json::to_value(f).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v { m.insert("explanation".into(), Value::String(f.explain())); }
            v
        }).collect::<Vec<_>>(),
        "environments": environments,
    })
}

/// Every application and what runs where.
#[utoipa::path(get, path = "/api/v1/applications", security(("bearer" = [])),
    responses(
        (status = 200, description = "The applications", body = super::schema::ApplicationsJson),
        (status = 401, description = "No token, or an unknown one", body = super::schema::ErrorJson),
    ), tag = "applications")]
pub async fn list(
    State(state): State<ServerState>,
    _token: ApiToken,
) -> Result<Json<Value>, ApiError> {
    let Grid {
        environments, apps, ..
    } = state.app.store.grid().await?;
    let list: Vec<Value> = apps
        .iter()
        .map(|a| summary_json(&environments, a))
        .collect();
    Ok(Json(
        json!({ "environments": environments, "applications": list }),
    ))
}

/// One application, with what Argo CD says runs where it is observed.
#[utoipa::path(get, path = "/api/v1/applications/{shortname}", security(("bearer" = [])),
    params(ShortnamePath),
    responses(
        (status = 200, description = "The application", body = super::schema::ApplicationJson),
        super::schema::ApplicationErrors,
    ), tag = "applications")]
pub async fn show(
    State(state): State<ServerState>,
    _token: ApiToken,
    ShortnamePath(shortname): ShortnamePath,
) -> Result<Json<Value>, ApiError> {
    let detail = state
        .app
        .store
        .existing_app_detail(shortname.as_str())
        .await?;
    let envs: Vec<String> = state.app.store.environments().owned_names();
    let mut body = summary_json(&envs, &detail.summary);
    // What really runs, per environment, when an Argo CD is observed.
    let live = state.app.store.live_states(shortname.as_str()).await?;
    if let Some(environments) = body.get_mut("environments").and_then(Value::as_object_mut) {
        for l in live {
            if let Some(e) = environments
                .get_mut(&l.environment)
                .and_then(Value::as_object_mut)
            {
                e.insert(
                    "live".into(),
                    json!({
                        "version": l.observed.version,
                        "health": l.observed.health,
                        "sync_status": l.observed.sync_status,
                        "operation_phase": l.observed.operation_phase,
                        "argocd_app": l.observed.argocd_app,
                        "observed_at": time(l.observed_at_ms),
                        "version_since": time(l.version_since_ms),
                        "unknown_since": l.unknown_since_ms.map(time),
                        "unknown_reason": l.unknown_reason,
                        "note": l.observed.note,
                    }),
                );
            }
        }
    }
    Ok(Json(body))
}

fn time(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// The Release app's shape, for tools written against it (also at
/// `/applications/{shortname}.json`).
#[utoipa::path(get, path = "/api/v1/applications/{shortname}/release-app", security(("bearer" = [])),
    params(ShortnamePath),
    responses(
        (status = 200, description = "The application as the Release app describes it", body = super::schema::ReleaseAppJson),
        super::schema::ApplicationErrors,
    ), tag = "applications")]
pub async fn release_app_shape(
    State(state): State<ServerState>,
    _token: ApiToken,
    ShortnamePath(shortname): ShortnamePath,
) -> Result<Json<Value>, ApiError> {
    let app = state
        .app
        .store
        .existing_application(shortname.as_str())
        .await?;
    Ok(Json(json!({
        "name": app.name,
        "shortname": app.shortname,
        // A rollback's freeze stops promotion, not deploys.
        "deploy_freeze": state
            .app
            .store
            .active_freezes(Some(app.id))
            .await?
            .iter()
            .any(|f| f.from_environment.is_none()),
        // The Release app answers null, not "", for an application without notes.
        "notes": (!app.notes.is_empty()).then_some(&app.notes),
        "repository_url": format!("https://github.com/{}", app.repo),
        "repository_default_branch": app.default_branch,
        "continuously_deployed": app.manual_environments.is_empty(),
    })))
}

#[derive(serde::Deserialize)]
pub struct PromotionQuery {
    to: Option<String>,
    version: Option<String>,
}

/// May the pipeline promote this app to `to`? No while the app or the site is frozen, nor
/// to an environment where the app's continuous deployment is off, nor while the version
/// that would be promoted has not run long enough in the environment before (soak time;
/// then `retry_after_seconds` says when it will have).
#[utoipa::path(get, path = "/api/v1/applications/{shortname}/promotion", security(("bearer" = [])),
    params(
        ShortnamePath,
        ("to" = String, Query, description = "The environment to promote to"),
        ("version" = Option<String>, Query, description = "The version the pipeline is about to promote (default: what runs in the environment before `to`)",
            pattern = r"^[A-Za-z0-9_][A-Za-z0-9_+=,-]{0,60}([./][A-Za-z0-9_][A-Za-z0-9_+=,-]{0,60}){0,3}$"),
    ),
    responses(
        (status = 200, description = "Allowed or not, and why", body = super::schema::GateJson),
        (status = 401, description = "No token, or an unknown one", body = super::schema::ErrorJson),
        (status = 404, description = "No such application", body = super::schema::ErrorJson),
        (status = 422, description = "No `to`, not an environment, a `version` that is not a git ref, or a query string that does not decode", body = super::schema::ErrorJson),
    ), tag = "applications")]
pub async fn promotion(
    State(state): State<ServerState>,
    _token: ApiToken,
    ShortnamePath(shortname): ShortnamePath,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Json<Value>, ApiError> {
    let q: PromotionQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::Invalid(app::domain::InvalidInput::new("query", e.to_string())))?;
    let asked = q
        .version
        .as_deref()
        .map(app::domain::GitRef::parse)
        .transpose()?;
    let to = q.to.ok_or_else(|| {
        ApiError::Invalid(app::domain::InvalidInput::new(
            "to",
            "say which environment: ?to=staging",
        ))
    })?;
    let env = state
        .app
        .store
        .environments()
        .parse(&to)
        .map_err(said_of("to"))?;
    let store = &state.app.store;
    let app = store.existing_application(shortname.as_str()).await?;
    let freezes = store.active_freezes(Some(app.id)).await?;
    let envs = store.environments();
    let from = envs
        .index_of(&env)
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| envs.as_slice().get(i))
        .map(|e| e.as_str().to_owned());
    let gate = app::domain::deploy_rules::promotion_gate(
        &app.shortname,
        &env,
        from.as_deref(),
        &app.manual_environments,
        &freezes,
    );
    if !gate.allowed {
        return Ok(Json(json!(gate)));
    }
    // The soak gate, for the version the pipeline names, else what runs before `to` now;
    // with a soak time and nothing to measure, no.
    let running = match envs.previous(&env) {
        Some(before) => {
            let grid = store.grid_for(std::slice::from_ref(&app.shortname)).await?;
            let i = envs.index_of(before).unwrap_or(0);
            grid.apps
                .first()
                .and_then(|a| a.cells.get(i).cloned().flatten())
                .map(|c| c.version)
        }
        None => None,
    };
    let minutes = state.app.gates.soak_minutes(&app.shortname, env.as_str());
    let version = asked.map(|v| v.to_string()).or(running);
    if minutes > 0 && version.is_none() {
        return Ok(Json(json!({
            "allowed": false,
            "reason": format!("soaking: nothing runs in {} to soak before {env}", from.as_deref().unwrap_or("the environment before")),
        })));
    }
    if let Some(version) = version {
        if let Some(soak) = app::actions::gates::soak_hold(&state.app, &app, &env, &version).await?
        {
            return Ok(Json(json!({
                "allowed": false,
                "reason": soak.hold,
                "retry_after_seconds": soak.retry_after_seconds,
            })));
        }
    }
    Ok(Json(json!(gate)))
}

/// `/applications/{shortname}.json` shares its prefix with the application page, which
/// the Leptos router owns; rewriting it before routing keeps both.
pub fn rewrite_release_app_json(mut req: Request) -> Request {
    let path = req.uri().path();
    if let Some(name) = path
        .strip_prefix("/applications/")
        .and_then(|p| p.strip_suffix(".json"))
    {
        if !name.is_empty() && !name.contains('/') {
            let new = format!("/api/v1/applications/{name}/release-app");
            if let Ok(uri) = new.parse() {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}
