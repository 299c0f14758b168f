//! The facts the soak gate reads: the stints a version ran in an environment.

use super::{now_ms, sql, Result, Store};
use crate::domain::gates::Stint;

impl Store {
    /// The stints `version` of application `application_id` ran in `environment`, newest
    /// first (at most 50): each from the time its deployment succeeded there (its last
    /// succeeded pipeline event, or its record when the pipeline sent no events) to the
    /// next deployment there; the current deployment's stint is open. Times the pipeline
    /// sent are never later than now. Where Argo CD watches the environment (`argocd`),
    /// only what Argo CD saw counts: the one open stint from when it first showed that
    /// version settled (Synced and Healthy), none while it is not (an unhealthy version
    /// starts its count again when it is healthy again).
    pub async fn soak_stints(
        &self,
        application_id: i64,
        environment: &str,
        version: &str,
        argocd: bool,
    ) -> Result<Vec<Stint>> {
        let now = now_ms();
        if !argocd {
            let rows: Vec<(i64, Option<i64>, i64)> = sql::fetch_all(
                self.pool(),
                "SELECT COALESCE((SELECT MAX(e.at) FROM events e
                                   WHERE e.deployment_id = d.id AND e.status = 'succeeded' AND e.stage <> 'promotion'),
                                 d.created_at),
                        (SELECT MIN(n.created_at) FROM deployments n
                          WHERE n.application_id = d.application_id AND n.environment = d.environment AND n.id > d.id),
                        CAST(CASE WHEN EXISTS (SELECT 1 FROM current_deployments c
                          WHERE c.application_id = d.application_id AND c.environment = d.environment AND c.deployment_id = d.id)
                          THEN 1 ELSE 0 END AS BIGINT)
                   FROM deployments d
                  WHERE d.application_id = $1 AND d.environment = $2 AND d.version = $3 AND d.status = 'succeeded'
                  ORDER BY d.id DESC LIMIT 50",
                (application_id, environment, version),
            )
            .await?;
            return Ok(rows
                .into_iter()
                .map(|(start, next, current)| {
                    let start_ms = start.min(now);
                    Stint {
                        start_ms,
                        // The current deployment runs still; any other ended when the
                        // next one came (or, with no later record, at its own start).
                        end_ms: (current == 0)
                            .then(|| next.unwrap_or(start_ms).clamp(start_ms, now)),
                    }
                })
                .collect());
        }
        let mut stints = Vec::new();
        {
            let live: Option<(Option<String>, Option<i64>)> = sql::fetch_optional(
                self.pool(),
                "SELECT version, settled_since FROM live_states WHERE application_id = $1 AND environment = $2",
                (application_id, environment),
            )
            .await?;
            let settled_since = match live {
                Some((Some(v), since)) if v == version => since,
                _ => None,
            };
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
