//! Deploy: every rule checked (`deploy_rules::check_deploy`), then the intent written in
//! one transaction (the deployment, the in-flight slot, the audit entry, a rollback's
//! freeze), then GitHub called from a task the request does not own (`dispatch`).
//! Deploy, promotion, rollback and release trains all come here.

use super::dispatch::{dispatch_and_record, DeployCall, Report};
use super::{ActionDone, Audit};
use crate::auth::CurrentUser;
use crate::domain::{
    deploy_rules as rules, DeploymentStatus, Environment, GitRef, RepoName, Trigger,
};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{
    ApplicationRow, DeployIntent, GateOverride, Intent, NewAudit, NewDeployment, NewFreeze, Outcome,
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

impl<'a> DeployCommand<'a> {
    /// A plain deploy of `git_ref`: no audit note, no freeze, not part of a train (a
    /// promotion, a rollback or a train's item sets its own with struct update).
    pub fn new(
        app: &'a ApplicationRow,
        environment: Environment,
        git_ref: GitRef,
        confirmed: bool,
        override_reason: Option<&'a str>,
    ) -> Self {
        Self {
            app,
            environment,
            git_ref,
            confirmed,
            override_reason,
            why: None,
            rollback: None,
            train_id: None,
        }
    }
}

/// A rollback's freeze: the written reason and the audit entry's detail.
pub struct RollbackFreeze {
    pub reason: String,
    pub detail: String,
}

/// A deploy on its way: the intent is written, the task is calling GitHub.
pub struct Dispatching {
    pub intent: Intent,
    handle: tokio::task::JoinHandle<Option<Report>>,
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
            Ok(Ok(Some(report))) => answer_of(report, &git_ref, &env, simulated),
            Ok(Ok(None)) => Err(AppError::new(500, "the deploy's intent was not written")),
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
            Ok(Some(report)) => answer_of(report, &git_ref, &env, simulated),
            Ok(None) => Err(AppError::new(500, "the deploy's intent was not written")),
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
    let audit =
        Audit::new(store, &user.login, "deploy").on(Some(&app.shortname), Some(env.as_str()));
    let freezes = store.active_freezes(Some(app.id)).await?;
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
    // The gates (required checks, soak time): closed ones refuse, unless the person may
    // override them there and wrote a reason.
    let found = super::gates::holds(state, app, env, &cmd.git_ref, token.as_deref()).await?;
    let checked_sha = found
        .sha
        .as_deref()
        .and_then(|s| crate::domain::Sha::parse(s).ok());
    let gate = match crate::domain::gates::decide(
        user,
        env.as_str(),
        state.gates.override_by(env.as_str()),
        found.holds,
        cmd.override_reason,
    ) {
        Ok(p) => p,
        Err(refusal) => {
            audit.record("refused", &refusal.to_string()).await;
            return Err(refusal.into());
        }
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
    let owned = OwnedIntent {
        application_id: app.id,
        shortname: app.shortname.clone(),
        deployment: NewDeployment {
            repo: repo.clone(),
            environment: env.clone(),
            version: cmd.git_ref.clone(),
            // The commit the checks gate read (none when it is off).
            sha: checked_sha,
            deployed_by: Some(user.login.clone()),
            trigger: Trigger::Manual,
            created_at_ms: None,
            base_status: DeploymentStatus::Requested,
        },
        actor: user.login.clone(),
        user_id: user.github_id.map(|_| user.user_id),
        github_id: user.github_id,
        stall_ms: state.stall_ms,
        requested_detail,
        override_detail,
        gate: gate_override(&gate, &app.shortname, env, &cmd.git_ref, &user.login),
        freeze: cmd.rollback.as_ref().map(|r| OwnedFreeze {
            environments: rules::rollback_freeze_scope(user, store.environments().as_slice(), env),
            reason: r.reason.clone(),
            authority: rules::Authority::of(user).unwrap_or(rules::Authority::Deployer),
            detail: r.detail.clone(),
        }),
        train_id: cmd.train_id,
    };
    let call = CallParts {
        token,
        repo,
        workflow: app.workflow.clone(),
        default_branch: app.default_branch.clone(),
        environment: env.clone(),
        git_ref: cmd.git_ref.clone(),
        actor: user.login.clone(),
        detail,
    };
    // The intent's write and the dispatch in one task no request owns: once the request
    // has got this far, dropping it (the client gone, a time-out) at any await leaves no
    // intent without its task.
    let (began, intent_rx) = tokio::sync::oneshot::channel();
    let task_state = state.clone();
    let handle = tokio::spawn(async move {
        let state = task_state;
        let written = state.store.begin_deploy(&owned.as_intent()).await;
        match written {
            Ok(Ok(intent)) => {
                // The request may be gone: the dispatch goes on regardless.
                began.send(Ok(intent.clone())).ok();
                Some(dispatch_and_record(&state, call.into_call(intent)).await)
            }
            Ok(Err(holder)) => {
                began.send(Err(NotBegun::Held(holder))).ok();
                None
            }
            Err(e) => {
                began.send(Err(NotBegun::Store(e))).ok();
                None
            }
        }
    });
    let intent = match intent_rx.await {
        Ok(Ok(i)) => i,
        Ok(Err(NotBegun::Held(holder))) => {
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
        Ok(Err(NotBegun::Store(e))) => return Err(AppError::store(e)),
        Err(_) => return Err(AppError::new(
            500,
            "the deploy's task stopped before its intent was written: nothing was sent to GitHub",
        )),
    };
    Ok(Dispatching {
        intent,
        handle,
        git_ref: cmd.git_ref,
        environment: cmd.environment,
        simulated: state.simulator.is_some(),
    })
}

/// What a deploy through closed gates writes with its intent: the deployment's note
/// ("checks overridden"), the audit detail naming every hold and the reason, and one alert
/// per kind of hold (`checks_overridden`, `soak_overridden`).
fn gate_override(
    gate: &crate::domain::gates::GatePermit,
    shortname: &str,
    env: &Environment,
    git_ref: &GitRef,
    actor: &str,
) -> Option<(String, String, Vec<crate::domain::AlertEvent>)> {
    use crate::domain::gates::{GatePermit, Hold};
    use crate::domain::{AlertEvent, AlertKind};
    let GatePermit::Overridden { holds, reason } = gate else {
        return None;
    };
    let mut alerts: Vec<AlertEvent> = Vec::new();
    for h in holds {
        let kind = match h {
            Hold::Checks(_) | Hold::ChecksUnknown(_) => AlertKind::ChecksOverridden,
            Hold::Soak(_) => AlertKind::SoakOverridden,
        };
        if alerts.iter().any(|a| a.kind == Some(kind)) {
            continue;
        }
        let mut a = AlertEvent::new(kind, crate::store::now_ms());
        a.application = Some(shortname.to_owned());
        a.environment = Some(env.to_string());
        a.version = Some(git_ref.to_string());
        a.actor = Some(actor.to_owned());
        a.message = Some(format!("{}; reason: {reason}", h.describe()));
        alerts.push(a);
    }
    Some((gate.note()?, gate.detail()?, alerts))
}

/// Why an intent was not written.
enum NotBegun {
    Held(crate::store::LockHolder),
    Store(crate::store::StoreError),
}

/// A deploy's intent, owned (it is written by the task, which outlives the request).
struct OwnedIntent {
    application_id: i64,
    shortname: String,
    deployment: NewDeployment,
    actor: String,
    user_id: Option<i64>,
    github_id: Option<i64>,
    stall_ms: i64,
    requested_detail: String,
    override_detail: Option<String>,
    /// A deploy through a closed gate: the deployment's note, the audit detail, alerts.
    gate: Option<(String, String, Vec<crate::domain::AlertEvent>)>,
    freeze: Option<OwnedFreeze>,
    train_id: Option<i64>,
}

/// A rollback's freeze, owned.
struct OwnedFreeze {
    environments: Option<Vec<String>>,
    reason: String,
    authority: rules::Authority,
    detail: String,
}

impl OwnedIntent {
    fn as_intent(&self) -> DeployIntent<'_> {
        let env = self.deployment.environment.as_str();
        DeployIntent {
            application_id: self.application_id,
            deployment: self.deployment.clone(),
            actor: &self.actor,
            user_id: self.user_id,
            github_id: self.github_id,
            stall_ms: self.stall_ms,
            audit: NewAudit {
                actor: &self.actor,
                action: "deploy",
                application: Some(&self.shortname),
                environment: Some(env),
                outcome: "requested",
                detail: &self.requested_detail,
            },
            override_audit: self.override_detail.as_deref().map(|d| NewAudit {
                actor: &self.actor,
                action: "deploy",
                application: Some(&self.shortname),
                environment: Some(env),
                outcome: "override",
                detail: d,
            }),
            gate_override: self
                .gate
                .as_ref()
                .map(|(note, detail, alerts)| GateOverride {
                    note: note.clone(),
                    audit: NewAudit {
                        actor: &self.actor,
                        action: "deploy",
                        application: Some(&self.shortname),
                        environment: Some(env),
                        outcome: "gate override",
                        detail,
                    },
                    alerts: alerts.clone(),
                }),
            freeze: self.freeze.as_ref().map(|f| {
                (
                    NewFreeze {
                        application_id: Some(self.application_id),
                        from_environment: Some(env),
                        environments: f.environments.clone(),
                        reason: &f.reason,
                        by: &self.actor,
                        authority: f.authority,
                    },
                    NewAudit {
                        actor: &self.actor,
                        action: "rollback",
                        application: Some(&self.shortname),
                        environment: Some(env),
                        outcome: "requested",
                        detail: &f.detail,
                    },
                )
            }),
            train_id: self.train_id,
        }
    }
}

/// What the dispatch needs besides the intent.
struct CallParts {
    token: Option<String>,
    repo: RepoName,
    workflow: String,
    default_branch: String,
    environment: Environment,
    git_ref: GitRef,
    actor: String,
    detail: String,
}

impl CallParts {
    fn into_call(self, intent: Intent) -> DeployCall {
        DeployCall {
            intent,
            token: self.token,
            repo: self.repo,
            workflow: self.workflow,
            default_branch: self.default_branch,
            environment: self.environment,
            git_ref: self.git_ref,
            actor: self.actor,
            action: "deploy",
            detail: self.detail,
            requested_at: chrono::Utc::now(),
        }
    }
}

/// How long a request waits for GitHub's answer before answering "being dispatched":
/// the dispatch's timeout, and when its answer was lost, two look-ups of its run (after 2
/// and 4 more seconds), within the request's own time limit (30 s).
pub fn answer_wait(outside_timeout: Duration) -> Duration {
    (outside_timeout * 2 + Duration::from_secs(9)).min(Duration::from_secs(25))
}
