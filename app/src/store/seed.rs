//! Bulk loads for the benchmark and the demo: many deployments at once, and
//! `current_deployments` rebuilt from them.

use super::{now_ms, sql, Result, Store};
use crate::domain::{DeploymentStatus, Trigger};

/// A past deployment for the demo's history, with its commit's time.
#[derive(Debug, Clone)]
pub struct PastDeployment {
    pub application_id: i64,
    pub environment: String,
    pub version: String,
    pub sha: String,
    pub trigger: Trigger,
    pub deployed_by: String,
    pub status: DeploymentStatus,
    pub at_ms: i64,
    /// When its commit was made (the lead time's start).
    pub committed_at_ms: i64,
}

impl Store {
    /// Inserts a made-up history at once (the demo's 90 days), in the order of `rows`
    /// (ids follow it: give them oldest first), with each commit's time as if GitHub had
    /// said it. Keeps `current_deployments` right.
    pub async fn bulk_insert_history(&self, rows: &[PastDeployment]) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        for chunk in rows.chunks(100) {
            let mut sql = String::from(
                "INSERT INTO deployments (application_id, environment, version, sha, trigger_kind, deployed_by, base_status, status, created_at, updated_at) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 9;
                if i > 0 {
                    sql.push(',');
                }
                // status takes base_status's parameter.
                sql.push_str(&super::row_params(b, &[1, 2, 3, 4, 5, 6, 7, 7, 8, 9]));
            }
            let values: Vec<_> = chunk
                .iter()
                .map(|r| {
                    (
                        r.application_id,
                        r.environment.as_str(),
                        r.version.as_str(),
                        r.sha.as_str(),
                        r.trigger.as_str(),
                        r.deployed_by.as_str(),
                        r.status.as_str(),
                        r.at_ms,
                        // A pipeline run takes a few minutes.
                        r.at_ms + 6 * 60_000,
                    )
                })
                .collect();
            sql::exec(&mut *tx, &sql, values).await?;
        }
        let now = now_ms();
        for r in rows {
            sql::exec(
                &mut *tx,
                "INSERT INTO commit_times (application_id, sha, day, committed_at, looked_up_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (application_id, sha) DO NOTHING",
                (
                    r.application_id,
                    r.sha.as_str(),
                    r.at_ms.div_euclid(86_400_000),
                    r.committed_at_ms,
                    now,
                ),
            )
            .await?;
        }
        refresh_current(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Inserts many deployments at once, for the benchmark and the demo: `rows` are
    /// (application id, environment, version, created_at). Keeps `current_deployments` right.
    pub async fn bulk_insert_deployments(&self, rows: &[(i64, String, String, i64)]) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        for chunk in rows.chunks(500) {
            let mut sql = String::from(
                "INSERT INTO deployments (application_id, environment, version, sha, trigger_kind, deployed_by, base_status, status, created_at, updated_at) VALUES ",
            );
            for (i, _) in chunk.iter().enumerate() {
                let b = i * 4;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, NULL, 'continuous', 'bench', 'succeeded', 'succeeded', ${}, ${})",
                    b + 1, b + 2, b + 3, b + 4, b + 4
                ));
            }
            let values: Vec<_> = chunk
                .iter()
                .map(|(app, env, version, at)| (*app, env.as_str(), version.as_str(), *at))
                .collect();
            sql::exec(&mut *tx, &sql, values).await?;
        }
        refresh_current(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// For the benchmark only: adds about `count` made-up deployments spread evenly over
    /// every application and environment, then points `current_deployments` at the newest
    /// of each.
    /// Bulk-loads `count` succeeded deployments spread evenly over the applications and
    /// environments (benchmarks): the n-th of a cell at `start_ms + n * step_ms`, an hour
    /// later in each next environment.
    pub async fn seed_history(&self, count: i64, start_ms: i64, step_ms: i64) -> Result<()> {
        let ids: Vec<i64> =
            sql::scalars(&self.pool, "SELECT id FROM applications ORDER BY id", ()).await?;
        let envs: Vec<String> = self.environments.owned_names();
        let cells = (ids.len() * envs.len()) as i64;
        if cells == 0 {
            return Ok(());
        }
        let (_guard, mut tx) = self.write().await?;
        let mut cell = 0;
        for id in &ids {
            for (env_index, env) in envs.iter().enumerate() {
                // Spread the remainder over the first cells so the total is exact.
                let rows = count / cells + i64::from(cell < count % cells);
                cell += 1;
                if rows == 0 {
                    continue;
                }
                sql::exec(
                    &mut *tx,
                    "INSERT INTO deployments (application_id, environment, version, sha, trigger_kind, deployed_by, base_status, status, created_at, updated_at)
                     WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < $1)
                     SELECT $2, $3, 'v' || CAST(n AS TEXT), NULL, 'continuous', 'bench', 'succeeded', 'succeeded', $4 + n * $5, $4 + n * $5
                     FROM seq",
                    (
                        rows,
                        *id,
                        env.as_str(),
                        start_ms + env_index as i64 * 3_600_000,
                        step_ms,
                    ),
                )
                .await?;
            }
        }
        refresh_current(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Rebuilds `current_deployments` from the whole history (bulk loads only).
async fn refresh_current(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sql::exec(
        &mut **tx,
        "INSERT INTO current_deployments (application_id, environment, deployment_id, created_at)
         SELECT application_id, environment, MAX(id), MAX(created_at) FROM deployments GROUP BY application_id, environment
         ON CONFLICT (application_id, environment) DO UPDATE SET deployment_id = excluded.deployment_id, created_at = excluded.created_at",
        (),
    )
    .await?;
    Ok(())
}
