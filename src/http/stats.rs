//! Delivery metrics: `GET /api/v1/stats` (JSON) and `GET /api/v1/stats.csv` for the
//! pipeline's tokens, `GET /stats.csv` for signed-in people (the page's download link).

use super::api_token::ApiToken;
use super::error::ApiError;
use super::state::ServerState;
use app::auth::CurrentUser;
use app::domain::stats::{StatsQuery, StatsReport, StatsScope};
use axum::extract::{Extension, RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// The metrics' routes: JSON and CSV for the pipeline's token, CSV for a signed-in person.
pub fn routes() -> axum::Router<ServerState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/stats", get(json))
        .route("/api/v1/stats.csv", get(csv))
        .route("/stats.csv", get(csv_for_person))
}

/// The query string: every field optional; unknown fields are ignored.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// First day counted, `YYYY-MM-DD` (UTC); default: 89 days before `to`.
    from: Option<String>,
    /// Last day counted, `YYYY-MM-DD` (UTC); default: today.
    to: Option<String>,
    /// One application's shortname; default: all.
    application: Option<String>,
    /// One environment; default: all.
    environment: Option<String>,
}

/// Median and 90th percentile, in seconds (to within 2.2%), of `count` durations.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SpreadJson {
    pub count: u64,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FrequencyJson {
    pub deployments: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub per_day: f64,
    pub per_week: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LeadTimeJson {
    #[serde(flatten)]
    pub spread: SpreadJson,
    /// How many were measured from the commit's time (GitHub); the others from the
    /// version's first deployment in the first environment.
    pub from_commit: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FailureRateJson {
    pub production_deployments: u64,
    /// Production deployments that failed, or that a rollback replaced.
    pub failed_changes: u64,
    /// Production deployments of a version that ran there before.
    pub rollbacks: u64,
    /// `failed_changes / production_deployments`; null without production deployments.
    pub rate: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WeekJson {
    /// The Monday, `YYYY-MM-DD`.
    pub week_starting: String,
    pub deployments: BTreeMap<String, u64>,
    pub production_deployments: u64,
    pub failed_changes: u64,
    pub lead_time: SpreadJson,
    pub time_to_restore: SpreadJson,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DayJson {
    pub date: String,
    pub deployments: BTreeMap<String, u64>,
}

/// The DORA four over a range of days.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsJson {
    #[serde(flatten)]
    pub scope: StatsScope,
    pub deployment_frequency: BTreeMap<String, FrequencyJson>,
    pub lead_time: LeadTimeJson,
    pub change_failure_rate: FailureRateJson,
    pub time_to_restore: SpreadJson,
    pub weekly: Vec<WeekJson>,
    pub daily: Vec<DayJson>,
    /// The figures may be a few seconds behind: the stats task is counting what arrived
    /// last (or, the first time, the whole history).
    pub counting: bool,
}

fn spread(s: &app::domain::stats::Spread) -> SpreadJson {
    SpreadJson {
        count: s.count,
        median_seconds: s.median_seconds,
        p90_seconds: s.p90_seconds,
    }
}

impl From<StatsReport> for StatsJson {
    fn from(r: StatsReport) -> Self {
        let by_env = |counts: &[u64]| -> BTreeMap<String, u64> {
            r.scope
                .environments
                .iter()
                .cloned()
                .zip(counts.iter().copied())
                .collect()
        };
        let deployment_frequency = r
            .scope
            .environments
            .iter()
            .enumerate()
            .map(|(i, e)| {
                (
                    e.clone(),
                    FrequencyJson {
                        deployments: r.deployments[i],
                        succeeded: r.succeeded[i],
                        failed: r.failed[i],
                        per_day: r.per_day(i),
                        per_week: r.per_day(i) * 7.0,
                    },
                )
            })
            .collect();
        Self {
            deployment_frequency,
            lead_time: LeadTimeJson {
                spread: spread(&r.lead_time),
                from_commit: r.lead_time_from_commit,
            },
            change_failure_rate: FailureRateJson {
                production_deployments: r.production_deployments,
                failed_changes: r.failed_changes,
                rollbacks: r.rollbacks,
                rate: r.change_failure_rate,
            },
            time_to_restore: spread(&r.time_to_restore),
            weekly: r
                .weeks
                .iter()
                .map(|w| WeekJson {
                    week_starting: w.starts.clone(),
                    deployments: by_env(&w.deployments),
                    production_deployments: w.production_deployments,
                    failed_changes: w.failed_changes,
                    lead_time: spread(&w.lead_time),
                    time_to_restore: spread(&w.time_to_restore),
                })
                .collect(),
            daily: r
                .daily
                .iter()
                .map(|(date, counts)| DayJson {
                    date: date.clone(),
                    deployments: by_env(counts),
                })
                .collect(),
            counting: r.counting,
            scope: r.scope,
        }
    }
}

/// Parses the query string and builds the report.
pub async fn report(state: &ServerState, raw: Option<&str>) -> Result<StatsReport, ApiError> {
    let p: StatsParams = serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::Shape(format!("query string: {e}")))?;
    let today = app::store::now_ms().div_euclid(app::domain::stats::DAY_MS);
    let q = StatsQuery::parse(
        p.from.as_deref(),
        p.to.as_deref(),
        p.application.as_deref(),
        p.environment.as_deref(),
        state.app.store.environments(),
        today,
    )?;
    Ok(state.app.store.stats_report(&q).await?)
}

/// The delivery metrics (DORA) over a range of days, overall or for one application.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    params(StatsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The metrics", body = StatsJson),
        super::schema::StatsErrors,
    ),
    tag = "stats"
)]
pub async fn json(
    State(state): State<ServerState>,
    _token: ApiToken,
    RawQuery(raw): RawQuery,
) -> Result<Json<StatsJson>, ApiError> {
    Ok(Json(report(&state, raw.as_deref()).await?.into()))
}

/// The same as CSV: one line per day and environment.
#[utoipa::path(
    get,
    path = "/api/v1/stats.csv",
    params(StatsParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`date,environment,deployments` lines", content_type = "text/csv", body = String),
        super::schema::StatsErrors,
    ),
    tag = "stats"
)]
pub async fn csv(
    State(state): State<ServerState>,
    _token: ApiToken,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    Ok(csv_response(report(&state, raw.as_deref()).await?))
}

/// The page's download link, for a signed-in person (the guard sends others to sign in).
pub async fn csv_for_person(
    State(state): State<ServerState>,
    Extension(user): Extension<Option<CurrentUser>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    if user.is_none() {
        return Err(ApiError::Unauthorized("sign in to download the stats"));
    }
    Ok(csv_response(report(&state, raw.as_deref()).await?))
}

fn csv_response(r: StatsReport) -> Response {
    let name = format!(
        "attachment; filename=\"release-stats-{}-{}{}.csv\"",
        r.scope.from,
        r.scope.to,
        r.scope
            .application
            .as_deref()
            .map(|a| format!("-{a}"))
            .unwrap_or_default()
    );
    let mut resp = r.csv().into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
