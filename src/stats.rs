//! The stats task: keeps the daily delivery counts (`stats_daily`) up to date, a few
//! seconds behind the pipeline, so `/stats` reads a few hundred rows whatever the length
//! of the history. With `RELEASE_GITHUB_STATS_TOKEN` it also asks GitHub when each commit
//! deployed to production was made, for the lead time from the commit.

use app::domain::{RepoName, Sha};
use app::pipeline::{OutsideError, Pipeline};
use app::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Commits asked of GitHub per pass (GitHub allows 5,000 calls an hour per token).
const COMMITS_PER_PASS: i64 = 20;

pub struct StatsSettings {
    pub every: Duration,
    /// A read-only GitHub token (`contents: read`) for commit times; none: lead time is
    /// measured from the version's first deployment.
    pub github_token: Option<String>,
}

/// The longest pause between passes.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Runs a pass every `every`, or, when passes get long (a busy day is counted again as a
/// whole), after ten times as long as the last pass took: the task uses at most about a
/// tenth of a core, and under a heavy load the stats lag a little more instead of taking
/// the pipeline's share. A pass that fails (or panics) is logged and tried again: nothing
/// it did is half-done, each write is one transaction.
pub fn spawn(store: Store, pipeline: Arc<Pipeline>, settings: StatsSettings) {
    tokio::spawn(async move {
        let settings = Arc::new(settings);
        let mut failing = false;
        let mut pause = settings.every;
        loop {
            tokio::time::sleep(pause).await;
            if store.pool().is_closed() {
                return;
            }
            let started = std::time::Instant::now();
            let pass = tokio::spawn(pass(store.clone(), pipeline.clone(), settings.clone()));
            match pass.await {
                Ok(Ok(())) => {
                    if failing {
                        tracing::info!("stats: counting again");
                    }
                    failing = false;
                }
                Ok(Err(e)) => {
                    if !failing {
                        tracing::warn!(error = %e, "stats: could not count; trying again");
                    }
                    failing = true;
                }
                Err(e) => tracing::error!(error = %e, "stats: a pass panicked; trying again"),
            }
            pause = (started.elapsed() * 10).clamp(settings.every, MAX_PAUSE.max(settings.every));
        }
    });
}

async fn pass(
    store: Store,
    pipeline: Arc<Pipeline>,
    settings: Arc<StatsSettings>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let github = settings
        .github_token
        .as_deref()
        .filter(|_| pipeline.github_api.is_some());
    if let Some(work) = store.stats_work().await? {
        if github.is_some() {
            store.queue_commits(&work).await?;
        }
        store.count_stats(&work).await?;
        metrics::histogram!("release_stats_pass_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(days = work.days.len(), "stats: counted");
    }
    if let Some(token) = github {
        let mut days = Vec::new();
        for (app_id, repo, sha) in store.pending_commits(COMMITS_PER_PASS).await? {
            let answer = match (RepoName::parse(&repo), Sha::parse(&sha)) {
                (Ok(repo), Ok(sha)) => pipeline.commit_time(token, &repo, &sha).await,
                _ => Ok(None),
            };
            match answer {
                Ok(at) => {
                    if let Some(day) = store.save_commit_time(app_id, &sha, at).await? {
                        days.push(day);
                    }
                }
                // Credentials or a rate limit: stop asking until the next pass.
                Err(e @ (OutsideError::Unauthorized { .. } | OutsideError::Forbidden { .. })) => {
                    tracing::warn!(error = %e, "stats: GitHub refused a commit lookup");
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "stats: GitHub did not answer a commit lookup");
                    break;
                }
            }
        }
        days.sort_unstable();
        days.dedup();
        if !days.is_empty() {
            store.recount_stats(&days).await?;
        }
    }
    Ok(())
}
