//! The gates of one deploy: reads their facts (the commit's checks from GitHub as the
//! person; the version's stints in the environment before, from the store and Argo CD's
//! record) and turns them into holds for `domain::gates::decide`. Deploy, Promote, a
//! train's items and a rollback all pass here (`deploy::perform_deploy`); the pipeline's
//! promotion gate asks [`soak_hold`].

use crate::domain::gates::{self, Hold, Soak};
use crate::domain::{Environment, GitRef, RepoName};
use crate::state::AppState;
use crate::store::ApplicationRow;

/// What the gates found for one deploy.
pub struct Found {
    /// What holds it (none: every gate is open).
    pub holds: Vec<Hold>,
    /// The commit the ref resolved to when the checks were read (recorded with the
    /// deployment, so what was checked is on record).
    pub sha: Option<String>,
}

/// What holds a deploy of `version` of `app` to `env`: required checks not passing (or
/// not readable: fail closed), and a soak time not yet served. `token` is the person's
/// GitHub token; the demo's simulated pipeline (no GitHub) has no checks to read.
pub async fn holds(
    state: &AppState,
    app: &ApplicationRow,
    env: &Environment,
    version: &GitRef,
    token: Option<&str>,
) -> crate::store::Result<Found> {
    let mut found = Found {
        holds: Vec::new(),
        sha: None,
    };
    if state.gates.checks_on(&app.shortname, env.as_str()) && state.simulator.is_none() {
        let (hold, sha) = checks_hold(state, app, env, version, token).await;
        found.holds.extend(hold);
        found.sha = sha;
    }
    if let Some(soak) = soak_hold(state, app, env, version.as_str()).await? {
        found.holds.push(Hold::Soak(soak));
    }
    Ok(found)
}

/// Every required check of the commit `version` resolves to, read as the person, with
/// its state and link; and that commit. `Err` says why GitHub could not be read.
async fn read_checks(
    state: &AppState,
    app: &ApplicationRow,
    env: &Environment,
    version: &GitRef,
    token: &str,
) -> Result<(Vec<gates::CheckResult>, Option<String>), String> {
    let repo = RepoName::parse(&app.repo).map_err(|e| e.to_string())?;
    let found = state
        .pipeline
        .commit_checks(token, &repo, &app.default_branch, version)
        .await
        .map_err(|e| format!("GitHub: {e}"))?;
    let configured =
        state
            .gates
            .configured_checks(&app.shortname, env.as_str(), !found.required.is_empty());
    let required = gates::required_checks(found.required, &configured);
    Ok((
        gates::evaluate_checks(&required, &found.reported),
        found.sha,
    ))
}

/// The required checks that do not pass (or why they could not be read: fail closed),
/// and the commit they were read for.
async fn checks_hold(
    state: &AppState,
    app: &ApplicationRow,
    env: &Environment,
    version: &GitRef,
    token: Option<&str>,
) -> (Option<Hold>, Option<String>) {
    let Some(token) = token else {
        return (
            Some(Hold::ChecksUnknown(
                "no GitHub token to read them with".into(),
            )),
            None,
        );
    };
    match read_checks(state, app, env, version, token).await {
        Ok((checks, sha)) => {
            let not_passing: Vec<_> = checks
                .into_iter()
                .filter(|c| c.state != gates::CheckState::Success)
                .collect();
            (
                (!not_passing.is_empty()).then_some(Hold::Checks(not_passing)),
                sha,
            )
        }
        Err(why) => (Some(Hold::ChecksUnknown(why)), None),
    }
}

/// The checks of `version` as the preview lists them: each required check with its
/// state and link, or why they could not be read. `None` when the gate is off.
pub async fn preview_checks(
    state: &AppState,
    app: &ApplicationRow,
    env: &Environment,
    version: &GitRef,
    token: Option<&str>,
) -> Option<Result<Vec<gates::CheckResult>, String>> {
    if !state.gates.checks_on(&app.shortname, env.as_str()) || state.simulator.is_some() {
        return None;
    }
    Some(
        read_checks(state, app, env, version, token?)
            .await
            .map(|(checks, _)| checks)
            .map_err(|why| format!("the required checks could not be read: {why}")),
    )
}

/// Has `version` soaked long enough in the environment before `env`? `None` when `env`
/// needs no soak (or is the first environment).
pub async fn soak_hold(
    state: &AppState,
    app: &ApplicationRow,
    env: &Environment,
    version: &str,
) -> crate::store::Result<Option<Soak>> {
    let minutes = state.gates.soak_minutes(&app.shortname, env.as_str());
    if minutes == 0 {
        return Ok(None);
    }
    let Some(before) = state.store.environments().previous(env).cloned() else {
        return Ok(None);
    };
    let argocd = state
        .gates
        .argocd_environments
        .iter()
        .any(|e| e == before.as_str());
    let stints = state
        .store
        .soak_stints(app.id, before.as_str(), version, argocd)
        .await?;
    let soak = gates::soak(
        version,
        before.as_str(),
        minutes,
        &stints,
        crate::store::now_ms(),
    );
    Ok(soak.hold.is_some().then_some(soak))
}
