//! Approvals of GitHub environments from Release: learning that a run Release dispatched
//! waits for a reviewer (GitHub's `workflow_job` webhook, or polling the run's pending
//! deployments with an ETag), and approving or rejecting it with the person's own token
//! (GitHub Apps cannot approve). Self-review is refused where the environment prevents it;
//! GitHub's `current_user_can_approve` has the last word.

use super::{ActionDone, Audit};
use crate::auth::CurrentUser;
use crate::domain::approval::{self, Waiting};
use crate::domain::RepoName;
use crate::error::AppError;
use crate::pipeline::{OutsideError, Pending};
use crate::state::AppState;
use crate::store::{DispatchedRun, NewWaiting};

/// What a webhook's waiting run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Recorded (or already known).
    Recorded,
    /// Not a run Release dispatched.
    NotOurs,
}

/// The dispatcher's stored GitHub token: reviews are read as the person who started the
/// run (they may read it; Release has no token of its own for this).
async fn dispatcher_token(state: &AppState, run: &DispatchedRun) -> Option<String> {
    let (Some(user_id), Some(github_id)) = (run.user_id, run.github_id) else {
        return None;
    };
    let stored = state
        .store
        .user_token_for(user_id, github_id)
        .await
        .ok()??;
    state.cipher.decrypt(&stored).ok()
}

async fn record(
    state: &AppState,
    run: &DispatchedRun,
    waiting: &[Waiting],
) -> crate::store::Result<()> {
    for w in waiting {
        let reviewers = approval::reviewers_label(&w.reviewers);
        state
            .store
            .record_waiting(
                run,
                &NewWaiting {
                    github_environment: &w.environment,
                    environment_id: Some(w.environment_id),
                    reviewers: &reviewers,
                    wait_timer_minutes: w.wait_timer_minutes,
                },
            )
            .await?;
    }
    Ok(())
}

/// GitHub's webhook says run `run_id` of `repo` waits (in `environment`, when the payload
/// names it). Its reviewers are read from GitHub as the dispatcher when possible.
pub async fn on_waiting(
    state: &AppState,
    repo: &RepoName,
    run_id: i64,
    environment: Option<&str>,
) -> crate::store::Result<Learned> {
    let Some(run) = state.store.dispatched_run(repo.as_str(), run_id).await? else {
        return Ok(Learned::NotOurs);
    };
    if let Some(token) = dispatcher_token(state, &run).await {
        match state
            .pipeline
            .pending_deployments(&token, repo, run_id, None)
            .await
        {
            // GitHub's own word: what waits (nothing, for a late or replayed event).
            Ok(Pending::Fresh { waiting, .. }) => {
                record(state, &run, &waiting).await?;
                return Ok(Learned::Recorded);
            }
            Ok(Pending::NotModified) => return Ok(Learned::Recorded),
            Err(e) => {
                tracing::warn!(error = %e, run_id, "could not read a waiting run's reviewers")
            }
        }
    }
    // GitHub could not be asked: the signed event's word, until the poller reads the run.
    if let Some(env) = environment {
        let env = crate::domain::outside_text::printable(env, 255);
        state
            .store
            .record_waiting(
                &run,
                &NewWaiting {
                    github_environment: &env,
                    environment_id: None,
                    reviewers: "",
                    wait_timer_minutes: None,
                },
            )
            .await?;
    }
    Ok(Learned::Recorded)
}

/// A GitHub App's `deployment_review` event says `approver` approved or rejected the wait
/// of run `run_id` of `repo` in `environment` (signed by GitHub: its word is taken, as the
/// poller takes GitHub's list). Audited and alerted once, however often it arrives.
pub async fn on_decided(
    state: &AppState,
    repo: &RepoName,
    run_id: i64,
    environment: &str,
    approved: bool,
    approver: &str,
    comment: &str,
) -> crate::store::Result<Learned> {
    let Some(run) = state.store.dispatched_run(repo.as_str(), run_id).await? else {
        return Ok(Learned::NotOurs);
    };
    let env = crate::domain::outside_text::printable(environment, 255);
    let by = crate::domain::outside_text::printable(approver, 100);
    let comment = crate::domain::outside_text::printable(comment, 500);
    state
        .store
        .record_review(
            &run,
            &env,
            if approved { "approved" } else { "rejected" },
            &format!("{by} (on GitHub)"),
            &comment,
        )
        .await?;
    Ok(Learned::Recorded)
}

/// One pass over the runs Release dispatched recently (or that wait): their pending
/// deployments read with the ETag of the last read, so a run that did not change costs
/// a 304 and no rate limit. A wait GitHub no longer lists was decided there.
pub async fn poll_once(state: &AppState) -> crate::store::Result<Polled> {
    let runs = state.store.runs_to_poll(6 * 3600 * 1000).await?;
    let mut polled = Polled::default();
    // A token GitHub refused (expired, or its rate limit spent) is not used again in this
    // pass: its other runs wait for the next one.
    let mut refused: std::collections::HashSet<String> = Default::default();
    for run in runs {
        let Some(token) = dispatcher_token(state, &run).await else {
            continue;
        };
        if refused.contains(&token) {
            continue;
        }
        let Ok(repo) = RepoName::parse(&run.repo) else {
            continue;
        };
        let etag = state.store.poll_etag(run.run_id).await?;
        match state
            .pipeline
            .pending_deployments(&token, &repo, run.run_id, etag.as_deref())
            .await
        {
            Ok(Pending::NotModified) => {}
            Ok(Pending::Fresh { etag, waiting }) => {
                polled.read += 1;
                record(state, &run, &waiting).await?;
                for (env, _) in state.store.waiting_of(run.deployment_id).await? {
                    if !waiting.iter().any(|w| w.environment == env) {
                        state
                            .store
                            .record_review(
                                &run,
                                &env,
                                "gone",
                                "github",
                                "no longer waiting on GitHub",
                            )
                            .await?;
                    }
                }
                // Last: a pass that failed half way reads the run again next time.
                state
                    .store
                    .set_poll_etag(run.run_id, etag.as_deref())
                    .await?;
            }
            Err(e @ (OutsideError::Unauthorized { .. } | OutsideError::Forbidden { .. })) => {
                tracing::info!(error = %e, run_id = run.run_id, "GitHub refused a dispatcher's token while polling for reviews");
                refused.insert(token);
                polled.refused += 1;
            }
            Err(e) => {
                tracing::debug!(error = %e, run_id = run.run_id, "a run's pending deployments could not be read")
            }
        }
    }
    Ok(polled)
}

/// What one pass of the poller did.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Polled {
    /// Runs whose pending deployments changed and were read.
    pub read: usize,
    /// Tokens GitHub refused (401, 403: expired, or a rate limit spent).
    pub refused: usize,
}

/// Polls every `every` until the process stops.
/// A pass in which GitHub refused a token doubles the wait before the next (at most
/// eight times `every`); a pass with no refusal goes back to `every`.
pub fn spawn_poller(state: AppState, every: std::time::Duration) {
    tokio::spawn(async move {
        let mut wait = every;
        loop {
            tokio::time::sleep(wait).await;
            wait = match poll_once(&state).await {
                Ok(p) if p.refused > 0 => (wait * 2).min(every * 8),
                Ok(_) => every,
                Err(e) => {
                    tracing::warn!(error = %e, "polling for approvals failed; trying again");
                    (wait * 2).min(every * 8)
                }
            };
        }
    });
}

/// Approves (or rejects) the waits of deployment `deployment_id` as `user`, with their
/// own GitHub token: GitHub must say they may, and an environment that prevents
/// self-review refuses the person who dispatched the run. The call and its record run
/// in a task the request does not own.
pub async fn review(
    state: &AppState,
    user: &CurrentUser,
    deployment_id: i64,
    approve: bool,
    comment: Option<&str>,
) -> Result<ActionDone, AppError> {
    let store = &state.store;
    let comment = approval::parse_comment(comment).map_err(|m| AppError::new(422, m))?;
    let run = store
        .run_of_deployment(deployment_id)
        .await?
        .ok_or_else(|| {
            AppError::new(
                404,
                format!("deployment {deployment_id} has no GitHub run Release dispatched"),
            )
        })?;
    crate::domain::deploy_rules::check_deploy_role(user, &run.environment)?;
    let audit = Audit::new(store, &user.login, "approval")
        .on(Some(&run.application), Some(&run.environment));
    let ours = store.waiting_of(deployment_id).await?;
    if ours.is_empty() {
        return Err(AppError::new(
            409,
            format!(
                "{} {} to {} does not wait for approval",
                run.application, run.version, run.environment
            ),
        ));
    }
    let Some(token) = crate::state::github_token(state, user).await? else {
        return Err(AppError::new(
            503,
            "reviewing needs your GitHub sign-in (development users have no GitHub token)",
        ));
    };
    let repo = RepoName::parse(&run.repo)?;
    let outside = |e: crate::pipeline::OutsideError| AppError::new(e.status(), e.to_string());
    let waiting = match state
        .pipeline
        .pending_deployments(&token, &repo, run.run_id, None)
        .await
        .map_err(outside)?
    {
        Pending::Fresh { waiting, .. } => waiting,
        Pending::NotModified => vec![],
    };
    let mine: Vec<Waiting> = waiting
        .into_iter()
        .filter(|w| ours.iter().any(|(env, _)| *env == w.environment))
        .collect();
    if mine.is_empty() {
        for (env, _) in &ours {
            store
                .record_review(&run, env, "gone", "github", "no longer waiting on GitHub")
                .await?;
        }
        return Err(AppError::new(
            409,
            "GitHub says this run no longer waits for a review",
        ));
    }
    for w in &mine {
        let prevent = state
            .pipeline
            .prevents_self_review(&token, &repo, &w.environment)
            .await
            .map_err(outside)?;
        let dispatcher = approval::Person {
            login: run.actor.as_deref(),
            github_id: run.github_id,
        };
        let me = approval::Person {
            login: Some(&user.login),
            github_id: user.github_id,
        };
        if let Err(why) =
            approval::may_review(&me, &dispatcher, w.current_user_can_approve, prevent)
        {
            audit.record("refused", &why).await;
            return Err(AppError::new(403, why));
        }
    }
    let ids: Vec<i64> = mine.iter().map(|w| w.environment_id).collect();
    let envs: Vec<String> = mine.iter().map(|w| w.environment.clone()).collect();
    let (task_state, login, run_for_task) = (state.clone(), user.login.clone(), run.clone());
    let task = tokio::spawn(async move {
        let state = task_state;
        let called = state
            .pipeline
            .review_pending(&token, &repo, run_for_task.run_id, &ids, approve, &comment)
            .await;
        match called {
            Ok(()) => {
                let word = if approve { "approved" } else { "rejected" };
                for env in &envs {
                    state
                        .store
                        .record_review(&run_for_task, env, word, &login, &comment)
                        .await?;
                }
                Ok::<_, crate::store::StoreError>(Ok(()))
            }
            Err(e) => {
                Audit::new(&state.store, &login, "approval")
                    .on(
                        Some(&run_for_task.application),
                        Some(&run_for_task.environment),
                    )
                    .record("refused", &format!("GitHub did not take the review: {e}"))
                    .await;
                Ok(Err(e))
            }
        }
    });
    let wait = super::deploy::answer_wait(state.pipeline.timeout());
    match tokio::time::timeout(wait, task).await {
        Ok(Ok(Ok(Ok(())))) => Ok(ActionDone {
            message: format!(
                "{} {} {} to {} on GitHub.",
                if approve { "Approved" } else { "Rejected" },
                run.application,
                run.version,
                run.environment
            ),
            link: None,
        }),
        Ok(Ok(Ok(Err(e)))) => Err(outside(e)),
        Ok(Ok(Err(e))) => Err(e.into()),
        Ok(Err(e)) => Err(AppError::new(
            500,
            format!("the review's task stopped: {e}"),
        )),
        Err(_) => Ok(ActionDone {
            message:
                "The review is on its way to GitHub; the application's page shows its outcome."
                    .into(),
            link: None,
        }),
    }
}
