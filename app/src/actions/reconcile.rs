//! The reconciler: intents whose outcome was never written (the process died between
//! GitHub's answer and the record; a server that died) are found and finished, the run
//! each started linked, or "not confirmed" with the slot released; and trains left
//! running by a server that stopped are ended.

use super::dispatch::audit_words;
use crate::domain::RepoName;
use crate::pipeline::OutsideError;
use crate::state::AppState;
use crate::store::{NewAudit, Outcome, PendingDispatch};
use std::time::Duration;

/// A reconciler's claim on a pending dispatch lasts this long (then another may take it).
const CLAIM_MS: i64 = 120_000;

/// How long after a dispatch GitHub is given to list the run it started.
const RUN_APPEARS_MS: i64 = 20_000;

/// A pending dispatch whose run cannot be looked up (GitHub down) is given up as "not
/// confirmed" after this long.
const GIVE_UP_MS: i64 = 3_600_000;

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
