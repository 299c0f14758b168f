//! Actions' intents and outcomes, and release trains as jobs (issue 18).
//!
//! A deploy is written in two transactions around GitHub's answer, never one after it:
//! `begin_deploy` writes the intent (the deployment, requested; the in-flight slot
//! pointing at it; the audit entry; a rollback's freeze; the `dispatches` row, pending)
//! before GitHub is called, and `finish_dispatch` writes the outcome (run link, refusal,
//! or "not confirmed", with the slot released and the alert) from a task the request does
//! not own. So whatever is dropped in between (the client, the request, the process), no
//! dispatch is without its deployment and audit entry, and no slot is without its
//! deployment; a `pending` row whose task died is found by `due_dispatches`.

use super::alerts::insert_alert;
use super::audit::{insert_audit, NewAudit};
use super::deployments::Also;
use super::ops::{insert_freeze_in, LockHolder, NewFreeze};
use super::sql::Params;
use super::{now_ms, sql, NewDeployment, Result, Store};
use crate::domain::{AlertEvent, AlertKind};
use serde::{Deserialize, Serialize};

/// Everything a deploy writes before GitHub is called.
pub struct DeployIntent<'a> {
    pub application_id: i64,
    pub deployment: NewDeployment,
    pub actor: &'a str,
    /// Whose stored GitHub token looks for the run if the outcome is lost.
    pub user_id: Option<i64>,
    pub github_id: Option<i64>,
    /// A slot older than this no longer blocks (the deploy stalled).
    pub stall_ms: i64,
    /// The action's own entry ("requested").
    pub audit: NewAudit<'a>,
    /// An admin's override of a freeze, audited with the action or not at all.
    pub override_audit: Option<NewAudit<'a>>,
    /// A rollback's freeze of promotion, with its own audit entry.
    pub freeze: Option<(NewFreeze<'a>, NewAudit<'a>)>,
    /// A deploy through a closed gate: the deployment's note, the audit entry naming the
    /// holds and the reason, and its alerts; with the action or not at all.
    pub gate_override: Option<GateOverride<'a>>,
    pub train_id: Option<i64>,
}

/// A deploy through a closed gate (see `domain::gates`).
#[derive(Debug, Clone)]
pub struct GateOverride<'a> {
    /// "checks overridden", "soak overridden".
    pub note: String,
    pub audit: NewAudit<'a>,
    /// `checks_overridden`, `soak_overridden`; their deployment is set when written.
    pub alerts: Vec<crate::domain::AlertEvent>,
}

/// The intent as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub dispatch_id: i64,
    pub deployment_id: i64,
    pub application: String,
}

/// What GitHub (or Argo) made of the call.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It started: the run's link when GitHub gave one.
    Dispatched { run_url: Option<String> },
    /// It said no (401, 403, 404, 422, or it could not be reached at all): nothing runs.
    Refused { error: String },
    /// It may or may not have started (a timeout, a 5xx, the process gone) and no run
    /// could be found: the slot is released and the deployment says so.
    NotConfirmed { error: String },
}

impl Outcome {
    /// The dispatch's columns for this outcome: its state, run link and error.
    fn columns(&self) -> (&'static str, Option<String>, Option<String>) {
        match self {
            Outcome::Dispatched { run_url } => ("dispatched", run_url.clone(), None),
            Outcome::Refused { error } => ("failed", None, Some(error.clone())),
            Outcome::NotConfirmed { error } => ("unconfirmed", None, Some(error.clone())),
        }
    }
}

/// A dispatch whose outcome was never written, as the reconciler needs it (read by
/// column name).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PendingDispatch {
    pub id: i64,
    pub kind: String,
    pub deployment_id: i64,
    pub shortname: String,
    pub repo: String,
    pub workflow: String,
    pub default_branch: String,
    pub environment: String,
    pub git_ref: String,
    pub actor: String,
    pub user_id: Option<i64>,
    pub github_id: Option<i64>,
    pub created_at_ms: i64,
}

/// A dispatch as admins see it (the ones whose outcome could not be confirmed), read by
/// column name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct DispatchRow {
    pub id: i64,
    pub deployment_id: i64,
    pub application: String,
    pub environment: String,
    pub git_ref: String,
    pub actor: String,
    pub state: String,
    pub error: Option<String>,
    pub created_at_ms: i64,
}

/// A release train and its items, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRow {
    pub id: i64,
    pub environment: String,
    pub actor: String,
    pub state: String,
    pub items: Vec<TrainItemRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainItemRow {
    pub position: i64,
    pub application: String,
    /// pending, dispatching, dispatched, skipped, failed
    pub outcome: String,
    pub message: String,
    pub link: Option<String>,
}

impl Store {
    /// Takes the in-flight slot and writes the deploy's intent, all in one transaction; or
    /// says who holds the slot (and writes nothing).
    pub async fn begin_deploy(
        &self,
        i: &DeployIntent<'_>,
    ) -> Result<std::result::Result<Intent, LockHolder>> {
        let now = now_ms();
        let env = i.deployment.environment.as_str();
        let (_guard, mut tx) = self.write().await?;
        let cell = (i.application_id, env);
        sql::exec(
            &mut *tx,
            "DELETE FROM deploy_locks WHERE application_id = $1 AND environment = $2 AND (requested_at < $3
               OR deployment_id IN (SELECT id FROM deployments WHERE status IN ('succeeded', 'failed')))",
            (i.application_id, env, now - i.stall_ms),
        )
        .await?;
        let taken: Option<i64> = sql::scalar_optional(
            &mut *tx,
            "INSERT INTO deploy_locks (application_id, environment, requested_by, requested_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (application_id, environment) DO NOTHING RETURNING application_id",
            (i.application_id, env, i.actor, now),
        )
        .await?;
        if taken.is_none() {
            let holder: Option<(String, i64)> = sql::fetch_optional(
                &mut *tx,
                "SELECT requested_by, requested_at FROM deploy_locks WHERE application_id = $1 AND environment = $2",
                cell,
            )
            .await?;
            tx.rollback().await?;
            let (requested_by, requested_at_ms) = holder.unwrap_or_else(|| ("someone".into(), now));
            return Ok(Err(LockHolder {
                requested_by,
                requested_at_ms,
            }));
        }
        let previous: Option<i64> = sql::scalar_optional(
            &mut *tx,
            "SELECT deployment_id FROM current_deployments WHERE application_id = $1 AND environment = $2",
            cell,
        )
        .await?;
        let written = Self::write_deployment(
            &mut tx,
            &self.environments,
            &i.deployment,
            &Also {
                deploy_lock: Some((i.application_id, env, None)),
                audit: Some(i.audit.clone()),
            },
        )
        .await?;
        if let Some(a) = &i.override_audit {
            insert_audit(&mut tx, a).await?;
        }
        if let Some((f, a)) = &i.freeze {
            insert_freeze_in(&mut tx, f, a).await?;
        }
        // The note says how this deploy went through the gates (a row that is deployed
        // again keeps no note of an earlier override).
        sql::exec(
            &mut *tx,
            "UPDATE deployments SET gate_note = $1 WHERE id = $2",
            (
                i.gate_override.as_ref().map(|g| g.note.clone()),
                written.deployment_id,
            ),
        )
        .await?;
        if let Some(g) = &i.gate_override {
            insert_audit(&mut tx, &g.audit).await?;
            for alert in &g.alerts {
                let mut alert = alert.clone();
                alert.deployment_id = Some(written.deployment_id);
                insert_alert(&mut tx, &alert).await?;
            }
        }
        sql::exec(
            &mut *tx,
            "UPDATE deployments SET dispatch_state = 'dispatching' WHERE id = $1",
            (written.deployment_id,),
        )
        .await?;
        let dispatch_id: i64 = sql::scalar(
            &mut *tx,
            "INSERT INTO dispatches (kind, deployment_id, application_id, environment, git_ref, actor, user_id, github_id,
               created_deployment, previous_deployment_id, state, train_id, claimed_at, created_at, updated_at)
             VALUES ('deploy', $1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $11, $11) RETURNING id",
            (
                written.deployment_id,
                i.application_id,
                env,
                i.deployment.version.as_str(),
                i.actor,
                i.user_id,
                i.github_id,
                i64::from(written.created),
                previous.filter(|p| *p != written.deployment_id),
                i.train_id,
                now,
            ),
        )
        .await?;
        self.commit_and_publish(tx, &written.application).await?;
        if i.freeze.is_some() {
            self.publish("*").await;
        }
        Ok(Ok(Intent {
            dispatch_id,
            deployment_id: written.deployment_id,
            application: written.application,
        }))
    }

    /// Writes a dispatch's outcome with its audit entry (and, for a refusal, its alert),
    /// in one transaction. Only a pending dispatch changes: `false` when another writer
    /// (a reconciler on another server) already wrote it.
    pub async fn finish_dispatch(
        &self,
        id: i64,
        outcome: &Outcome,
        audit: &NewAudit<'_>,
    ) -> Result<bool> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let row: Option<(i64, i64, String, i64, Option<i64>, String, String, String, String)> =
            sql::fetch_optional(
                &mut *tx,
                "SELECT d.deployment_id, d.application_id, d.environment, d.created_deployment, d.previous_deployment_id,
                        d.state, a.shortname, d.git_ref, d.actor
                 FROM dispatches d JOIN applications a ON a.id = d.application_id WHERE d.id = $1",
                (id,),
            )
            .await?;
        let Some((dep, app_id, env, created, previous, state, shortname, git_ref, actor)) = row
        else {
            tx.rollback().await?;
            return Ok(false);
        };
        if state != "pending" {
            tx.rollback().await?;
            return Ok(false);
        }
        // The transition itself, guarded: of two writers (the live task and a reconciler,
        // on two servers), only the one that moves it out of 'pending' writes the rest.
        let (new_state, run_url, error) = outcome.columns();
        let moved = sql::exec(
            &mut *tx,
            "UPDATE dispatches SET state = $1, run_url = $2, error = $3, updated_at = $4 WHERE id = $5 AND state = 'pending'",
            (new_state, run_url, error, now, id),
        )
        .await?;
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let release_slot = "DELETE FROM deploy_locks WHERE application_id = $1 AND environment = $2 AND deployment_id = $3";
        let slot = (app_id, env.as_str(), dep);
        let mut alert = AlertEvent::new(AlertKind::DeployRequested, now);
        alert.application = Some(shortname.clone());
        alert.environment = Some(env.clone());
        alert.version = Some(git_ref);
        alert.deployment_id = Some(dep);
        alert.actor = Some(actor);
        match outcome {
            Outcome::Dispatched { run_url } => {
                sql::exec(
                    &mut *tx,
                    "UPDATE deployments SET run_url = COALESCE($1, run_url), dispatch_state = NULL, updated_at = $2 WHERE id = $3",
                    (run_url.clone(), now, dep),
                )
                .await?;
                // The deploy is requested once GitHub took it: the alert carries its run.
                alert.workflow_url = run_url.clone();
                insert_alert(&mut tx, &alert).await?;
            }
            Outcome::Refused { error } => {
                sql::exec(&mut *tx, release_slot, slot).await?;
                if created == 1 {
                    // Nothing runs: the deployment is a refused request, and what runs is
                    // what ran before.
                    sql::exec(
                        &mut *tx,
                        "UPDATE deployments SET status = 'failed', base_status = 'failed', dispatch_state = 'refused', updated_at = $1 WHERE id = $2",
                        (now, dep),
                    )
                    .await?;
                    restore_current(&mut tx, app_id, &env, dep, previous).await?;
                    super::github_reports::mark_reports(&mut tx, &[dep], now).await?;
                } else {
                    sql::exec(
                        &mut *tx,
                        "UPDATE deployments SET dispatch_state = NULL WHERE id = $1",
                        (dep,),
                    )
                    .await?;
                }
                alert.kind = Some(AlertKind::DeploymentFailed);
                alert.message = Some(format!("not dispatched: {error}"));
                insert_alert(&mut tx, &alert).await?;
            }
            Outcome::NotConfirmed { .. } => {
                sql::exec(&mut *tx, release_slot, slot).await?;
                sql::exec(
                    &mut *tx,
                    "UPDATE deployments SET dispatch_state = 'not confirmed', updated_at = $1 WHERE id = $2",
                    (now, dep),
                )
                .await?;
                // Whether it runs is not known: the grid shows what is known to have run
                // (the pipeline's notification or event makes it current if it does).
                if created == 1 {
                    restore_current(&mut tx, app_id, &env, dep, previous).await?;
                }
            }
        }
        insert_audit(&mut tx, audit).await?;
        self.commit_and_publish(tx, &shortname).await?;
        Ok(true)
    }

    /// The outcome written for a dispatch (`None` while it is pending): what the live task
    /// reports when another writer finished it first.
    pub async fn dispatch_outcome(&self, id: i64) -> Result<Option<Outcome>> {
        let row: Option<(String, Option<String>, Option<String>)> = sql::fetch_optional(
            &self.pool,
            "SELECT state, run_url, error FROM dispatches WHERE id = $1",
            (id,),
        )
        .await?;
        Ok(
            row.and_then(|(state, run_url, error)| match state.as_str() {
                "dispatched" => Some(Outcome::Dispatched { run_url }),
                "failed" => Some(Outcome::Refused {
                    error: error.unwrap_or_default(),
                }),
                "unconfirmed" => Some(Outcome::NotConfirmed {
                    error: error.unwrap_or_default(),
                }),
                _ => None,
            }),
        )
    }

    /// A resubmit's intent (the `dispatches` row, kind `resubmit`, and its audit entry),
    /// in one transaction before Argo is called: its id.
    pub async fn begin_resubmit(
        &self,
        application_id: i64,
        deployment_id: i64,
        environment: &str,
        version: &str,
        audit: &NewAudit<'_>,
    ) -> Result<i64> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let id: i64 = sql::scalar(
            &mut *tx,
            "INSERT INTO dispatches (kind, deployment_id, application_id, environment, git_ref, actor,
               created_deployment, state, claimed_at, created_at, updated_at)
             VALUES ('resubmit', $1, $2, $3, $4, $5, 0, 'pending', $6, $6, $6) RETURNING id",
            (
                deployment_id,
                application_id,
                environment,
                version,
                audit.actor,
                now,
            ),
        )
        .await?;
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A resubmit's outcome: the new workflow on the deployment's timeline (`event`, with
    /// its alert) and the audit entry, with the guarded move out of 'pending', in one
    /// transaction. `false` when another writer finished it first.
    pub async fn finish_resubmit(
        &self,
        id: i64,
        outcome: &Outcome,
        event: Option<&super::NewEvent>,
        audit: &NewAudit<'_>,
    ) -> Result<bool> {
        let (new_state, run_url, error) = outcome.columns();
        let (_guard, mut tx) = self.write().await?;
        let moved = sql::exec(
            &mut *tx,
            "UPDATE dispatches SET state = $1, run_url = $2, error = $3, updated_at = $4 WHERE id = $5 AND state = 'pending' AND kind = 'resubmit'",
            (new_state, run_url, error, now_ms(), id),
        )
        .await?;
        if moved != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        let application = match event {
            Some(e) => Some(
                Self::write_event(&mut tx, e, Some(audit))
                    .await?
                    .application,
            ),
            None => {
                insert_audit(&mut tx, audit).await?;
                audit.application.map(str::to_owned)
            }
        };
        self.commit_and_publish(tx, application.as_deref().unwrap_or("*"))
            .await?;
        Ok(true)
    }

    /// Pending dispatches whose claim is older than `claim_ms` or was released (their task
    /// died, or is on a server that died), and those created before `before_ms` (on
    /// SQLite, the only server: before this process started): the reconciler's work. A
    /// live task claims its dispatch when the intent is written.
    pub async fn due_dispatches(
        &self,
        before_ms: i64,
        claim_ms: i64,
    ) -> Result<Vec<PendingDispatch>> {
        sql::fetch_all(
            &self.pool,
            "SELECT d.id, d.kind, d.deployment_id, a.shortname, a.repo, a.workflow, a.default_branch, d.environment,
                    d.git_ref, d.actor, d.user_id, d.github_id, d.created_at AS created_at_ms
             FROM dispatches d JOIN applications a ON a.id = d.application_id
             WHERE d.state = 'pending' AND (d.created_at < $1 OR d.claimed_at IS NULL OR d.claimed_at < $2)
             ORDER BY d.id LIMIT 100",
            (before_ms, now_ms() - claim_ms),
        )
        .await
    }

    /// Claims a pending dispatch for reconciling (one server at a time): `false` when it
    /// was finished or claimed meanwhile. `before_ms` as in `due_dispatches`.
    pub async fn claim_dispatch(&self, id: i64, before_ms: i64, claim_ms: i64) -> Result<bool> {
        let now = now_ms();
        let n = self
            .write_one(
                "UPDATE dispatches SET claimed_at = $1 WHERE id = $2 AND state = 'pending'
               AND (created_at < $4 OR claimed_at IS NULL OR claimed_at < $3)",
                (now, id, now - claim_ms, before_ms),
            )
            .await?;
        Ok(n == 1)
    }

    /// Gives a claimed dispatch back, to be looked at again at the next pass.
    pub async fn release_dispatch_claim(&self, id: i64) -> Result<()> {
        self.write_one(
            "UPDATE dispatches SET claimed_at = NULL WHERE id = $1 AND state = 'pending'",
            (id,),
        )
        .await?;
        Ok(())
    }

    /// Run links already linked to a dispatch of this application in the day before
    /// `since_ms` and after (so one run is never linked to two dispatches; a unique index
    /// on `run_url` makes a second link fail its transaction).
    pub async fn linked_runs(&self, shortname: &str, since_ms: i64) -> Result<Vec<String>> {
        sql::scalars(
            &self.pool,
            "SELECT d.run_url FROM dispatches d JOIN applications a ON a.id = d.application_id
             WHERE a.shortname = $1 AND d.created_at >= $2 AND d.run_url IS NOT NULL",
            (shortname, since_ms - 86_400_000),
        )
        .await
    }

    /// Dispatches whose outcome could not be confirmed, newest first (for admins).
    pub async fn unconfirmed_dispatches(&self, limit: i64) -> Result<Vec<DispatchRow>> {
        sql::fetch_all(
            &self.pool,
            "SELECT d.id, d.deployment_id, a.shortname AS application, d.environment, d.git_ref, d.actor, d.state,
                    d.error, d.created_at AS created_at_ms
             FROM dispatches d JOIN applications a ON a.id = d.application_id
             WHERE d.state = 'unconfirmed' ORDER BY d.id DESC LIMIT $1",
            (limit,),
        )
        .await
    }

    /// A new train and its items (all pending), before anything is dispatched; or the
    /// train already running to that environment (id, who started it): one at a time
    /// there, so nobody can multiply the calls made to GitHub at once.
    pub async fn create_train(
        &self,
        environment: &str,
        actor: &str,
        applications: &[String],
    ) -> Result<std::result::Result<i64, (i64, String)>> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let running: Option<(i64, String)> = sql::fetch_optional(
            &mut *tx,
            "SELECT id, actor FROM trains WHERE environment = $1 AND state = 'running' ORDER BY id LIMIT 1",
            (environment,),
        )
        .await?;
        if let Some(r) = running {
            tx.rollback().await?;
            return Ok(Err(r));
        }
        let id: i64 = sql::scalar(
            &mut *tx,
            "INSERT INTO trains (environment, actor, state, created_at, heartbeat_at) VALUES ($1, $2, 'running', $3, $3) RETURNING id",
            (environment, actor, now),
        )
        .await?;
        for (position, app) in applications.iter().enumerate() {
            sql::exec(
                &mut *tx,
                "INSERT INTO train_items (train_id, position, application, outcome, message) VALUES ($1, $2, $3, 'pending', 'waiting for its turn')",
                (id, position as i64, app),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(id))
    }

    /// One item's state, and the train's heartbeat (a train without one for a while was
    /// left by a server that stopped).
    pub async fn set_train_item(&self, train_id: i64, item: &TrainItemRow) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        sql::exec(
            &mut *tx,
            "UPDATE train_items SET outcome = $1, message = $2, link = $3 WHERE train_id = $4 AND position = $5
               AND EXISTS (SELECT 1 FROM trains WHERE id = $4 AND state = 'running')",
            (
                &item.outcome,
                &item.message,
                item.link.clone(),
                train_id,
                item.position,
            ),
        )
        .await?;
        sql::exec(
            &mut *tx,
            "UPDATE trains SET heartbeat_at = $1 WHERE id = $2",
            (now_ms(), train_id),
        )
        .await?;
        self.commit_and_publish(tx, "*").await?;
        Ok(())
    }

    /// Ends a train with its one audit entry (every item in it), in one transaction. Items
    /// still pending or dispatching (their server stopped) are ended with `left_as`.
    pub async fn finish_train(
        &self,
        train_id: i64,
        left_as: Option<&str>,
        audit: impl FnOnce(&TrainRow) -> (String, String),
    ) -> Result<Option<TrainRow>> {
        let (_guard, mut tx) = self.write().await?;
        let Some((environment, actor, state)) = train_head(&mut *tx, train_id).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        if state != "running" {
            tx.rollback().await?;
            return Ok(None);
        }
        if let Some(why) = left_as {
            sql::exec(
                &mut *tx,
                "UPDATE train_items SET outcome = CASE WHEN outcome = 'pending' THEN 'skipped' ELSE 'failed' END, message = $1
                 WHERE train_id = $2 AND outcome IN ('pending', 'dispatching')",
                (why, train_id),
            )
            .await?;
        }
        let items = train_items(&mut *tx, train_id).await?;
        let train = TrainRow {
            id: train_id,
            environment,
            actor,
            state: "done".into(),
            items,
        };
        let (outcome, detail) = audit(&train);
        let moved = sql::exec(
            &mut *tx,
            "UPDATE trains SET state = 'done', finished_at = $1 WHERE id = $2 AND state = 'running'",
            (now_ms(), train_id),
        )
        .await?;
        if moved != 1 {
            // Ended by another writer meanwhile: one audit entry per train.
            tx.rollback().await?;
            return Ok(None);
        }
        insert_audit(
            &mut tx,
            &NewAudit {
                actor: &train.actor,
                action: "train",
                application: None,
                environment: Some(&train.environment),
                outcome: &outcome,
                detail: &detail,
            },
        )
        .await?;
        self.commit_and_publish(tx, "*").await?;
        Ok(Some(train))
    }

    /// Says a train's job is alive (between its items' changes).
    pub async fn train_heartbeat(&self, train_id: i64) -> Result<()> {
        self.write_one(
            "UPDATE trains SET heartbeat_at = $1 WHERE id = $2 AND state = 'running'",
            (now_ms(), train_id),
        )
        .await?;
        Ok(())
    }

    /// A train and its items.
    pub async fn train(&self, id: i64) -> Result<Option<TrainRow>> {
        let mut conn = self.pool.acquire().await?;
        let Some((environment, actor, state)) = train_head(&mut *conn, id).await? else {
            return Ok(None);
        };
        let items = train_items(&mut *conn, id).await?;
        Ok(Some(TrainRow {
            id,
            environment,
            actor,
            state,
            items,
        }))
    }

    /// Trains still running with no heartbeat since `before_ms`: left by a server that
    /// stopped.
    pub async fn abandoned_trains(&self, before_ms: i64) -> Result<Vec<i64>> {
        sql::scalars(
            &self.pool,
            "SELECT id FROM trains WHERE state = 'running' AND heartbeat_at < $1 ORDER BY id",
            (before_ms,),
        )
        .await
    }
}

/// Points an environment's current deployment back at `previous` (or at nothing), if it
/// still points at `dep` (a later deployment stays).
async fn restore_current(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    app_id: i64,
    env: &str,
    dep: i64,
    previous: Option<i64>,
) -> Result<()> {
    let cell = (app_id, env, dep);
    match previous {
        Some(prev) => {
            sql::exec(
                &mut **tx,
                "UPDATE current_deployments SET deployment_id = $1,
                   created_at = (SELECT created_at FROM deployments WHERE id = $1)
                 WHERE application_id = $2 AND environment = $3 AND deployment_id = $4",
                (prev,).and(cell),
            )
            .await?;
        }
        None => {
            sql::exec(
                &mut **tx,
                "DELETE FROM current_deployments WHERE application_id = $1 AND environment = $2 AND deployment_id = $3",
                cell,
            )
            .await?;
        }
    }
    Ok(())
}

/// A train's environment, who started it, and its state.
async fn train_head(
    conn: &mut sqlx::AnyConnection,
    train_id: i64,
) -> Result<Option<(String, String, String)>> {
    sql::fetch_optional(
        conn,
        "SELECT environment, actor, state FROM trains WHERE id = $1",
        (train_id,),
    )
    .await
}

async fn train_items(conn: &mut sqlx::AnyConnection, train_id: i64) -> Result<Vec<TrainItemRow>> {
    let rows: Vec<(i64, String, String, String, Option<String>)> = sql::fetch_all(
        conn,
        "SELECT position, application, outcome, message, link FROM train_items WHERE train_id = $1 ORDER BY position",
        (train_id,),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(position, application, outcome, message, link)| TrainItemRow {
                position,
                application,
                outcome,
                message,
                link,
            },
        )
        .collect())
}
