//! Promotion ("Deploy v301 to staging"): what runs in the environment before, read from
//! the server's own record (`deploy_rules::promotion`), through `deploy::perform_deploy`,
//! so the rules, the in-flight slot, the audit entry and the alert are the same as a
//! Deploy's.

use super::deploy::{perform_deploy, DeployCommand, Dispatching};
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
    override_reason: Option<&str>,
    train_id: Option<i64>,
) -> Result<Dispatching, AppError> {
    let summary = grid
        .apps
        .iter()
        .find(|a| a.shortname == app.shortname)
        .ok_or_else(|| AppError::new(404, format!("no application {}", app.shortname)))?;
    let names: Vec<&str> = grid.environments.iter().map(String::as_str).collect();
    let cells = summary.cell_states();
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
            why: Some(format!("promoted from {}", p.from)),
            train_id,
            ..DeployCommand::new(app, env.clone(), git_ref, confirmed, override_reason)
        },
    )
    .await
}
