//! Promotion ("Deploy v301 to staging": what runs in the environment before) and rollback
//! ("Roll back to v299", freezing promotion into and out of that environment). The
//! version always comes from the server's own record (`deploy_rules::promotion`,
//! `deploy_rules::rollback_target`); each goes through `deploy::perform_deploy`, so the
//! rules, the in-flight slot, the audit entry and the alert are the same as a Deploy's,
//! and a rollback's freeze is written in the intent's transaction.

use super::deploy::{perform_deploy, DeployCommand, Dispatching, RollbackFreeze};
use crate::auth::CurrentUser;
use crate::domain::{deploy_rules as rules, Environment};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::ApplicationRow;

/// One app's promotion: what to deploy from the server's record (`grid`, read once for
/// all the apps of a train), checked against the version the button showed, then the
/// deploy.
#[allow(clippy::too_many_arguments)]
pub async fn promote_one(
    state: &AppState,
    user: &CurrentUser,
    app: &ApplicationRow,
    grid: &crate::model::Grid,
    env: &Environment,
    confirmed: bool,
    expected_version: Option<&str>,
    train_id: Option<i64>,
) -> Result<Dispatching, AppError> {
    let summary = grid
        .apps
        .iter()
        .find(|a| a.shortname == app.shortname)
        .ok_or_else(|| AppError::new(404, format!("no application {}", app.shortname)))?;
    let names: Vec<&str> = grid.environments.iter().map(String::as_str).collect();
    let cells: Vec<Option<crate::domain::CellState>> = summary
        .cells
        .iter()
        .map(|c| {
            c.as_ref().map(|c| crate::domain::CellState {
                version: c.version.clone(),
                sha: c.sha.clone(),
                status: c.status,
                failed_stage: c.failed_stage,
            })
        })
        .collect();
    let p = rules::promotion(&names, &cells, env.as_str())
        .map_err(|r| AppError::new(r.status(), format!("{}: {r}", app.shortname)))?;
    rules::expected_version(expected_version, &p.version, || {
        format!("{}: {} now runs {}", app.shortname, p.from, p.version)
    })?;
    let git_ref = rules::deployable_ref(&p.version, &p.from)?;
    perform_deploy(
        state,
        user,
        DeployCommand {
            app,
            environment: env.clone(),
            git_ref,
            confirmed,
            override_reason: None,
            why: Some(format!("promoted from {}", p.from)),
            rollback: None,
            train_id,
        },
    )
    .await
}

/// Rolls `env` back to the newest earlier version that succeeded there, freezing
/// promotion into and out of it with the written `reason`.
pub async fn rollback(
    state: &AppState,
    user: &CurrentUser,
    app: &ApplicationRow,
    env: &Environment,
    reason: String,
    confirmed: bool,
    expected_version: Option<&str>,
) -> Result<(Dispatching, String, String), AppError> {
    let store = &state.store;
    let detail = store
        .app_detail(&app.shortname)
        .await?
        .ok_or_else(|| AppError::new(404, format!("no application {}", app.shortname)))?;
    let idx = store.environments().index_of(env).unwrap_or(0);
    let current = detail.summary.cells.get(idx).cloned().flatten();
    let history: Vec<(String, crate::domain::DeploymentStatus)> = detail
        .history
        .get(idx)
        .map(|h| {
            h.deployments
                .iter()
                .map(|d| (d.version.clone(), d.status))
                .collect()
        })
        .unwrap_or_default();
    let target = rules::rollback_target(
        env.as_str(),
        current.as_ref().map(|c| c.version.as_str()),
        &history,
    )?;
    rules::expected_version(expected_version, &target, || {
        format!("the version to roll back to is {target}")
    })?;
    let git_ref = rules::deployable_ref(&target, env.as_str())?;
    let from_version = current.map(|c| c.version).unwrap_or_default();
    let dispatching = perform_deploy(
        state,
        user,
        DeployCommand {
            app,
            environment: env.clone(),
            git_ref,
            confirmed,
            override_reason: None,
            why: Some(format!("rollback from {from_version}: {reason}")),
            rollback: Some(RollbackFreeze {
                detail: format!(
                    "{} {env}: {from_version} -> {target}; promotion from {env} frozen: {reason}",
                    app.shortname
                ),
                reason,
            }),
            train_id: None,
        },
    )
    .await?;
    Ok((dispatching, from_version, target))
}
