//! The effect of a deploy (GitHub's workflow dispatch, or the demo's simulated pipeline)
//! and the writing of its outcome, in a task no request owns; and the reconciler of
//! intents whose outcome was lost.

use crate::domain::{Environment, GitRef, RepoName};
use crate::pipeline::OutsideError;
use crate::state::AppState;
use crate::store::{Intent, NewAudit, Outcome, PendingDispatch};
use std::time::Duration;

/// How long after a dispatch whose answer was lost GitHub is asked for the run it started
/// (GitHub creates the run a moment after accepting the dispatch).
const LOOKUP_DELAY: Duration = Duration::from_secs(2);

/// A reconciler's claim on a pending dispatch lasts this long (then another may take it).
const CLAIM_MS: i64 = 120_000;

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
        record(&state, call.intent.dispatch_id, &outcome, &audit).await;
        if let (Some(sim), Outcome::Dispatched { .. }) = (&state.simulator, &outcome) {
            sim.start(
                state.store.clone(),
                call.repo.clone(),
                call.environment.clone(),
                call.git_ref.clone(),
            );
        }
        Report { outcome, status }
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
            tokio::time::sleep(LOOKUP_DELAY).await;
            let since = call.requested_at - chrono::Duration::seconds(5);
            let taken = state
                .store
                .linked_runs(&call.intent.application, since.timestamp_millis())
                .await
                .unwrap_or_default();
            match state
                .pipeline
                .find_dispatched_run(
                    token,
                    &call.repo,
                    &call.workflow,
                    since,
                    &call.actor,
                    &taken,
                )
                .await
            {
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
/// dispatch stays pending and the reconciler finishes it (said in the log).
async fn record(state: &AppState, id: i64, outcome: &Outcome, audit: &NewAudit<'_>) {
    let mut wait = Duration::from_millis(100);
    for attempt in 1..=6 {
        match state.store.finish_dispatch(id, outcome, audit).await {
            Ok(_) => return,
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
}

/// Finishes the pending dispatches created before `before_ms` whose task is gone: links
/// the run each started, or says "dispatch not confirmed" and frees the slot. How many
/// were finished.
pub async fn reconcile(state: &AppState, before: i64) -> crate::store::Result<usize> {
    let mut done = 0;
    for p in state.store.due_dispatches(before, CLAIM_MS).await? {
        if !state.store.claim_dispatch(p.id, CLAIM_MS).await? {
            continue;
        }
        let Some(outcome) = reconcile_one(state, &p).await else {
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
        .find_dispatched_run(&token, &repo, &p.workflow, since, &p.actor, &taken)
        .await
    {
        Ok(Some(url)) => Some(Outcome::Dispatched { run_url: Some(url) }),
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

/// Reconciles now and then every `every`: dispatches older than `older_than` (longer than
/// a live task can take), and at the first pass, when this is the only server (SQLite),
/// every one written before this process started (their tasks died with the last one).
pub fn spawn_reconciler(state: AppState, every: Duration, older_than: Duration, only_server: bool) {
    let started = crate::store::now_ms();
    tokio::spawn(async move {
        let mut first = only_server;
        loop {
            let now = crate::store::now_ms();
            let aged = now - older_than.as_millis() as i64;
            let trains_aged = now - super::train::ABANDONED_MS;
            let (before, trains_before) = if first {
                (aged.max(started), trains_aged.max(started))
            } else {
                (aged, trains_aged)
            };
            first = false;
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
