//! The facts the soak gate reads: the stints a version ran in an environment.

use super::{now_ms, Result, Store};
use crate::domain::gates::Stint;

impl Store {
    /// The stints `version` of application `application_id` ran in `environment`, newest
    /// first (at most 50): each from the time its deployment succeeded (its last update)
    /// to the next deployment there, the current one open. When Argo CD watches the
    /// environment (`argocd`), the open stint counts from when Argo CD first showed that
    /// version settled (Synced and Healthy), and there is none while it is not: a version
    /// that is unhealthy now starts its count again when it is healthy.
    pub async fn soak_stints(
        &self,
        application_id: i64,
        environment: &str,
        version: &str,
        argocd: bool,
    ) -> Result<Vec<Stint>> {
        let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT d.updated_at,
                    (SELECT MIN(n.created_at) FROM deployments n
                      WHERE n.application_id = d.application_id AND n.environment = d.environment AND n.id > d.id)
               FROM deployments d
              WHERE d.application_id = $1 AND d.environment = $2 AND d.version = $3 AND d.status = 'succeeded'
              ORDER BY d.id DESC LIMIT 50",
        )
        .bind(application_id)
        .bind(environment)
        .bind(version)
        .fetch_all(self.pool())
        .await?;
        let mut stints: Vec<Stint> = rows
            .into_iter()
            .map(|(start_ms, end_ms)| Stint { start_ms, end_ms })
            .collect();
        if argocd {
            let live: Option<(Option<String>, Option<i64>)> = sqlx::query_as(
                "SELECT version, settled_since FROM live_states WHERE application_id = $1 AND environment = $2",
            )
            .bind(application_id)
            .bind(environment)
            .fetch_optional(self.pool())
            .await?;
            let settled_since = match live {
                Some((Some(v), since)) if v == version => since,
                _ => None,
            };
            let now = now_ms();
            stints.retain(|s| s.end_ms.is_some());
            if let Some(since) = settled_since {
                stints.insert(
                    0,
                    Stint {
                        start_ms: since.min(now),
                        end_ms: None,
                    },
                );
            }
        }
        Ok(stints)
    }
}
