//! Rollback ("Roll back to v299"): the newest earlier version that succeeded in the
//! environment, decided on the server (`deploy_rules::rollback_target`), deployed through
//! `deploy::perform_deploy`, with promotion into (and, for someone who may deploy there,
//! out of) the environment frozen with the written reason, in the intent's transaction:
//! the freeze is never lost when the dispatch went out.

use super::deploy::{perform_deploy, DeployCommand, Dispatching, RollbackFreeze};
use crate::auth::CurrentUser;
use crate::domain::{deploy_rules as rules, Environment};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::ApplicationRow;

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
    override_reason: Option<&str>,
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
            why: Some(format!("rollback from {from_version}: {reason}")),
            rollback: Some(RollbackFreeze {
                detail: format!(
                    "{} {env}: {from_version} -> {target}; promotion from {env} frozen: {reason}",
                    app.shortname
                ),
                reason,
            }),
            ..DeployCommand::new(app, env.clone(), git_ref, confirmed, override_reason)
        },
    )
    .await?;
    Ok((dispatching, from_version, target))
}
