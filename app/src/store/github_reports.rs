//! Deploys told back to GitHub's Deployments API: the outbox. `mark_reports` runs inside
//! the transaction of every change to a deployment (recorded, dispatched, moved by an
//! event), so no change is recorded without being due for GitHub, and nothing waits for
//! GitHub in the pipeline's request. Only environments Release reports are marked (one
//! writer per environment: not those whose workflow job creates GitHub deployments).
//! The worker (`src/github_deployments.rs`) claims due rows with a lease, as the alert
//! sender does, so two servers never report one deployment at the same time.

use super::{now_ms, sql, Result, Store};

/// A deployment due for GitHub, as the worker claimed it: the row's progress and what
/// the deployment is now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportJob {
    pub deployment_id: i64,
    /// The lease this claim holds: the result is recorded only while it still holds it.
    pub lease_until: i64,
    /// The changes marked when it was claimed.
    pub generation: i64,
    pub github_id: Option<i64>,
    pub reported_state: Option<String>,
    pub attempts: i64,
    pub application: String,
    pub repo: String,
    pub environment: String,
    pub version: String,
    pub sha: Option<String>,
    pub status: String,
    pub dispatch_state: Option<String>,
    pub deployed_by: Option<String>,
    pub created_at: i64,
    /// 1 when it is its cell's current deployment.
    pub is_current: i64,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum ReportResult {
    /// GitHub created its deployment (its id).
    Created(i64),
    /// GitHub took the status `state`: nothing more to do unless the deployment moved.
    Reported(String),
    /// Try again at `retry_at` (GitHub's trouble, a rate limit, the network).
    Retry { error: String, retry_at: i64 },
    /// Stopped for good, with why (GitHub's 202 auto-merge, a 409, a 422, not installed).
    Final(String),
}

/// A report for the admins' page: the ones that stopped or are failing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReportRow {
    pub deployment_id: i64,
    pub application: String,
    pub environment: String,
    pub version: String,
    pub github_id: Option<i64>,
    pub reported_state: Option<String>,
    pub attempts: i64,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: i64,
}

/// Whether any store of this process reports to GitHub. Without reporting (the
/// default) the pipeline's writes skip the outbox's statement altogether; with it, the
/// statement itself picks the reported environments, so a process whose stores differ
/// stays correct.
static REPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the deployments `ids` due for GitHub, inside the transaction of their change
/// (those in reported environments; a report that stopped for good stays stopped).
pub(super) async fn mark_reports(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ids: &[i64],
    now: i64,
) -> Result<()> {
    if ids.is_empty() || !REPORTING.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(());
    }
    let list: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
    // `WHERE` before `ON CONFLICT`: SQLite reads an INSERT ... SELECT's ON as a join's
    // without one.
    let sql = format!(
        "INSERT INTO github_reports (deployment_id, due_at, generation, updated_at)
         SELECT d.id, $1, 1, $1 FROM deployments d
          WHERE d.id IN ({}) AND d.environment IN (SELECT environment FROM github_report_environments)
         ON CONFLICT (deployment_id) DO UPDATE SET
             -- A report waiting out a rate limit or a backoff keeps waiting.
             due_at = CASE WHEN github_reports.due_at > excluded.due_at THEN github_reports.due_at ELSE excluded.due_at END,
             generation = github_reports.generation + 1, updated_at = excluded.updated_at
          WHERE github_reports.outcome IS NULL",
        list.join(", ")
    );
    let mut q = sqlx::query(&sql).bind(now);
    for id in ids {
        q = q.bind(*id);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

impl Store {
    /// The environments whose deployments Release reports to GitHub (at startup; empty:
    /// none). Deployments in other environments are never marked.
    pub async fn set_report_environments(&self, environments: &[String]) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sql::exec(&mut *tx, "DELETE FROM github_report_environments", ()).await?;
        for e in environments {
            sql::exec(
                &mut *tx,
                "INSERT INTO github_report_environments (environment) VALUES ($1)",
                (e,),
            )
            .await?;
        }
        tx.commit().await?;
        if !environments.is_empty() {
            REPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Claims up to `limit` due reports for `lease_ms`.
    pub async fn claim_due_reports(&self, limit: i64, lease_ms: i64) -> Result<Vec<ReportJob>> {
        let now = now_ms();
        let due: Vec<i64> = sql::scalars(
            self.pool(),
            "SELECT deployment_id FROM github_reports WHERE due_at <= $1 AND lease_until < $1
              ORDER BY due_at, deployment_id LIMIT $2",
            (now, limit),
        )
        .await?;
        let mut jobs = Vec::with_capacity(due.len());
        for id in due {
            let lease = now + lease_ms;
            let (_guard, mut tx) = self.write().await?;
            let taken = sql::exec(
                &mut *tx,
                "UPDATE github_reports SET lease_until = $1
                  WHERE deployment_id = $2 AND due_at <= $3 AND lease_until < $3",
                (lease, id, now),
            )
            .await?;
            if taken != 1 {
                tx.rollback().await?;
                continue;
            }
            let job: Option<ReportJob> = sql::fetch_optional(
                &mut *tx,
                "SELECT r.deployment_id, r.lease_until, r.generation, r.github_id, r.reported_state,
                        r.attempts, a.shortname AS application, a.repo, d.environment, d.version,
                        d.sha, d.status, d.dispatch_state, d.deployed_by, d.created_at,
                        (SELECT COUNT(*) FROM current_deployments c WHERE c.deployment_id = d.id) AS is_current
                   FROM github_reports r
                   JOIN deployments d ON d.id = r.deployment_id
                   JOIN applications a ON a.id = d.application_id
                  WHERE r.deployment_id = $1",
                (id,),
            )
            .await?;
            tx.commit().await?;
            jobs.extend(job);
        }
        Ok(jobs)
    }

    /// Records what one attempt on `job` did, while its lease holds. A report whose
    /// deployment moved since the claim stays due.
    pub async fn record_report(&self, job: &ReportJob, result: &ReportResult) -> Result<bool> {
        let now = now_ms();
        let q = match result {
            ReportResult::Created(github_id) => sqlx::query(
                "UPDATE github_reports SET github_id = $1, last_error = NULL, updated_at = $2
                  WHERE deployment_id = $3 AND lease_until = $4",
            )
            .bind(*github_id),
            ReportResult::Reported(state) => sqlx::query(
                "UPDATE github_reports SET reported_state = $1, attempts = 0, last_error = NULL, lease_until = 0,
                        due_at = CASE WHEN generation = $5 THEN NULL ELSE due_at END, updated_at = $2
                  WHERE deployment_id = $3 AND lease_until = $4",
            )
            .bind(state.clone()),
            ReportResult::Retry { error, .. } => sqlx::query(
                "UPDATE github_reports SET last_error = $1, attempts = attempts + 1, lease_until = 0,
                        due_at = CASE WHEN generation = $5 THEN $6 ELSE due_at END, updated_at = $2
                  WHERE deployment_id = $3 AND lease_until = $4",
            )
            .bind(error.clone()),
            ReportResult::Final(why) => sqlx::query(
                "UPDATE github_reports SET outcome = $1, attempts = attempts + 1, lease_until = 0, due_at = NULL, updated_at = $2
                  WHERE deployment_id = $3 AND lease_until = $4",
            )
            .bind(why.clone()),
        }
        .bind(now)
        .bind(job.deployment_id)
        .bind(job.lease_until);
        let q = match result {
            ReportResult::Reported(_) => q.bind(job.generation),
            ReportResult::Retry { retry_at, .. } => q.bind(job.generation).bind(*retry_at),
            _ => q,
        };
        let (_guard, mut tx) = self.write().await?;
        let done = q.execute(&mut *tx).await?.rows_affected() == 1;
        tx.commit().await?;
        Ok(done)
    }

    /// Forgets what only mattered for a while: reports that reached a final state
    /// (success, failure, error) and were not touched since `before_ms` (those that
    /// stopped for good stay, for admins), GitHub webhook delivery ids (GitHub redelivers
    /// for three days) and the ETags of runs polled for reviews.
    pub async fn prune_github(&self, before_ms: i64) -> Result<()> {
        const PRUNE: [&str; 3] = [
            "DELETE FROM github_reports WHERE due_at IS NULL AND outcome IS NULL AND updated_at < $1
               AND reported_state IN ('success', 'failure', 'error')",
            "DELETE FROM deliveries WHERE delivery_id LIKE 'github:%' AND created_at < $1",
            "DELETE FROM github_polls WHERE polled_at < $1",
        ];
        let (_guard, mut tx) = self.write().await?;
        for statement in PRUNE {
            sql::exec(&mut *tx, statement, (before_ms,)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The reports admins look at: stopped for good or failing, newest first.
    pub async fn troubled_reports(&self, limit: i64) -> Result<Vec<ReportRow>> {
        sql::fetch_all(
            self.pool(),
            "SELECT r.deployment_id, a.shortname AS application, d.environment, d.version, r.github_id,
                    r.reported_state, r.attempts, r.outcome, r.last_error, r.updated_at
               FROM github_reports r
               JOIN deployments d ON d.id = r.deployment_id
               JOIN applications a ON a.id = d.application_id
              WHERE r.outcome IS NOT NULL OR r.last_error IS NOT NULL
              ORDER BY r.updated_at DESC, r.deployment_id DESC LIMIT $1",
            (limit,),
        )
        .await
    }
}
