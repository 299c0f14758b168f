//! Reading what the pages and the API show.

use super::{now_ms, sql, ApplicationRow, Result, Store};
use crate::domain::{app_flags, release_app_status, DeploymentStatus, Stage};
use crate::model::{
    Activity, AppDetail, AppSummary, Cell, DeploymentView, EnvironmentHistory, EventView, Grid,
    Workflow,
};
use std::collections::HashMap;

/// How many deployments per environment the application page shows.
pub const HISTORY_PER_ENVIRONMENT: i64 = 20;
/// How many deployments the activity page shows.
pub const ACTIVITY_LIMIT: i64 = 100;

/// An application and one of its current cells (none: every cell column is NULL), read by
/// column name.
#[derive(sqlx::FromRow)]
struct GridRow {
    id: i64,
    shortname: String,
    name: String,
    repo: String,
    team: String,
    manual_environments: String,
    environment: Option<String>,
    deployment_id: Option<i64>,
    version: Option<String>,
    sha: Option<String>,
    deployed_by: Option<String>,
    trigger_kind: Option<String>,
    status: Option<String>,
    failed_stage: Option<String>,
    created_at: Option<i64>,
    gate_note: Option<String>,
}

/// A pipeline event of a deployment, read by column name.
#[derive(sqlx::FromRow)]
struct EventRow {
    deployment_id: i64,
    stage: String,
    status: String,
    message: Option<String>,
    workflow_environment: Option<String>,
    workflow_namespace: Option<String>,
    workflow_name: Option<String>,
    workflow_url: Option<String>,
    at: i64,
}

/// A row of `DEPLOYMENT_COLUMNS`, read by name (it has more columns than sqlx's tuples).
struct DeploymentRow(DeploymentView);

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for DeploymentRow {
    fn from_row(r: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        use sqlx::Row;
        let status: String = r.try_get("status")?;
        let failed: Option<String> = r.try_get("failed_stage")?;
        Ok(Self(DeploymentView {
            id: r.try_get("id")?,
            application: r.try_get("app_name")?,
            shortname: r.try_get("shortname")?,
            repo: r.try_get("repo")?,
            environment: r.try_get("environment")?,
            version: r.try_get("version")?,
            sha: r.try_get("sha")?,
            trigger: r.try_get("trigger_kind")?,
            deployed_by: r.try_get("deployed_by")?,
            status: DeploymentStatus::parse(&status).unwrap_or(DeploymentStatus::InProgress),
            failed_stage: failed.as_deref().and_then(|s| Stage::parse(s).ok()),
            workflow: workflow(
                r.try_get("workflow_environment")?,
                r.try_get("workflow_namespace")?,
                r.try_get("workflow_name")?,
                r.try_get("workflow_url")?,
            ),
            created_at_ms: r.try_get("created_at")?,
            updated_at_ms: r.try_get("updated_at")?,
            events: vec![],
            run_url: r.try_get("run_url")?,
            stalled: false,
            gate_note: r.try_get("gate_note")?,
        }))
    }
}

const DEPLOYMENT_COLUMNS: &str = "d.id, a.name AS app_name, a.shortname, a.repo, d.environment, d.version, d.sha, d.trigger_kind, d.deployed_by, d.status, d.failed_stage, d.workflow_environment, d.workflow_namespace, d.workflow_name, d.workflow_url, d.created_at, d.updated_at, d.run_url, d.gate_note";

impl Store {
    /// Every application with its current deployment in each environment and its flags.
    /// One query over `current_deployments`: O(apps x environments) rows.
    pub async fn grid(&self) -> Result<Grid> {
        self.grid_rows(None).await
    }

    /// The grid's rows of these applications only (by shortname), for re-rendering the
    /// rows that changed. Freezes are not read (`freezes` is empty).
    pub async fn grid_for(&self, shortnames: &[String]) -> Result<Grid> {
        self.grid_rows(Some(shortnames)).await
    }

    async fn grid_rows(&self, only: Option<&[String]>) -> Result<Grid> {
        let filter = match only {
            None => String::new(),
            Some(names) => format!(
                "WHERE a.shortname IN ({})",
                sql::placeholders(1, names.len().max(1))
            ),
        };
        let sql = format!(
            "SELECT a.id, a.shortname, a.name, a.repo, a.team, a.manual_environments, c.environment,
                    d.id AS deployment_id, d.version, d.sha, d.deployed_by, d.trigger_kind, d.status, d.failed_stage, d.created_at,
                    d.gate_note
             FROM applications a
             LEFT JOIN current_deployments c ON c.application_id = a.id
             LEFT JOIN deployments d ON d.id = c.deployment_id
             {filter}
             ORDER BY a.name, a.id"
        );
        let listed: Vec<(&str,)> = match only {
            Some([]) => vec![("",)],
            Some(names) => names.iter().map(|n| (n.as_str(),)).collect(),
            None => vec![],
        };
        let rows: Vec<GridRow> = sql::fetch_all(&self.pool, &sql, listed).await?;
        let mut ids = Vec::new();
        let names: Vec<&str> = self.environments.names();
        let mut apps: Vec<AppSummary> = Vec::new();
        let mut last_id = None;
        for r in rows {
            if last_id != Some(r.id) {
                last_id = Some(r.id);
                ids.push(r.id);
                let manual: Vec<&str> = r.manual_environments.split(',').collect();
                apps.push(AppSummary {
                    name: r.name.clone(),
                    shortname: r.shortname.clone(),
                    repo: r.repo.clone(),
                    team: r.team.clone(),
                    cells: vec![None; names.len()],
                    continuous: names.iter().map(|n| !manual.contains(n)).collect(),
                    flags: vec![],
                    release_status: String::new(),
                    live: vec![None; names.len()],
                });
            }
            let app = apps.last_mut().expect("pushed above");
            if let (Some(env), Some(id), Some(version), Some(trigger), Some(status), Some(at)) = (
                r.environment,
                r.deployment_id,
                r.version,
                r.trigger_kind,
                r.status,
                r.created_at,
            ) {
                if let Some(i) = names.iter().position(|n| *n == env) {
                    app.cells[i] = Some(Cell {
                        deployment_id: id,
                        version,
                        sha: r.sha,
                        deployed_by: r.deployed_by,
                        trigger,
                        status: DeploymentStatus::parse(&status)
                            .unwrap_or(DeploymentStatus::InProgress),
                        failed_stage: r.failed_stage.as_deref().and_then(|s| Stage::parse(s).ok()),
                        created_at_ms: at,
                        stalled: false,
                        gate_note: r.gate_note,
                        soaking: None,
                        approval: None,
                    });
                }
            }
        }
        self.fill_live(&mut apps, &ids, &names).await?;
        let now = now_ms();
        for app in &mut apps {
            finish_summary(&names, app, self.cell_rules(), now);
        }
        let freezes = match only {
            None => self.all_active_freezes().await?,
            Some(_) => vec![],
        };
        Ok(Grid {
            environments: names.iter().map(|s| s.to_string()).collect(),
            apps,
            ids,
            now_ms: now_ms(),
            freezes,
            simulated: false,
        })
    }

    /// One application: its current state, flags, and recent history per environment with
    /// each deployment's pipeline timeline.
    /// The application named `shortname` with its history, or `NotFound`.
    pub async fn existing_app_detail(&self, shortname: &str) -> Result<AppDetail> {
        self.app_detail(shortname)
            .await?
            .ok_or_else(|| super::no_application(shortname))
    }

    pub async fn app_detail(&self, shortname: &str) -> Result<Option<AppDetail>> {
        let Some(app) = self.application(shortname).await? else {
            return Ok(None);
        };
        let names: Vec<&str> = self.environments.names();
        let mut history = Vec::with_capacity(names.len());
        let mut all_ids = Vec::new();
        for env in &names {
            let rows: Vec<DeploymentRow> = sql::fetch_all(
                &self.pool,
                &format!(
                    "SELECT {DEPLOYMENT_COLUMNS} FROM deployments d JOIN applications a ON a.id = d.application_id
                 WHERE d.application_id = $1 AND d.environment = $2 ORDER BY d.id DESC LIMIT {HISTORY_PER_ENVIRONMENT}"
                ),
                (app.id, *env),
            )
            .await?;
            let deployments: Vec<DeploymentView> = rows.into_iter().map(deployment_view).collect();
            all_ids.extend(deployments.iter().map(|d| d.id));
            history.push(EnvironmentHistory {
                environment: env.to_string(),
                continuous: !app.manual_environments.iter().any(|m| m == env),
                deployments,
            });
        }
        let events = self.events_for(&all_ids).await?;
        for h in &mut history {
            for d in &mut h.deployments {
                d.events = events.get(&d.id).cloned().unwrap_or_default();
            }
        }
        let mut summary =
            summary_from_history(&names, &app, &self.current_ids(app.id).await?, &history);
        self.fill_live(std::slice::from_mut(&mut summary), &[app.id], &names)
            .await?;
        let now = now_ms();
        finish_summary(&names, &mut summary, self.cell_rules(), now);
        for d in history.iter_mut().flat_map(|h| h.deployments.iter_mut()) {
            d.stalled = crate::domain::is_stalled(d.status, d.created_at_ms, now, self.stall_ms);
        }
        let freezes = self.active_freezes(Some(app.id)).await?;
        Ok(Some(AppDetail {
            simulated: false,
            may_deploy: vec![],
            who_may_deploy: vec![],
            summary,
            freezes,
            default_branch: app.default_branch,
            workflow_file: app.workflow,
            notes: app.notes,
            history,
            now_ms: now_ms(),
            soaking: vec![],
            approvals: vec![],
        }))
    }

    async fn current_ids(&self, app_id: i64) -> Result<HashMap<String, i64>> {
        let rows: Vec<(String, i64)> = sql::fetch_all(
            &self.pool,
            "SELECT environment, deployment_id FROM current_deployments WHERE application_id = $1",
            (app_id,),
        )
        .await?;
        Ok(rows.into_iter().collect())
    }

    async fn events_for(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<EventView>>> {
        let mut out: HashMap<i64, Vec<EventView>> = HashMap::new();
        for chunk in ids.chunks(200) {
            let sql = format!(
                "SELECT deployment_id, stage, status, message, workflow_environment, workflow_namespace, workflow_name, workflow_url, at
                 FROM events WHERE deployment_id IN ({}) ORDER BY at, id",
                sql::placeholders(1, chunk.len())
            );
            let listed: Vec<(i64,)> = chunk.iter().map(|id| (*id,)).collect();
            let rows: Vec<EventRow> = sql::fetch_all(&self.pool, &sql, listed).await?;
            for r in rows {
                let Ok(stage) = Stage::parse(&r.stage) else {
                    continue;
                };
                out.entry(r.deployment_id).or_default().push(EventView {
                    stage,
                    status: r.status,
                    message: r.message,
                    workflow: workflow(
                        r.workflow_environment,
                        r.workflow_namespace,
                        r.workflow_name,
                        r.workflow_url,
                    ),
                    at_ms: r.at,
                });
            }
        }
        Ok(out)
    }

    /// The latest deployments across all apps, newest first, optionally in one environment.
    pub async fn activity(&self, environment: Option<&str>) -> Result<Activity> {
        let rows: Vec<DeploymentRow> = match environment {
            Some(env) => {
                let sql = format!(
                    "SELECT {DEPLOYMENT_COLUMNS} FROM deployments d JOIN applications a ON a.id = d.application_id
                 WHERE d.environment = $1 ORDER BY d.created_at DESC, d.id DESC LIMIT {ACTIVITY_LIMIT}"
                );
                sql::fetch_all(&self.pool, &sql, (env,)).await?
            }
            None => {
                let sql = format!(
                    "SELECT {DEPLOYMENT_COLUMNS} FROM deployments d JOIN applications a ON a.id = d.application_id
                 ORDER BY d.created_at DESC, d.id DESC LIMIT {ACTIVITY_LIMIT}"
                );
                sql::fetch_all(&self.pool, &sql, ()).await?
            }
        };
        Ok(Activity {
            environments: self.environments.owned_names(),
            filter: environment.map(str::to_owned),
            deployments: rows.into_iter().map(deployment_view).collect(),
            now_ms: now_ms(),
        })
    }
}

fn workflow(
    environment: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    url: Option<String>,
) -> Option<Workflow> {
    if environment.is_none() && namespace.is_none() && name.is_none() && url.is_none() {
        None
    } else {
        Some(Workflow {
            environment,
            namespace,
            name,
            url,
        })
    }
}

fn deployment_view(r: DeploymentRow) -> DeploymentView {
    r.0
}

/// The times a cell's view is judged by.
#[derive(Clone, Copy)]
struct CellRules {
    drift_grace_ms: i64,
    stall_ms: i64,
}

impl Store {
    fn cell_rules(&self) -> CellRules {
        CellRules {
            drift_grace_ms: self.drift_grace_ms,
            stall_ms: self.stall_ms,
        }
    }
}

/// Every cell's view, in one pass where it is read: its flags, its release status, drift
/// (where Argo CD's word is current) and stalled (a requested deploy that heard nothing).
fn finish_summary(names: &[&str], app: &mut AppSummary, rules: CellRules, now: i64) {
    let drift_grace_ms = rules.drift_grace_ms;
    for c in app.cells.iter_mut().flatten() {
        c.stalled = crate::domain::is_stalled(c.status, c.created_at_ms, now, rules.stall_ms);
    }
    let states = app.cell_states();
    app.flags = app_flags(names, &states, &app.continuous);
    app.release_status = release_app_status(names, &states).to_owned();
    // Drift: only where Argo CD's word is current (an unknown live state says nothing).
    for (i, (cell, live)) in app.cells.iter().zip(&app.live).enumerate() {
        let (Some(cell), Some(live), Some(state)) = (cell, live, &states[i]) else {
            continue;
        };
        let Some(running) = live
            .version
            .as_deref()
            .filter(|_| live.unknown_since_ms.is_none())
        else {
            continue;
        };
        if let Some(since_ms) = crate::domain::drift_since(
            state,
            cell.created_at_ms,
            running,
            live.version_since_ms,
            now,
            drift_grace_ms,
        ) {
            app.flags.push(crate::domain::Flag::Drift {
                environment: names[i].to_owned(),
                running: running.to_owned(),
                expected: cell.version.clone(),
                since_ms,
            });
        }
    }
}

impl Store {
    /// Fills each app's `live` from `live_states` (`ids` in the order of `apps`).
    async fn fill_live(&self, apps: &mut [AppSummary], ids: &[i64], names: &[&str]) -> Result<()> {
        if apps.is_empty() {
            return Ok(());
        }
        // A few apps (a page, a change): their rows; the whole grid: the whole table (5 rows
        // an app at most).
        let few = ids.len() <= 100;
        let (sql, listed): (String, Vec<(i64,)>) = if few {
            (
                format!("SELECT application_id, environment, version, health, version_since, unknown_since FROM live_states WHERE application_id IN ({})", sql::placeholders(1, ids.len())),
                ids.iter().map(|id| (*id,)).collect(),
            )
        } else {
            (
                "SELECT application_id, environment, version, health, version_since, unknown_since FROM live_states".to_string(),
                vec![],
            )
        };
        let rows: Vec<(i64, String, Option<String>, String, i64, Option<i64>)> =
            sql::fetch_all(&self.pool, &sql, listed).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let index: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        for (app_id, env, version, health, since, unknown) in rows {
            let (Some(&a), Some(e)) = (index.get(&app_id), names.iter().position(|n| *n == env))
            else {
                continue;
            };
            if let Some(slot) = apps.get_mut(a).and_then(|app| app.live.get_mut(e)) {
                *slot = Some(crate::model::LiveCell {
                    version,
                    health,
                    version_since_ms: since,
                    unknown_since_ms: unknown,
                });
            }
        }
        Ok(())
    }
}

fn summary_from_history(
    names: &[&str],
    app: &ApplicationRow,
    current: &HashMap<String, i64>,
    history: &[EnvironmentHistory],
) -> AppSummary {
    let cells = history
        .iter()
        .map(|h| {
            let id = current.get(&h.environment)?;
            h.deployments.iter().find(|d| d.id == *id).map(Cell::from)
        })
        .collect();
    let mut s = AppSummary {
        name: app.name.clone(),
        shortname: app.shortname.clone(),
        repo: app.repo.clone(),
        team: app.team.clone(),
        cells,
        continuous: history.iter().map(|h| h.continuous).collect(),
        flags: vec![],
        release_status: String::new(),
        live: vec![None; names.len()],
    };
    finish_summary(
        names,
        &mut s,
        CellRules {
            drift_grace_ms: i64::MAX,
            stall_ms: i64::MAX,
        },
        0,
    );
    s
}
