//! Resubmit: re-runs a failed deployment's Argo workflow (what "RESUBMIT" does in Argo's
//! UI) on the deployment's own environment's Argo server, and records the new workflow on
//! the deployment's timeline. Through the same durable path as a deploy: the intent (its
//! `dispatches` row and audit entry) before Argo is called, the call and its outcome in a
//! task no request owns.

use super::dispatch::Report;
use super::{ActionDone, Audit};
use crate::auth::CurrentUser;
use crate::domain::{deploy_rules as rules, EventStatus, GitRef, K8sName, RepoName, Stage};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{NewAudit, NewEvent, Outcome};
use std::time::Duration;

/// A resubmit on its way: the intent is written, the task is calling Argo.
pub struct Resubmitting {
    handle: tokio::task::JoinHandle<Option<Report>>,
}

impl Resubmitting {
    /// Argo's answer if it comes within `wait`; otherwise "being resubmitted".
    pub async fn answer(self, wait: Duration) -> Result<ActionDone, AppError> {
        match tokio::time::timeout(wait, self.handle).await {
            Ok(Ok(Some(Report {
                outcome: Outcome::Dispatched { run_url },
                message,
                ..
            }))) => Ok(ActionDone {
                message: message.unwrap_or_else(|| "Resubmitted.".into()),
                link: run_url,
            }),
            Ok(Ok(Some(Report {
                outcome: Outcome::Refused { error } | Outcome::NotConfirmed { error },
                status,
                ..
            }))) => Err(AppError::new(status, error)),
            Ok(Ok(None)) => Err(AppError::new(500, "the resubmit's intent was not written")),
            Ok(Err(e)) => Err(AppError::new(
                500,
                format!("The resubmit was requested, but its task stopped ({e}): the audit log will say what became of it."),
            )),
            Err(_) => Ok(ActionDone {
                message: "Being resubmitted on Argo; the deployment's timeline shows the new workflow when Argo answers.".into(),
                link: None,
            }),
        }
    }
}

/// Checks the rules on the deployment's own facts, writes the intent, starts the call.
pub async fn resubmit(
    state: &AppState,
    user: &CurrentUser,
    deployment_id: i64,
) -> Result<Resubmitting, AppError> {
    let store = &state.store;
    let target = store
        .deployment_for_resubmit(deployment_id)
        .await?
        .ok_or_else(|| AppError::new(404, format!("no deployment {deployment_id}")))?;
    // Server-side facts only: the deployment's own environment, from the database.
    let stored = |e: crate::domain::InvalidInput| {
        AppError::new(
            409,
            format!("the stored deployment cannot be resubmitted: {e}"),
        )
    };
    let env = store
        .environments()
        .parse(&target.environment)
        .map_err(stored)?;
    let audit = Audit::new(store, &user.login, "resubmit")
        .on(Some(&target.shortname), Some(&target.environment));
    let freezes = store.active_freezes(Some(target.application_id)).await?;
    let checked = rules::check_resubmit(
        user,
        &rules::ResubmitFacts {
            application: &target.shortname,
            environment: &env,
            failed: target.status == "failed",
            has_workflow: target.workflow_namespace.is_some() && target.workflow_name.is_some(),
            freezes: &freezes,
        },
    );
    let argo_env = match checked {
        Ok(e) => e.clone(),
        Err(refusal) => {
            audit.record("refused", &refusal.to_string()).await;
            return Err(refusal.into());
        }
    };
    // Parsed again: rows written before names were checked on arrival must not reach a URL.
    let namespace = K8sName::namespace(
        target.workflow_namespace.as_deref().unwrap_or_default(),
        "workflow.namespace",
    )
    .map_err(stored)?;
    let name = K8sName::object(
        target.workflow_name.as_deref().unwrap_or_default(),
        "workflow.name",
    )
    .map_err(stored)?;
    let repo = RepoName::parse(&target.repo).map_err(stored)?;
    let version = store
        .deployment_version(deployment_id)
        .await?
        .unwrap_or_default();
    let version = GitRef::parse(&version).map_err(stored)?;
    let stage = target
        .failed_stage
        .as_deref()
        .and_then(|s| Stage::parse(s).ok())
        .unwrap_or(Stage::SmokeTests);
    let what = format!("{namespace}/{name}");
    let manual = target.manual();
    let (application_id, requested) = (target.application_id, format!("{what}: resubmitting"));
    let (audit_app, audit_env) = (target.shortname.clone(), target.environment.clone());
    let (state, actor, shortname) = (state.clone(), user.login.clone(), target.shortname.clone());
    // The intent's write and the call in one task no request owns (a request dropped at any
    // await leaves no intent without its task).
    let (began, intent_rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(async move {
        let written = state
            .store
            .begin_resubmit(
                application_id,
                deployment_id,
                env.as_str(),
                version.as_str(),
                &NewAudit {
                    actor: &actor,
                    action: "resubmit",
                    application: Some(&audit_app),
                    environment: Some(&audit_env),
                    outcome: "requested",
                    detail: &requested,
                },
            )
            .await;
        let id = match written {
            Ok(id) => {
                // The request may be gone: the call goes on regardless.
                began.send(Ok(())).ok();
                id
            }
            Err(e) => {
                began.send(Err(e)).ok();
                return None;
            }
        };
        // The demo's simulated pipeline, or the deployment's own environment's Argo server.
        let called = match &state.simulator {
            Some(sim) => Ok(sim.resubmitted_name(name.as_str())),
            None => state.pipeline.resubmit(&argo_env, &namespace, &name).await,
        };
        let (outcome, status, event) = match called {
            Ok(new_name) => {
                let url = K8sName::object(&new_name, "name")
                    .ok()
                    .and_then(|n| state.pipeline.workflow_url(&argo_env, &namespace, &n));
                let workflow = crate::model::Workflow {
                    environment: Some(argo_env.to_string()),
                    namespace: Some(namespace.to_string()),
                    name: Some(new_name.clone()),
                    url: url.clone(),
                };
                let event = NewEvent {
                    repo: repo.clone(),
                    environment: env.clone(),
                    version: version.clone(),
                    stage,
                    status: EventStatus::Started,
                    message: Some(format!("resubmitted by {actor} as {new_name}")),
                    workflow: Some(workflow),
                    delivery_id: None,
                    at_ms: None,
                };
                (Outcome::Dispatched { run_url: url }, 200, Some((event, new_name)))
            }
            Err(e) if e.certainly_did_nothing() => (
                Outcome::Refused {
                    error: format!("Nothing was resubmitted. {e}"),
                },
                argo_status(&e),
                None,
            ),
            Err(e) => (
                Outcome::NotConfirmed {
                    error: format!("Resubmit not confirmed: {e}. Check Argo for a workflow resubmitted from {what} before resubmitting again."),
                },
                argo_status(&e),
                None,
            ),
        };
        let (word, detail) = match (&outcome, &event) {
            (Outcome::Dispatched { .. }, Some((_, new_name))) => {
                ("done", format!("{what} resubmitted as {new_name}"))
            }
            (Outcome::Refused { error }, _) => ("failed", format!("{what}: {error}")),
            (_, _) => (
                "not confirmed",
                format!("{what}: the answer from Argo was lost"),
            ),
        };
        let audit = NewAudit {
            actor: &actor,
            action: "resubmit",
            application: Some(&shortname),
            environment: Some(env.as_str()),
            outcome: word,
            detail: &detail,
        };
        let written = state
            .store
            .finish_resubmit(id, &outcome, event.as_ref().map(|(e, _)| e), &audit)
            .await;
        match written {
            Ok(_) => {
                if let (Some(sim), Some((e, _))) = (&state.simulator, &event) {
                    if let Some(w) = e.workflow.clone() {
                        let run = crate::simulator::SimulatedRun {
                            repo,
                            env,
                            version,
                            promote: !manual,
                        };
                        sim.resume(state.store.clone(), run, stage, w);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, dispatch = id, "could not record a resubmit's outcome: the reconciler will mark it")
            }
        }
        let message = match (&outcome, &event) {
            (Outcome::Dispatched { .. }, Some((_, new_name))) => {
                Some(format!("Resubmitted as {new_name}."))
            }
            _ => None,
        };
        Some(Report {
            outcome,
            status,
            message,
        })
    });
    match intent_rx.await {
        Ok(Ok(())) => Ok(Resubmitting { handle }),
        Ok(Err(e)) => Err(AppError::store(e)),
        Err(_) => Err(AppError::new(
            500,
            "the resubmit's task stopped before its intent was written: nothing was sent to Argo",
        )),
    }
}

/// The status for Argo's refusal: its trouble is a bad gateway (502) whatever it said,
/// unless Release has no Argo for that environment (503).
fn argo_status(e: &crate::pipeline::OutsideError) -> u16 {
    match e {
        crate::pipeline::OutsideError::NotConfigured(_) => 503,
        _ => 502,
    }
}
