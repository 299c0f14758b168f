//! Writing deployments and pipeline events.

use super::alerts::insert_alert;
use super::audit::{insert_audit, NewAudit};
use super::sql::{self, Params};
use super::{now_ms, Result, Store, StoreError};
use crate::domain::{
    status_from_events, AlertEvent, AlertKind, DeploymentStatus, Environment, Environments,
    EventStatus, EventSummary, GitRef, RepoName, Sha, Stage, Trigger,
};
use crate::model::Workflow;
use serde::{Deserialize, Serialize};

/// A deployment notification (`POST /deployments`) or a request made from the dashboard.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    pub repo: RepoName,
    pub environment: Environment,
    pub version: GitRef,
    pub sha: Option<Sha>,
    pub deployed_by: Option<String>,
    pub trigger: Trigger,
    pub created_at_ms: Option<i64>,
    /// The status it has until events say otherwise (see `status_from_events`).
    pub base_status: DeploymentStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyOutcome {
    pub application: String,
    pub deployment_id: i64,
    /// False when the notification attached to a deployment already recorded for that
    /// version (by an earlier event, a dashboard request or a repeated notification).
    pub created: bool,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub repo: RepoName,
    pub environment: Environment,
    pub version: GitRef,
    pub stage: Stage,
    pub status: EventStatus,
    pub message: Option<String>,
    pub workflow: Option<Workflow>,
    pub delivery_id: Option<String>,
    pub at_ms: Option<i64>,
}

/// The answer to an event, stored with its delivery id so a repeat gets the same answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventOutcome {
    pub application: String,
    pub deployment_id: i64,
    pub event_id: i64,
    pub deployment_status: DeploymentStatus,
    pub created_deployment: bool,
}

type DeploymentKey = (i64, String, Option<String>, Option<String>);

/// A workflow's four columns (`workflow_environment`, `_namespace`, `_name`, `_url`), in
/// that order, as a statement's parameters.
impl<'q> sql::Params<'q> for Workflow {
    fn add_to(self, args: &mut sqlx::any::AnyArguments<'q>) -> sqlx::Result<()> {
        (self.environment, self.namespace, self.name, self.url).add_to(args)
    }
}

/// What a recorded deployment brings along in its transaction.
#[derive(Default)]
pub struct Also<'a> {
    /// The manual deploy's in-flight slot (application id, environment) and run link.
    pub deploy_lock: Option<(i64, &'a str, Option<&'a str>)>,
    pub audit: Option<NewAudit<'a>>,
}

impl Also<'_> {
    async fn write(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        deployment_id: i64,
    ) -> Result<()> {
        if let Some((app_id, env, run_url)) = self.deploy_lock {
            sql::exec(
                &mut **tx,
                "UPDATE deploy_locks SET deployment_id = $1 WHERE application_id = $2 AND environment = $3",
                (deployment_id, app_id, env),
            )
            .await?;
            // An earlier run's link is kept until this deploy's run is known.
            sql::exec(
                &mut **tx,
                "UPDATE deployments SET run_url = COALESCE($1, run_url) WHERE id = $2",
                (run_url.map(str::to_owned), deployment_id),
            )
            .await?;
        }
        if let Some(a) = &self.audit {
            insert_audit(tx, a).await?;
        }
        Ok(())
    }
}

impl Store {
    /// Records a deployment and, in the same transaction, what `also` asks: a manual
    /// deploy's in-flight slot pointed at it (with the GitHub run link) and its audit
    /// entry. Either all of it is written or none.
    pub async fn record_deployment_with(
        &self,
        d: &NewDeployment,
        also: &Also<'_>,
    ) -> Result<NotifyOutcome> {
        let (_guard, mut tx) = self.write().await?;
        let outcome = Self::write_deployment(&mut tx, &self.environments, d, also).await?;
        self.commit_and_publish(tx, &outcome.application).await?;
        Ok(outcome)
    }

    /// The deployment's rows, inside the caller's transaction.
    pub(super) async fn write_deployment(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        envs: &Environments,
        d: &NewDeployment,
        also: &Also<'_>,
    ) -> Result<NotifyOutcome> {
        let app = Self::application_for_repo(tx, &d.repo).await?;
        let current: Option<DeploymentKey> = sql::fetch_optional(
            &mut **tx,
            "SELECT d.id, d.version, d.sha, d.deployed_by FROM current_deployments c
             JOIN deployments d ON d.id = c.deployment_id
             WHERE c.application_id = $1 AND c.environment = $2",
            (app.id, d.environment.as_str()),
        )
        .await?;
        let now = now_ms();
        if let Some((id, _, _, _)) = current.filter(|c| c.1 == d.version.as_str()) {
            sql::exec(
                &mut **tx,
                "UPDATE deployments SET sha = COALESCE(sha, $1), deployed_by = COALESCE(deployed_by, $2), updated_at = $3 WHERE id = $4",
                (d.sha.as_ref().map(|s| s.as_str().to_owned()), d.deployed_by.clone(), now, id),
            )
            .await?;
            also.write(tx, id).await?;
            return Ok(NotifyOutcome {
                application: app.shortname,
                deployment_id: id,
                created: false,
            });
        }
        let row = DeploymentRow {
            application_id: app.id,
            environment: d.environment.as_str(),
            version: d.version.as_str(),
            sha: d.sha.as_ref(),
            trigger: d.trigger,
            deployed_by: d.deployed_by.as_deref(),
            base_status: d.base_status,
            created_at: d.created_at_ms.unwrap_or(now),
        };
        let id = insert_deployment(tx, &row).await?;
        also.write(tx, id).await?;
        // A manual deploy's "requested" alert is written with the dispatch's outcome
        // (`Store::finish_dispatch`), once GitHub took it and with its run.
        if let Some(next) = envs.next(&d.environment) {
            let next_is_manual = app.manual_environments.iter().any(|e| e == next.as_str());
            let succeeded = d.base_status == DeploymentStatus::Succeeded;
            if succeeded && next_is_manual {
                let there: Option<(String, Option<String>)> = sql::fetch_optional(
                    &mut **tx,
                    "SELECT d.version, d.sha FROM current_deployments c JOIN deployments d ON d.id = c.deployment_id
                     WHERE c.application_id = $1 AND c.environment = $2",
                    (app.id, next.as_str()),
                )
                .await?;
                if crate::domain::newly_needs_manual(
                    succeeded,
                    next_is_manual,
                    (d.version.as_str(), d.sha.as_ref().map(|s| s.as_str())),
                    there.as_ref().map(|(v, s)| (v.as_str(), s.as_deref())),
                ) {
                    insert_alert(tx, &needs_manual(&app.shortname, d, next, id)).await?;
                }
            }
        }
        Ok(NotifyOutcome {
            application: app.shortname,
            deployment_id: id,
            created: true,
        })
    }

    /// Records a pipeline event. It attaches to the latest deployment of that version in
    /// that environment, creating one if the event came first. A delivery id seen before
    /// changes nothing and gets the first answer again.
    pub async fn record_event(&self, e: &NewEvent) -> Result<EventOutcome> {
        self.record_event_with(e, None).await
    }

    /// Records an event and, in the same transaction, its audit entry (a resubmit).
    pub async fn record_event_with(
        &self,
        e: &NewEvent,
        audit: Option<&NewAudit<'_>>,
    ) -> Result<EventOutcome> {
        let (_guard, mut tx) = self.write().await?;
        if let Some(delivery) = &e.delivery_id {
            // Claim the delivery id first: a concurrent duplicate on PostgreSQL waits here
            // for this transaction and then finds the row.
            let claimed: Option<String> = sql::scalar_optional(
                &mut *tx,
                "INSERT INTO deliveries (delivery_id, response, created_at) VALUES ($1, '', $2)
                 ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id",
                (delivery, now_ms()),
            )
            .await?;
            if claimed.is_none() {
                tx.rollback().await?;
                let response: String = sql::scalar(
                    &self.pool,
                    "SELECT response FROM deliveries WHERE delivery_id = $1",
                    (delivery,),
                )
                .await?;
                return serde_json::from_str(&response).map_err(|err| {
                    StoreError::Conflict(format!(
                        "delivery {delivery:?} is being processed ({err})"
                    ))
                });
            }
        }
        let outcome = Self::write_event(&mut tx, e, audit).await?;
        self.commit_and_publish(tx, &outcome.application).await?;
        Ok(outcome)
    }

    /// A pipeline event's rows (and `audit`, and the alerts they cause), inside the
    /// caller's transaction.
    pub(super) async fn write_event(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        e: &NewEvent,
        audit: Option<&NewAudit<'_>>,
    ) -> Result<EventOutcome> {
        let app = Self::application_for_repo(tx, &e.repo).await?;
        let now = now_ms();
        let at = e.at_ms.unwrap_or(now);
        let existing: Option<(i64, String, String)> = sql::fetch_optional(
            &mut **tx,
            "SELECT id, base_status, status FROM deployments WHERE application_id = $1 AND environment = $2 AND version = $3
             ORDER BY id DESC LIMIT 1",
            (app.id, e.environment.as_str(), e.version.as_str()),
        )
        .await?;
        let mut was_failed = false;
        let (deployment_id, base, created_deployment) = match existing {
            Some((id, base, status)) => {
                was_failed = status == DeploymentStatus::Failed.as_str();
                // A deploy whose dispatch was "not confirmed" is heard of: it did start.
                // It is current again (unless something newer is).
                let confirmed = sql::exec(
                    &mut **tx,
                    "UPDATE deployments SET dispatch_state = NULL WHERE id = $1 AND dispatch_state = 'not confirmed'",
                    (id,),
                )
                .await?
                    == 1;
                if confirmed {
                    sql::exec(
                        &mut **tx,
                        "INSERT INTO current_deployments (application_id, environment, deployment_id, created_at)
                         SELECT application_id, environment, id, created_at FROM deployments WHERE id = $1
                         ON CONFLICT (application_id, environment) DO UPDATE SET deployment_id = excluded.deployment_id,
                           created_at = excluded.created_at WHERE excluded.created_at >= current_deployments.created_at",
                        (id,),
                    )
                    .await?;
                }
                (
                    id,
                    DeploymentStatus::parse(&base).unwrap_or(DeploymentStatus::InProgress),
                    false,
                )
            }
            None => {
                let row = DeploymentRow::learned(
                    app.id,
                    e.environment.as_str(),
                    e.version.as_str(),
                    Trigger::Continuous,
                    DeploymentStatus::InProgress,
                    at,
                );
                let id = insert_deployment(tx, &row).await?;
                (id, DeploymentStatus::InProgress, true)
            }
        };
        let wf = e.workflow.clone().unwrap_or(Workflow {
            environment: None,
            namespace: None,
            name: None,
            url: None,
        });
        let event_id: i64 = sql::scalar(
            &mut **tx,
            "INSERT INTO events (deployment_id, stage, status, message, workflow_environment, workflow_namespace, workflow_name, workflow_url, at, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            (
                deployment_id,
                e.stage.as_str(),
                e.status.as_str(),
                e.message.clone(),
            )
                .and(wf.clone())
                .and((at, now)),
        )
        .await?;
        let rows: Vec<(String, String, i64)> = sql::fetch_all(
            &mut **tx,
            "SELECT stage, status, at FROM events WHERE deployment_id = $1 ORDER BY id",
            (deployment_id,),
        )
        .await?;
        let summaries: Vec<EventSummary> = rows
            .iter()
            .filter_map(|(stage, status, at)| {
                Some(EventSummary {
                    stage: Stage::parse(stage).ok()?,
                    status: EventStatus::parse(status).ok()?,
                    at_ms: *at,
                })
            })
            .collect();
        let (status, failed_stage) = status_from_events(base, &summaries);
        // Newly failed, decided by the row itself: of two servers recording failures of one
        // deployment at once (PostgreSQL), only the one whose update changes it alerts.
        let newly_failed = status == DeploymentStatus::Failed
            && !was_failed
            && sql::exec(
                &mut **tx,
                "UPDATE deployments SET status = $1 WHERE id = $2 AND status <> $1",
                (DeploymentStatus::Failed.as_str(), deployment_id),
            )
            .await?
                == 1;
        sql::exec(
            &mut **tx,
            "UPDATE deployments SET status = $1, failed_stage = $2,
               workflow_environment = COALESCE($3, workflow_environment), workflow_namespace = COALESCE($4, workflow_namespace),
               workflow_name = COALESCE($5, workflow_name), workflow_url = COALESCE($6, workflow_url), updated_at = $7
             WHERE id = $8",
            (status.as_str(), failed_stage.map(|s| s.as_str().to_owned()))
                .and(wf)
                .and((now, deployment_id)),
        )
        .await?;
        super::github_reports::mark_reports(tx, &[deployment_id], now).await?;
        let outcome = EventOutcome {
            application: app.shortname,
            deployment_id,
            event_id,
            deployment_status: status,
            created_deployment,
        };
        if let Some(delivery) = &e.delivery_id {
            sql::exec(
                &mut **tx,
                "UPDATE deliveries SET response = $1 WHERE delivery_id = $2",
                (
                    serde_json::to_string(&outcome).unwrap_or_default(),
                    delivery,
                ),
            )
            .await?;
        }
        if newly_failed {
            let mut alert = AlertEvent::new(AlertKind::DeploymentFailed, at);
            alert.application = Some(outcome.application.clone());
            alert.environment = Some(e.environment.as_str().to_owned());
            alert.version = Some(e.version.as_str().to_owned());
            alert.deployment_id = Some(deployment_id);
            alert.stage = failed_stage.map(|s| s.as_str().to_owned());
            alert.message = e.message.clone();
            alert.workflow_url = match e.workflow.as_ref().and_then(|w| w.url.clone()) {
                Some(url) => Some(url),
                None => {
                    sql::scalar(
                        &mut **tx,
                        "SELECT workflow_url FROM deployments WHERE id = $1",
                        (deployment_id,),
                    )
                    .await?
                }
            };
            insert_alert(tx, &alert).await?;
        }
        if let Some(a) = audit {
            insert_audit(tx, a).await?;
            if a.action == "resubmit" {
                let mut alert = AlertEvent::new(AlertKind::ResubmitRequested, now);
                alert.application = Some(outcome.application.clone());
                alert.environment = Some(e.environment.as_str().to_owned());
                alert.version = Some(e.version.as_str().to_owned());
                alert.deployment_id = Some(deployment_id);
                alert.actor = Some(a.actor.to_owned());
                alert.workflow_url = e.workflow.as_ref().and_then(|w| w.url.clone());
                insert_alert(tx, &alert).await?;
            }
        }
        Ok(outcome)
    }
}

/// A deployment row to insert.
pub(super) struct DeploymentRow<'a> {
    pub application_id: i64,
    pub environment: &'a str,
    pub version: &'a str,
    /// None: the version's own, when it is a SHA.
    pub sha: Option<&'a Sha>,
    pub trigger: Trigger,
    pub deployed_by: Option<&'a str>,
    pub base_status: DeploymentStatus,
    pub created_at: i64,
}

impl<'a> DeploymentRow<'a> {
    /// A deployment Release learns of by itself (an event that came before any
    /// notification, a version Argo CD runs): nobody named, its SHA the version's own.
    pub(super) fn learned(
        application_id: i64,
        environment: &'a str,
        version: &'a str,
        trigger: Trigger,
        base_status: DeploymentStatus,
        created_at: i64,
    ) -> Self {
        DeploymentRow {
            application_id,
            environment,
            version,
            sha: None,
            trigger,
            deployed_by: None,
            base_status,
            created_at,
        }
    }
}

/// Inserts `row`; it becomes its cell's current deployment unless a newer one is, and is
/// due for GitHub.
pub(super) async fn insert_deployment(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    row: &DeploymentRow<'_>,
) -> Result<i64> {
    let sha = row.sha.cloned().or_else(|| Sha::parse(row.version).ok());
    let id: i64 = sql::scalar(
        &mut **tx,
        "INSERT INTO deployments (application_id, environment, version, sha, trigger_kind, deployed_by, base_status, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $8) RETURNING id",
        (
            row.application_id,
            row.environment,
            row.version,
            sha.map(String::from),
            row.trigger.as_str(),
            row.deployed_by.map(str::to_owned),
            row.base_status.as_str(),
            row.created_at,
        ),
    )
    .await?;
    // The newest deployment (by its time) is the current one; an old notification sent
    // late does not take the place of a newer one.
    sql::exec(
        &mut **tx,
        "INSERT INTO current_deployments (application_id, environment, deployment_id, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (application_id, environment) DO UPDATE SET deployment_id = excluded.deployment_id, created_at = excluded.created_at
         WHERE excluded.created_at >= current_deployments.created_at",
        (row.application_id, row.environment, id, row.created_at),
    )
    .await?;
    super::github_reports::mark_reports(tx, &[id], now_ms()).await?;
    Ok(id)
}

/// `next` newly needs a manual deployment of `d`'s version.
pub(super) fn needs_manual(
    shortname: &str,
    d: &NewDeployment,
    next: &Environment,
    id: i64,
) -> AlertEvent {
    let mut alert = AlertEvent::new(
        AlertKind::NeedsManualDeployment,
        d.created_at_ms.unwrap_or_else(now_ms),
    );
    alert.application = Some(shortname.to_owned());
    alert.environment = Some(next.as_str().to_owned());
    alert.behind = Some(d.environment.as_str().to_owned());
    alert.version = Some(d.version.as_str().to_owned());
    alert.deployment_id = Some(id);
    alert
}
