//! What really runs, as each environment's Argo CD reports it (`src/argocd.rs` observes).
//! One row per application and environment in `live_states`; a version seen running that
//! Release never heard of becomes a deployment with trigger `observed`.

use super::deployments::{insert_deployment, DeploymentRow};
use super::{now_ms, sql, Result, Store};
use crate::domain::{DeploymentStatus, Trigger};
use serde::{Deserialize, Serialize};

/// One application's state in one environment, from Argo CD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Observation {
    /// The Argo CD application's name.
    pub argocd_app: String,
    /// The running version (image tag); None when the app's image is not among the pods'.
    pub version: Option<String>,
    /// Healthy | Progressing | Degraded | Suspended | Missing | Unknown
    pub health: String,
    /// Synced | OutOfSync | Unknown
    pub sync_status: String,
    /// Running | Succeeded | Failed | Error | Terminating
    pub operation_phase: Option<String>,
    /// Why there is no version, when the images say (a rollout, a moving tag, a digest).
    pub note: Option<String>,
}

impl Observation {
    /// Settled: healthy, in sync, no operation running or failed.
    fn settled(&self) -> bool {
        self.health == "Healthy"
            && self.sync_status == "Synced"
            && !matches!(
                self.operation_phase.as_deref(),
                Some("Running" | "Failed" | "Error" | "Terminating")
            )
    }

    /// Something a person would see differs: the version, health, sync, phase or note
    /// (not the Argo CD name).
    fn shows_other_than(&self, other: &Observation) -> bool {
        self.version != other.version
            || self.health != other.health
            || self.sync_status != other.sync_status
            || self.operation_phase != other.operation_phase
            || self.note != other.note
    }
}

/// The stored live state of one cell: what Argo CD last said, when, and whether it could
/// be read since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct LiveState {
    pub environment: String,
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub observed: Observation,
    pub observed_at_ms: i64,
    pub version_since_ms: i64,
    /// Argo CD could not be read since then: the state above is old.
    pub unknown_since_ms: Option<i64>,
    pub unknown_reason: Option<String>,
}

/// A cell's stored state as recording an observation compares it.
#[derive(sqlx::FromRow)]
struct Before {
    #[sqlx(flatten)]
    state: Observation,
    unknown_since: Option<i64>,
    observed_at: i64,
}

/// What recording an observation changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    /// Something a person would see changed (version, health, sync, phase, known again).
    pub changed: bool,
    /// The version was new to Release: recorded as an `observed` deployment.
    pub recorded_deployment: bool,
}

/// The reason of a cell whose application Argo CD no longer has.
pub const NOT_IN_ARGOCD: &str = "not in Argo CD";

impl Store {
    /// Records what Argo CD reports for `shortname` in `environment`; `since_ms`: when
    /// this version started running, if known (the demo's history), else now. Two servers
    /// observing at once cannot record an `observed` deployment twice: the live row is
    /// written (and so locked, on PostgreSQL) before the history is looked at.
    pub async fn record_observation(
        &self,
        shortname: &str,
        environment: &str,
        o: &Observation,
        since_ms: Option<i64>,
    ) -> Result<Observed> {
        let Some(app) = self.application(shortname).await? else {
            return Ok(Observed::default());
        };
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let before: Option<Before> = sql::fetch_optional(
            &mut *tx,
            "SELECT argocd_app, version, health, sync_status, operation_phase, note, unknown_since, observed_at
             FROM live_states WHERE application_id = $1 AND environment = $2",
            (app.id, environment),
        )
        .await?;
        let same_version = before
            .as_ref()
            .is_some_and(|b| b.state.version == o.version);
        let changed = match &before {
            None => true,
            Some(b) => b.state.shows_other_than(o) || b.unknown_since.is_some(),
        };
        // The same state told again (a relist, a chatty watch): nothing to write, but for
        // "observed at" once a minute.
        if !changed
            && before
                .as_ref()
                .is_some_and(|b| now - b.observed_at < 60_000)
        {
            return Ok(Observed::default());
        }
        // Settled: healthy, in sync, no operation running or failed. Only then is a version
        // Release never heard of recorded in the history (a rollout in flight, a degraded
        // or failing sync is not "what runs").
        let settled = o.settled();
        let was_settled = before.as_ref().is_some_and(|b| b.state.settled());
        let since = since_ms.unwrap_or(now).min(now);
        // Soak time: settled since this observation (or what it says), kept while the same
        // version stays settled, cleared by anything else.
        let settled_since = settled.then_some(since);
        let keep_settled = i64::from(settled && same_version && was_settled);
        sql::exec(
            &mut *tx,
            "INSERT INTO live_states (application_id, environment, version, health, sync_status, operation_phase, argocd_app, observed_at, version_since, unknown_since, unknown_reason, note, settled_since)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, NULL, NULL, $11, $12)
             ON CONFLICT (application_id, environment) DO UPDATE SET version = excluded.version, health = excluded.health, note = excluded.note,
               sync_status = excluded.sync_status, operation_phase = excluded.operation_phase, argocd_app = excluded.argocd_app,
               observed_at = excluded.observed_at,
               version_since = CASE WHEN $9 = 1 THEN live_states.version_since ELSE excluded.version_since END,
               settled_since = CASE WHEN $13 = 1 THEN COALESCE(live_states.settled_since, excluded.settled_since) ELSE excluded.settled_since END,
               unknown_since = NULL, unknown_reason = NULL",
            (
                app.id,
                environment,
                o.version.clone(),
                o.health.as_str(),
                o.sync_status.as_str(),
                o.operation_phase.clone(),
                o.argocd_app.as_str(),
                now,
                i64::from(same_version),
                since,
                o.note.clone(),
                settled_since,
                keep_settled,
            ),
        )
        .await?;
        let mut recorded_deployment = false;
        if let Some(version) = o
            .version
            .as_deref()
            .filter(|_| settled && !(same_version && was_settled))
        {
            let known: Option<i64> = sql::scalar_optional(
                &mut *tx,
                "SELECT id FROM deployments WHERE application_id = $1 AND environment = $2 AND (version = $3 OR sha = $3) LIMIT 1",
                (app.id, environment, version),
            )
            .await?;
            if known.is_none() {
                let row = DeploymentRow::learned(
                    app.id,
                    environment,
                    version,
                    Trigger::Observed,
                    DeploymentStatus::Succeeded,
                    now,
                );
                insert_deployment(&mut tx, &row).await?;
                recorded_deployment = true;
            }
        }
        tx.commit().await?;
        if changed || recorded_deployment {
            self.publish(&app.shortname).await;
        }
        Ok(Observed {
            changed,
            recorded_deployment,
        })
    }

    /// Argo CD for `environment` could not be read: every cell there is "live state
    /// unknown since" the first failure (never a stale version shown as the truth).
    pub async fn mark_live_unknown(&self, environment: &str, reason: &str) -> Result<u64> {
        // Since the first failure; the reason is the latest (never a stale one).
        self.mark_cells(
            "UPDATE live_states SET unknown_since = COALESCE(unknown_since, $1), unknown_reason = $2
             WHERE environment = $3 AND (unknown_since IS NULL OR unknown_reason IS NULL OR unknown_reason <> $2)",
            (now_ms(), reason, environment),
        )
        .await
    }

    /// After a list of `environment`'s Argo CD: every application it no longer has
    /// (`present` are the names it listed) is "not in Argo CD": no version, and why.
    pub async fn mark_live_absent(&self, environment: &str, present: &[String]) -> Result<u64> {
        let rows: Vec<(i64, String, Option<String>)> = sql::fetch_all(
            &self.pool,
            "SELECT application_id, argocd_app, unknown_reason FROM live_states WHERE environment = $1",
            (environment,),
        )
        .await?;
        let present: std::collections::HashSet<&str> = present.iter().map(String::as_str).collect();
        let gone: Vec<&String> = rows
            .iter()
            .filter(|(_, name, reason)| {
                !present.contains(name.as_str()) && reason.as_deref() != Some(NOT_IN_ARGOCD)
            })
            .map(|(_, name, _)| name)
            .collect();
        let mut n = 0;
        for name in gone {
            n += self.mark_app_absent(environment, name).await?;
        }
        Ok(n)
    }

    /// Argo CD no longer has `argocd_app` in `environment` (deleted, or a relist without
    /// it): no version, "not in Argo CD" since now.
    pub async fn mark_app_absent(&self, environment: &str, argocd_app: &str) -> Result<u64> {
        self.mark_cells(
            "UPDATE live_states SET version = NULL, note = NULL, health = 'Missing', sync_status = 'Unknown', operation_phase = NULL,
               unknown_since = $1, unknown_reason = $2
             WHERE environment = $3 AND argocd_app = $4 AND (unknown_reason IS NULL OR unknown_reason <> $2)",
            (now_ms(), NOT_IN_ARGOCD, environment, argocd_app),
        )
        .await
    }

    /// Marks cells as the `statement` says, in a transaction of its own; live pages hear
    /// of it when any changed. How many did.
    async fn mark_cells<'q>(
        &self,
        statement: &'q str,
        params: impl sql::Params<'q>,
    ) -> Result<u64> {
        let n = self.write_one(statement, params).await?;
        if n > 0 {
            self.publish("*").await;
        }
        Ok(n)
    }

    /// An application's live state in every environment that has one.
    pub async fn live_states(&self, shortname: &str) -> Result<Vec<LiveState>> {
        sql::fetch_all(
            &self.pool,
            "SELECT l.environment, l.version, l.health, l.sync_status, l.operation_phase, l.argocd_app,
                    l.observed_at AS observed_at_ms, l.version_since AS version_since_ms,
                    l.unknown_since AS unknown_since_ms, l.unknown_reason, l.note
             FROM live_states l JOIN applications a ON a.id = l.application_id WHERE a.shortname = $1",
            (shortname,),
        )
        .await
    }
}
