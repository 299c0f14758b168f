//! The effect of a deploy (GitHub's workflow dispatch, or the demo's simulated pipeline)
//! and the writing of its outcome, in a task no request owns; and the reconciler of
//! intents whose outcome was lost.

use crate::domain::{Environment, GitRef, RepoName};
use crate::pipeline::OutsideError;
use crate::state::AppState;
use crate::store::{Intent, NewAudit, Outcome, PendingDispatch};
use std::time::Duration;

/// When, after a dispatch whose answer was lost, GitHub is asked for the run it started
/// (GitHub lists the run a moment after accepting the dispatch).
const LOOKUP_DELAYS: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(4)];

/// A reconciler's claim on a pending dispatch lasts this long (then another may take it).
const CLAIM_MS: i64 = 120_000;

/// How long after a dispatch GitHub is given to list the run it started.
const RUN_APPEARS_MS: i64 = 20_000;

/// A pending dispatch whose run cannot be looked up (GitHub down) is given up as "not
/// confirmed" after this long.
const GIVE_UP_MS: i64 = 3_600_000;

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

/// Calls GitHub (or starts the simulated pipeline) and writes the outcome, in a task of
/// its own: dropping the returned handle (the request gone) changes nothing.
pub fn spawn_deploy(state: AppState, call: DeployCall) -> tokio::task::JoinHandle<Report> {
    tokio::spawn(async move {
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
    })
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
fn audit_words(what: &str, outcome: &Outcome) -> (&'static str, String) {
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

/// Finishes the pending dispatches created before `before_ms` whose task is gone: links
/// the run each started, or says "dispatch not confirmed" and frees the slot. How many
/// were finished.
pub async fn reconcile(state: &AppState, before: i64) -> crate::store::Result<usize> {
    let mut done = 0;
    for p in state.store.due_dispatches(before, CLAIM_MS).await? {
        if !state.store.claim_dispatch(p.id, before, CLAIM_MS).await? {
            continue;
        }
        if p.kind == "resubmit" {
            // Argo's answer was lost with the process: say so (Argo's workflows are not
            // looked through for it).
            let error = format!(
                "Resubmit not confirmed: the server stopped while Argo was resubmitting a workflow of {} {} in {}. Check Argo before resubmitting again.",
                p.shortname, p.git_ref, p.environment
            );
            let audit = NewAudit {
                actor: &p.actor,
                action: "resubmit",
                application: Some(&p.shortname),
                environment: Some(&p.environment),
                outcome: "not confirmed",
                detail: &error,
            };
            if state
                .store
                .finish_resubmit(
                    p.id,
                    &Outcome::NotConfirmed {
                        error: error.clone(),
                    },
                    None,
                    &audit,
                )
                .await?
            {
                done += 1;
            }
            continue;
        }
        let Some(outcome) = reconcile_one(state, &p).await else {
            state.store.release_dispatch_claim(p.id).await?;
            continue;
        };
        let what = format!(
            "{} to {} (found pending after a restart)",
            p.git_ref, p.environment
        );
        let (word, detail) = audit_words(&what, &outcome);
        let audit = NewAudit {
            actor: &p.actor,
            action: "deploy",
            application: Some(&p.shortname),
            environment: Some(&p.environment),
            outcome: word,
            detail: &detail,
        };
        if state.store.finish_dispatch(p.id, &outcome, &audit).await? {
            tracing::info!(dispatch = p.id, application = %p.shortname, outcome = word, "reconciled a dispatch whose outcome was lost");
            done += 1;
        }
    }
    Ok(done)
}

/// What became of one lost dispatch; `None`: ask again later (GitHub did not answer).
async fn reconcile_one(state: &AppState, p: &PendingDispatch) -> Option<Outcome> {
    let since = chrono::DateTime::from_timestamp_millis(p.created_at_ms - 5_000)
        .unwrap_or_else(chrono::Utc::now);
    let not_confirmed = |why: String| {
        Outcome::NotConfirmed {
        error: format!(
            "Dispatch not confirmed: {why}. Check the Actions tab of {} for a run of {} started by {} since {}; if nothing runs, deploy again.",
            p.repo,
            p.workflow,
            p.actor,
            since.format("%Y-%m-%d %H:%M:%S UTC")
        ),
    }
    };
    if state.simulator.is_some() {
        return Some(not_confirmed(
            "the server stopped before the simulated pipeline started".into(),
        ));
    }
    let token = match (p.user_id, p.github_id) {
        (Some(u), Some(g)) => match state.store.user_token_for(u, g).await {
            Ok(Some(ct)) => state.cipher.decrypt(&ct).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "reconcile: could not read the person's token");
                return None;
            }
        },
        _ => None,
    };
    let Some(token) = token else {
        return Some(not_confirmed(format!(
            "there is no stored GitHub sign-in of {} to look for the run with",
            p.actor
        )));
    };
    let repo = match RepoName::parse(&p.repo) {
        Ok(r) => r,
        Err(e) => return Some(not_confirmed(e.to_string())),
    };
    let taken = state
        .store
        .linked_runs(&p.shortname, since.timestamp_millis())
        .await
        .ok()?;
    match state
        .pipeline
        .find_dispatched_run(
            &token,
            &repo,
            &p.workflow,
            &p.default_branch,
            since,
            &p.actor,
            &taken,
        )
        .await
    {
        Ok(Some(url)) => Some(Outcome::Dispatched { run_url: Some(url) }),
        // GitHub may list the run a little later: ask again for a while.
        Ok(None) if crate::store::now_ms() - p.created_at_ms < RUN_APPEARS_MS => None,
        Ok(None) => Some(not_confirmed(
            "the server stopped between the dispatch and its record, and GitHub has no run for it"
                .into(),
        )),
        Err(
            e @ (OutsideError::Timeout { .. }
            | OutsideError::Server { .. }
            | OutsideError::Interrupted { .. }
            | OutsideError::Unreachable { .. }),
        ) if crate::store::now_ms() - p.created_at_ms < GIVE_UP_MS => {
            tracing::warn!(error = %e, dispatch = p.id, "reconcile: GitHub did not answer; trying again later");
            None
        }
        Err(e) => Some(not_confirmed(format!("GitHub could not be asked: {e}"))),
    }
}

/// Reconciles now and then every `every`: dispatches whose live task's claim ran out
/// (a live task takes far less than `CLAIM_MS`), and, when this is the only server
/// (SQLite), every one written before this process started (their tasks died with the
/// last process).
pub fn spawn_reconciler(state: AppState, every: Duration, only_server: bool) {
    let started = crate::store::now_ms();
    tokio::spawn(async move {
        loop {
            let trains_aged = crate::store::now_ms() - super::train::ABANDONED_MS;
            let (before, trains_before) = if only_server {
                (started, trains_aged.max(started))
            } else {
                (i64::MIN, trains_aged)
            };
            if let Err(e) = reconcile(&state, before).await {
                tracing::warn!(error = %e, "reconciling lost dispatches failed; trying again");
            }
            if let Err(e) = super::train::end_abandoned(&state, trains_before).await {
                tracing::warn!(error = %e, "ending abandoned trains failed; trying again");
            }
            tokio::time::sleep(every).await;
        }
    });
}
