//! The effect of a deploy (GitHub's workflow dispatch, or the demo's simulated pipeline)
//! and the writing of its outcome, in a task no request owns; and the reconciler of
//! intents whose outcome was lost.

use crate::domain::{Environment, GitRef, RepoName};
use crate::state::AppState;
use crate::store::{Intent, NewAudit, Outcome};
use std::time::Duration;

/// When, after a dispatch whose answer was lost, GitHub is asked for the run it started
/// (GitHub lists the run a moment after accepting the dispatch).
const LOOKUP_DELAYS: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(4)];

/// Everything the task needs, owned: it outlives the request.
pub struct DeployCall {
    pub intent: Intent,
    /// The person's GitHub token; `None` in the demo (the simulated pipeline).
    pub token: Option<String>,
    pub repo: RepoName,
    pub workflow: String,
    pub default_branch: String,
    pub environment: Environment,
    pub git_ref: GitRef,
    pub actor: String,
    /// The audit action (`deploy`, `rollback`).
    pub action: &'static str,
    /// What the deploy is, for the audit ("v5 to staging (promoted from integration)").
    pub detail: String,
    pub requested_at: chrono::DateTime<chrono::Utc>,
}

/// The outcome, for whoever still waits for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub outcome: Outcome,
    /// The status to answer with when it is not a success.
    pub status: u16,
    /// What to tell the person when it went through (a resubmit names the new workflow).
    pub message: Option<String>,
}

/// Calls GitHub (or starts the simulated pipeline) and writes the outcome. Run in a task
/// no request owns (`deploy::perform_deploy` spawns it with the intent's write).
pub async fn dispatch_and_record(state: &AppState, call: DeployCall) -> Report {
    {
        let state = state.clone();
        let (outcome, status) = match &call.token {
            None => (Outcome::Dispatched { run_url: None }, 200),
            Some(token) => dispatch(&state, token, &call).await,
        };
        let (word, detail) = audit_words(&call.detail, &outcome);
        let audit = NewAudit {
            actor: &call.actor,
            action: call.action,
            application: Some(&call.intent.application),
            environment: Some(call.environment.as_str()),
            outcome: word,
            detail: &detail,
        };
        let outcome = record(&state, call.intent.dispatch_id, outcome, &audit).await;
        let status = match outcome {
            Outcome::Dispatched { .. } => 200,
            _ => status,
        };
        if let (Some(sim), Outcome::Dispatched { .. }) = (&state.simulator, &outcome) {
            sim.start(
                state.store.clone(),
                call.repo.clone(),
                call.environment.clone(),
                call.git_ref.clone(),
            );
        }
        Report {
            outcome,
            status,
            message: None,
        }
    }
}

/// The dispatch, and when its answer was lost, the run it may have started.
async fn dispatch(state: &AppState, token: &str, call: &DeployCall) -> (Outcome, u16) {
    let sent = state
        .pipeline
        .dispatch(
            token,
            &call.repo,
            &call.workflow,
            &call.default_branch,
            &call.environment,
            &call.git_ref,
        )
        .await;
    match sent {
        Ok(run) => (
            Outcome::Dispatched {
                run_url: run.html_url,
            },
            200,
        ),
        Err(e) if e.certainly_did_nothing() => (
            Outcome::Refused {
                error: format!("Nothing was deployed. {e}"),
            },
            e.status(),
        ),
        Err(e) => {
            let since = call.requested_at - chrono::Duration::seconds(5);
            let mut found = Ok(None);
            // GitHub lists the run a moment after it took the dispatch: look twice.
            for wait in LOOKUP_DELAYS {
                tokio::time::sleep(wait).await;
                let taken = state
                    .store
                    .linked_runs(&call.intent.application, since.timestamp_millis())
                    .await
                    .unwrap_or_default();
                found = state
                    .pipeline
                    .find_dispatched_run(
                        token,
                        &call.repo,
                        &call.workflow,
                        &call.default_branch,
                        since,
                        &call.actor,
                        &taken,
                    )
                    .await;
                if !matches!(found, Ok(None)) {
                    break;
                }
            }
            match found {
                Ok(Some(url)) => (Outcome::Dispatched { run_url: Some(url) }, 200),
                Ok(None) => (
                    Outcome::NotConfirmed {
                        error: not_confirmed(&e.to_string(), call),
                    },
                    e.status(),
                ),
                Err(lookup) => (
                    Outcome::NotConfirmed {
                        error: not_confirmed(&format!("{e}; looking for its run: {lookup}"), call),
                    },
                    e.status(),
                ),
            }
        }
    }
}

fn not_confirmed(what: &str, call: &DeployCall) -> String {
    format!(
        "Dispatch not confirmed: {what}. No run of {} started by {} since {} was found on GitHub: check the Actions tab of {}; if nothing runs, deploy again.",
        call.workflow,
        call.actor,
        call.requested_at.format("%H:%M:%S UTC"),
        call.repo
    )
}

/// The outcome's audit word and detail.
pub(super) fn audit_words(what: &str, outcome: &Outcome) -> (&'static str, String) {
    match outcome {
        Outcome::Dispatched { run_url } => (
            "dispatched",
            format!(
                "{what}; GitHub run: {}",
                run_url.as_deref().unwrap_or("(no run details)")
            ),
        ),
        Outcome::Refused { error } => ("failed", format!("{what}: {error}")),
        Outcome::NotConfirmed { error } => ("not confirmed", format!("{what}: {error}")),
    }
}

/// Writes an outcome, trying again while the database is busy; if it still cannot, the
/// dispatch stays pending and the reconciler finishes it (said in the log). The outcome
/// that stands: another writer's (a reconciler's) when it finished the dispatch first.
async fn record(state: &AppState, id: i64, outcome: Outcome, audit: &NewAudit<'_>) -> Outcome {
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=6 {
        match state.store.finish_dispatch(id, &outcome, audit).await {
            Ok(true) => return outcome,
            Ok(false) => {
                return match state.store.dispatch_outcome(id).await {
                    Ok(Some(stored)) => stored,
                    _ => outcome,
                }
            }
            Err(e) if attempt < 6 => {
                tracing::warn!(error = %e, dispatch = id, attempt, "could not record a dispatch's outcome yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => tracing::error!(
                error = %e,
                dispatch = id,
                "could not record a dispatch's outcome: the reconciler will look for its run"
            ),
        }
    }
    outcome
}
