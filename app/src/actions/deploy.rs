//! Deploy: every rule checked (`deploy_rules::check_deploy`), then the intent written in
//! one transaction (the deployment, the in-flight slot, the audit entry, a rollback's
//! freeze), then GitHub called from a task the request does not own (`dispatch`).
//! Deploy, promotion, rollback and release trains all come here.

use super::dispatch::{spawn_deploy, DeployCall, Report};
use super::{ActionDone, Audit};
use crate::auth::CurrentUser;
use crate::domain::{
    deploy_rules as rules, DeploymentStatus, Environment, GitRef, RepoName, Trigger,
};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{
    ApplicationRow, DeployIntent, Intent, NewAudit, NewDeployment, NewFreeze, Outcome,
};
use std::time::Duration;

/// A deploy as asked, parsed.
pub struct DeployCommand<'a> {
    pub app: &'a ApplicationRow,
    pub environment: Environment,
    pub git_ref: GitRef,
    /// The person ticked "I mean it" (production needs it).
    pub confirmed: bool,
    /// An admin's written reason to deploy through a freeze.
    pub override_reason: Option<&'a str>,
    /// What this deploy is, for the audit ("promoted from integration").
    pub why: Option<String>,
    /// A rollback freezes promotion into and out of its environment, in the intent's
    /// transaction: the freeze is never lost when the dispatch went out.
    pub rollback: Option<RollbackFreeze>,
    pub train_id: Option<i64>,
}

/// A rollback's freeze: the written reason and the audit entry's detail.
pub struct RollbackFreeze {
    pub reason: String,
    pub detail: String,
}

/// A deploy on its way: the intent is written, the task is calling GitHub.
pub struct Dispatching {
    pub intent: Intent,
    handle: tokio::task::JoinHandle<Report>,
    git_ref: GitRef,
    environment: Environment,
    simulated: bool,
}

impl Dispatching {
    /// GitHub's answer if it comes within `wait`; otherwise "being dispatched" (the task
    /// goes on, and the application's page shows the run when it is known).
    pub async fn answer(self, wait: Duration) -> Result<ActionDone, AppError> {
        let (git_ref, env, simulated) = (self.git_ref, self.environment, self.simulated);
        match tokio::time::timeout(wait, self.handle).await {
            Ok(Ok(report)) => answer_of(report, &git_ref, &env, simulated),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "a dispatch task ended without an outcome");
                Err(AppError::new(
                    500,
                    format!("The deploy of {git_ref} to {env} was requested, but its dispatch task stopped: the application's page will say what became of it."),
                ))
            }
            Err(_) => Ok(ActionDone {
                message: format!(
                    "The deploy of {git_ref} to {env} is being dispatched to GitHub; the application's page shows its run when GitHub answers."
                ),
                link: None,
            }),
        }
    }

    /// Waits for the outcome, however long it takes (a train's job, which no request owns).
    pub async fn finish(self) -> Result<ActionDone, AppError> {
        let (git_ref, env, simulated) = (self.git_ref, self.environment, self.simulated);
        match self.handle.await {
            Ok(report) => answer_of(report, &git_ref, &env, simulated),
            Err(e) => Err(AppError::new(
                500,
                format!("its dispatch task stopped: {e}"),
            )),
        }
    }
}

fn answer_of(
    report: Report,
    git_ref: &GitRef,
    env: &Environment,
    simulated: bool,
) -> Result<ActionDone, AppError> {
    match report.outcome {
        Outcome::Dispatched { run_url } => Ok(ActionDone {
            message: if simulated {
                format!("Simulated deploy of {git_ref} to {env} started.")
            } else {
                format!("Deploy of {git_ref} to {env} requested on GitHub.")
            },
            link: run_url,
        }),
        Outcome::Refused { error } | Outcome::NotConfirmed { error } => {
            Err(AppError::new(report.status, error))
        }
    }
}

/// Checks every rule, writes the intent, and starts the dispatch. A refusal writes only
/// its audit entry; nothing is sent to GitHub before the intent is committed.
pub async fn perform_deploy(
    state: &AppState,
    user: &CurrentUser,
    cmd: DeployCommand<'_>,
) -> Result<Dispatching, AppError> {
    let store = &state.store;
    let app = cmd.app;
    let env = &cmd.environment;
    let audit = Audit::new(
        store,
        &user.login,
        "deploy",
        Some(&app.shortname),
        Some(env.as_str()),
    );
    let freezes = store
        .active_freezes(Some(app.id))
        .await
        .map_err(AppError::store)?;
    let is_last = store.environments().as_slice().last() == Some(env);
    let permit = rules::check_deploy(&rules::DeployAsk {
        user,
        application: &app.shortname,
        environment: env,
        is_last_environment: is_last,
        confirmed: cmd.confirmed,
        freezes: &freezes,
        override_reason: cmd.override_reason,
    });
    let override_detail = match permit {
        Ok(rules::DeployPermit::Plain) => None,
        Ok(rules::DeployPermit::Override { freeze, reason }) => {
            Some(format!("{freeze}; overridden: {reason}"))
        }
        Err(refusal) => {
            audit.record("refused", &refusal.to_string()).await;
            return Err(refusal.into());
        }
    };
    let repo = RepoName::parse(&app.repo).map_err(|e| {
        AppError::new(
            409,
            format!("{} has a repository GitHub cannot take: {e}", app.shortname),
        )
    })?;
    // GitHub, as the person; or, in the demo, the simulated pipeline.
    let token = match &state.simulator {
        Some(_) => None,
        None => match crate::state::github_token(state, user).await? {
            Some(t) => Some(t),
            None => {
                let why = "deploys need GitHub: this Release has no GitHub OAuth app configured (development sign-in has no GitHub token)";
                audit.record("refused", why).await;
                return Err(AppError::new(503, why));
            }
        },
    };
    let why = cmd
        .why
        .as_deref()
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    let simulated = if state.simulator.is_some() {
        " (simulated pipeline)"
    } else {
        ""
    };
    let detail = format!("{} to {env}{why}{simulated}", cmd.git_ref);
    let requested_detail = format!("{detail}: dispatching");
    let freeze = cmd.rollback.as_ref().map(|r| {
        (
            NewFreeze {
                application_id: Some(app.id),
                from_environment: Some(env.as_str()),
                environments: rules::rollback_freeze_scope(
                    user,
                    store.environments().as_slice(),
                    env,
                ),
                reason: &r.reason,
                by: &user.login,
                authority: rules::Authority::of(user).unwrap_or(rules::Authority::Deployer),
            },
            NewAudit {
                actor: &user.login,
                action: "rollback",
                application: Some(&app.shortname),
                environment: Some(env.as_str()),
                outcome: "requested",
                detail: &r.detail,
            },
        )
    });
    let intent = store
        .begin_deploy(&DeployIntent {
            application_id: app.id,
            deployment: NewDeployment {
                repo: repo.clone(),
                environment: env.clone(),
                version: cmd.git_ref.clone(),
                sha: None,
                deployed_by: Some(user.login.clone()),
                trigger: Trigger::Manual,
                created_at_ms: None,
                base_status: DeploymentStatus::Requested,
            },
            actor: &user.login,
            user_id: user.github_id.map(|_| user.user_id),
            github_id: user.github_id,
            stall_ms: state.stall_ms,
            audit: audit.entry("requested", &requested_detail),
            override_audit: override_detail
                .as_deref()
                .map(|d| audit.entry("override", d)),
            freeze,
            train_id: cmd.train_id,
        })
        .await
        .map_err(AppError::store)?;
    let intent = match intent {
        Ok(i) => i,
        Err(holder) => {
            audit
                .record(
                    "refused",
                    &format!("{} is already deploying", holder.requested_by),
                )
                .await;
            let r = rules::in_flight(
                &app.shortname,
                env.as_str(),
                &holder.requested_by,
                &crate::model::ago(crate::store::now_ms(), holder.requested_at_ms),
            );
            return Err(r.into());
        }
    };
    let handle = spawn_deploy(
        state.clone(),
        DeployCall {
            intent: intent.clone(),
            token,
            repo,
            workflow: app.workflow.clone(),
            default_branch: app.default_branch.clone(),
            environment: env.clone(),
            git_ref: cmd.git_ref.clone(),
            actor: user.login.clone(),
            action: "deploy",
            detail,
            requested_at: chrono::Utc::now(),
        },
    );
    Ok(Dispatching {
        intent,
        handle,
        git_ref: cmd.git_ref,
        environment: cmd.environment,
        simulated: state.simulator.is_some(),
    })
}

/// How long a request waits for GitHub's answer before answering "being dispatched":
/// the dispatch's timeout, and when its answer was lost, two look-ups of its run (after 2
/// and 4 more seconds), within the request's own time limit (30 s).
pub fn answer_wait(outside_timeout: Duration) -> Duration {
    (outside_timeout * 2 + Duration::from_secs(9)).min(Duration::from_secs(25))
}
