//! Approvals: runs Release dispatched that wait for a reviewer of a GitHub environment,
//! written with their audit entry and alert.

use super::alerts::insert_alert;
use super::audit::insert_audit;
use super::{now_ms, sql, NewAudit, Result, Store};
use crate::domain::approval::ApprovalView;
use crate::domain::{AlertEvent, AlertKind};

/// A run Release dispatched, found by its repository and GitHub's run id.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DispatchedRun {
    pub deployment_id: i64,
    pub application: String,
    pub repo: String,
    pub environment: String,
    pub version: String,
    /// Who dispatched it (the run's actor), and whose stored token reads its reviews.
    pub actor: Option<String>,
    pub user_id: Option<i64>,
    pub github_id: Option<i64>,
    /// GitHub's run id (read from the run's link, not a column).
    #[sqlx(default)]
    pub run_id: i64,
}

/// What a run waits for, as GitHub said it.
pub struct NewWaiting<'a> {
    pub github_environment: &'a str,
    pub environment_id: Option<i64>,
    pub reviewers: &'a str,
    pub wait_timer_minutes: Option<i64>,
}

const RUN_COLUMNS: &str =
    "d.id AS deployment_id, a.shortname AS application, a.repo, d.environment, d.version,
    x.actor, x.user_id, x.github_id";

impl Store {
    /// The deployment Release dispatched whose GitHub run is `run_id` in `repo`
    /// (`owner/name`), if any.
    pub async fn dispatched_run(&self, repo: &str, run_id: i64) -> Result<Option<DispatchedRun>> {
        let statement = format!(
            "SELECT {RUN_COLUMNS} FROM deployments d
               JOIN applications a ON a.id = d.application_id
               LEFT JOIN dispatches x ON x.deployment_id = d.id AND x.run_url = d.run_url AND x.kind = 'deploy'
              WHERE a.repo = $1 AND d.run_url LIKE $2
              ORDER BY d.id DESC LIMIT 1"
        );
        let row: Option<DispatchedRun> = sql::fetch_optional(
            self.pool(),
            &statement,
            (repo, format!("%/actions/runs/{run_id}")),
        )
        .await?;
        Ok(row.map(|r| DispatchedRun { run_id, ..r }))
    }

    /// Runs to poll for reviews: dispatched by Release in the last `within_ms`, still
    /// requested or in progress, or waiting for a review (at most 100, newest first).
    pub async fn runs_to_poll(&self, within_ms: i64) -> Result<Vec<DispatchedRun>> {
        let since = now_ms() - within_ms;
        let statement = format!(
            "SELECT d.run_url, {RUN_COLUMNS} FROM deployments d
               JOIN applications a ON a.id = d.application_id
               JOIN dispatches x ON x.deployment_id = d.id AND x.run_url = d.run_url
              WHERE d.run_url IS NOT NULL AND x.kind = 'deploy'
                AND (d.status IN ('requested', 'in_progress') AND d.created_at >= $1
                     OR EXISTS (SELECT 1 FROM approvals p WHERE p.deployment_id = d.id AND p.state = 'waiting'))
              ORDER BY d.id DESC LIMIT 100"
        );
        let rows: Vec<RunUrlRow> = sql::fetch_all(self.pool(), &statement, (since,)).await?;
        Ok(rows.into_iter().filter_map(RunUrlRow::run).collect())
    }

    /// Records that `run` waits for a review; the audit entry and the
    /// `approval_requested` alert the first time only. `true` when it is new.
    pub async fn record_waiting(&self, run: &DispatchedRun, w: &NewWaiting<'_>) -> Result<bool> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let before: Option<String> = sql::scalar_optional(
            &mut *tx,
            "SELECT state FROM approvals WHERE deployment_id = $1 AND github_environment = $2",
            (run.deployment_id, w.github_environment),
        )
        .await?;
        // A decision stands: a late or replayed event does not reopen it.
        if matches!(before.as_deref(), Some("approved" | "rejected")) {
            tx.rollback().await?;
            return Ok(false);
        }
        let new = before.as_deref() != Some("waiting");
        sql::exec(
            &mut *tx,
            "INSERT INTO approvals (deployment_id, github_environment, environment_id, run_id, state, since_ms, reviewers, wait_timer_minutes, decided_by, updated_at)
             VALUES ($1, $2, $3, $4, 'waiting', $5, $6, $7, NULL, $5)
             ON CONFLICT (deployment_id, github_environment) DO UPDATE SET
               environment_id = COALESCE(excluded.environment_id, approvals.environment_id),
               reviewers = CASE WHEN excluded.reviewers = '' THEN approvals.reviewers ELSE excluded.reviewers END,
               wait_timer_minutes = COALESCE(excluded.wait_timer_minutes, approvals.wait_timer_minutes),
               since_ms = CASE WHEN approvals.state = 'waiting' THEN approvals.since_ms ELSE excluded.since_ms END,
               state = 'waiting', decided_by = NULL, updated_at = excluded.updated_at
             WHERE approvals.state IN ('waiting', 'gone')",
            (
                run.deployment_id,
                w.github_environment,
                w.environment_id,
                run.run_id,
                now,
                w.reviewers,
                w.wait_timer_minutes,
            ),
        )
        .await?;
        // What GitHub answers for the run changed: read it afresh next time.
        sql::exec(
            &mut *tx,
            "DELETE FROM github_polls WHERE run_id = $1",
            (run.run_id,),
        )
        .await?;
        if new {
            let detail = format!(
                "{} to {}: run {} waits for a reviewer of the GitHub environment {}{}",
                run.version,
                run.environment,
                run.run_id,
                w.github_environment,
                if w.reviewers.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", w.reviewers)
                }
            );
            insert_audit(
                &mut tx,
                &NewAudit {
                    actor: "github",
                    action: "approval",
                    application: Some(&run.application),
                    environment: Some(&run.environment),
                    outcome: "requested",
                    detail: &detail,
                },
            )
            .await?;
            let mut alert = AlertEvent::new(AlertKind::ApprovalRequested, now);
            alert.application = Some(run.application.clone());
            alert.environment = Some(run.environment.clone());
            alert.version = Some(run.version.clone());
            alert.deployment_id = Some(run.deployment_id);
            alert.message = Some(format!(
                "GitHub environment {}{}",
                w.github_environment,
                if w.reviewers.is_empty() {
                    String::new()
                } else {
                    format!(", reviewers: {}", w.reviewers)
                }
            ));
            insert_alert(&mut tx, &alert).await?;
        }
        self.commit_and_publish(tx, &run.application).await?;
        Ok(new)
    }

    /// A review's outcome (`approved` or `rejected` by `by`; or `gone`: no longer waiting,
    /// decided on GitHub), with its audit entry and alert, in one transaction. Only a
    /// waiting approval changes: `false` when it was not waiting.
    pub async fn record_review(
        &self,
        run: &DispatchedRun,
        github_environment: &str,
        state: &str,
        by: &str,
        comment: &str,
    ) -> Result<bool> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let changed = sql::exec(
            &mut *tx,
            "UPDATE approvals SET state = $1, decided_by = $2, updated_at = $3
              WHERE deployment_id = $4 AND github_environment = $5
                AND (state = 'waiting' OR (state = 'gone' AND $1 <> 'gone'))",
            (state, by, now, run.deployment_id, github_environment),
        )
        .await?
            > 0;
        if changed {
            let detail = format!(
                "{} to {} in the GitHub environment {}{}",
                run.version,
                run.environment,
                github_environment,
                if comment.is_empty() {
                    String::new()
                } else {
                    format!(": {comment}")
                }
            );
            insert_audit(
                &mut tx,
                &NewAudit {
                    actor: by,
                    action: "approval",
                    application: Some(&run.application),
                    environment: Some(&run.environment),
                    outcome: state,
                    detail: &detail,
                },
            )
            .await?;
            let kind = match state {
                "approved" => Some(AlertKind::Approved),
                "rejected" => Some(AlertKind::Rejected),
                _ => None,
            };
            if let Some(kind) = kind {
                let mut alert = AlertEvent::new(kind, now);
                alert.application = Some(run.application.clone());
                alert.environment = Some(run.environment.clone());
                alert.version = Some(run.version.clone());
                alert.deployment_id = Some(run.deployment_id);
                alert.actor = Some(by.to_owned());
                insert_alert(&mut tx, &alert).await?;
            }
        }
        tx.commit().await?;
        if changed {
            self.publish(&run.application).await;
        }
        Ok(changed)
    }

    /// The approvals of an application's deployments, newest first (at most 50).
    pub async fn approvals_of(&self, shortname: &str) -> Result<Vec<ApprovalView>> {
        sql::fetch_all(
            self.pool(),
            "SELECT p.deployment_id, d.environment, p.github_environment, p.state, p.since_ms, p.reviewers, p.wait_timer_minutes, p.decided_by
               FROM approvals p JOIN deployments d ON d.id = p.deployment_id JOIN applications a ON a.id = d.application_id
              WHERE a.shortname = $1 ORDER BY p.updated_at DESC LIMIT 50",
            (shortname,),
        )
        .await
    }

    /// Every waiting approval (the grid's cells show them), at most 500.
    pub async fn waiting_approvals(&self) -> Result<Vec<ApprovalView>> {
        sql::fetch_all(
            self.pool(),
            "SELECT p.deployment_id, d.environment, p.github_environment, p.state, p.since_ms, p.reviewers, p.wait_timer_minutes, p.decided_by
               FROM approvals p JOIN deployments d ON d.id = p.deployment_id
              WHERE p.state = 'waiting' ORDER BY p.since_ms LIMIT 500",
            (),
        )
        .await
    }

    /// The waiting approvals of deployment `id`: (GitHub environment, its id).
    pub async fn waiting_of(&self, deployment_id: i64) -> Result<Vec<(String, Option<i64>)>> {
        sql::fetch_all(
            self.pool(),
            "SELECT github_environment, environment_id FROM approvals WHERE deployment_id = $1 AND state = 'waiting'",
            (deployment_id,),
        )
        .await
    }

    /// The run of deployment `id`, if Release dispatched it and GitHub named the run.
    pub async fn run_of_deployment(&self, deployment_id: i64) -> Result<Option<DispatchedRun>> {
        let statement = format!(
            "SELECT d.run_url, {RUN_COLUMNS} FROM deployments d
               JOIN applications a ON a.id = d.application_id
               LEFT JOIN dispatches x ON x.deployment_id = d.id AND x.run_url = d.run_url AND x.kind = 'deploy'
              WHERE d.id = $1 AND d.run_url IS NOT NULL"
        );
        let row: Option<RunUrlRow> =
            sql::fetch_optional(self.pool(), &statement, (deployment_id,)).await?;
        Ok(row.and_then(RunUrlRow::run))
    }

    /// The ETag GitHub gave for a run's pending deployments.
    pub async fn poll_etag(&self, run_id: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, Option<String>>(
            "SELECT etag FROM github_polls WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_optional(self.pool())
        .await?
        .flatten())
    }

    pub async fn set_poll_etag(&self, run_id: i64, etag: Option<&str>) -> Result<()> {
        sql::exec(
            self.pool(),
            "INSERT INTO github_polls (run_id, etag, polled_at) VALUES ($1, $2, $3)
             ON CONFLICT (run_id) DO UPDATE SET etag = excluded.etag, polled_at = excluded.polled_at",
            (run_id, etag, now_ms()),
        )
        .await?;
        Ok(())
    }

    /// Claims a GitHub webhook delivery id: `false` when it was seen before (a replay).
    /// Forgets a claimed delivery whose handling failed, so GitHub's redelivery is acted on.
    pub async fn release_github_delivery(&self, delivery: &str) -> Result<()> {
        sql::exec(
            self.pool(),
            "DELETE FROM deliveries WHERE delivery_id = $1",
            (format!("github:{delivery}"),),
        )
        .await?;
        Ok(())
    }

    pub async fn claim_github_delivery(&self, delivery: &str) -> Result<bool> {
        let claimed: Option<String> = sql::scalar_optional(
            self.pool(),
            "INSERT INTO deliveries (delivery_id, response, created_at) VALUES ($1, '', $2)
             ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id",
            (format!("github:{delivery}"), now_ms()),
        )
        .await?;
        Ok(claimed.is_some())
    }
}

/// A run with its link, whose last segment is GitHub's run id.
#[derive(sqlx::FromRow)]
struct RunUrlRow {
    run_url: String,
    #[sqlx(flatten)]
    run: DispatchedRun,
}

impl RunUrlRow {
    fn run(self) -> Option<DispatchedRun> {
        let run_id = self.run_url.rsplit('/').next()?.parse().ok()?;
        Some(DispatchedRun { run_id, ..self.run })
    }
}
