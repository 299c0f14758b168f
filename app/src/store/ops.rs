//! Manual deploys, freezes and the audit log.

use super::alerts::insert_alert;
use super::{now_ms, sql, Result, Store};
use crate::domain::deploy_rules::Authority;
use crate::domain::{AlertEvent, AlertKind};

pub use crate::model::Freeze;

pub use crate::model::AuditEntry;

use super::audit::insert_audit;
pub use super::audit::NewAudit;

/// A freeze set or lifted, for the alert outbox: the app (none: site-wide), who, why.
fn freeze_alert(kind: AlertKind, audit: &NewAudit<'_>, reason: &str) -> AlertEvent {
    let mut alert = AlertEvent::new(kind, now_ms());
    alert.application = audit.application.map(str::to_owned);
    alert.actor = Some(audit.actor.to_owned());
    alert.message = Some(reason.to_owned());
    alert
}

/// A freeze to set: on an app (none: the whole site), of deploys or (with
/// `from_environment`) of promotion into and out of that environment.
pub struct NewFreeze<'a> {
    pub application_id: Option<i64>,
    pub from_environment: Option<&'a str>,
    /// The environments it holds (`deploy_rules::freeze_scope`); `None`: every one.
    pub environments: Option<Vec<String>>,
    pub reason: &'a str,
    pub by: &'a str,
    pub authority: Authority,
}

/// Sets `freeze` inside `tx`, with its audit entry and its alert.
pub(super) async fn insert_freeze_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    freeze: &NewFreeze<'_>,
    audit: &NewAudit<'_>,
) -> Result<i64> {
    let id = sql::scalar(
        &mut **tx,
        "INSERT INTO freezes (application_id, reason, frozen_by, created_at, authority, from_environment, environments) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        (
            freeze.application_id,
            freeze.reason,
            freeze.by,
            now_ms(),
            freeze.authority.as_str(),
            freeze.from_environment.map(str::to_owned),
            freeze.environments.as_ref().map(|e| e.join(",")),
        ),
    )
    .await?;
    insert_audit(tx, audit).await?;
    insert_alert(
        tx,
        &freeze_alert(AlertKind::FreezeSet, audit, freeze.reason),
    )
    .await?;
    Ok(id)
}

/// Who holds the in-flight deploy for an app and environment.
#[derive(Debug, Clone, PartialEq)]
pub struct LockHolder {
    pub requested_by: String,
    pub requested_at_ms: i64,
}

impl Store {
    /// The freezes in force for an application: its own and the site-wide one.
    pub async fn active_freezes(&self, app_id: Option<i64>) -> Result<Vec<Freeze>> {
        self.freezes_where(
            "(f.application_id IS NULL OR f.application_id = $1)",
            app_id.unwrap_or(-1),
        )
        .await
    }

    /// Every freeze in force, site-wide and per app, for the grid's banner and flags.
    pub async fn all_active_freezes(&self) -> Result<Vec<Freeze>> {
        self.freezes_where("$1 = $1", 0).await
    }

    async fn freezes_where(&self, condition: &str, arg: i64) -> Result<Vec<Freeze>> {
        type Row = (
            i64,
            Option<String>,
            String,
            String,
            i64,
            String,
            Option<String>,
            Option<String>,
        );
        let statement = format!(
            "SELECT f.id, a.shortname, f.reason, f.frozen_by, f.created_at, f.authority, f.from_environment, f.environments FROM freezes f
             LEFT JOIN applications a ON a.id = f.application_id
             WHERE f.lifted_at IS NULL AND {condition} ORDER BY f.id"
        );
        let rows: Vec<Row> = sql::fetch_all(&self.pool, &statement, (arg,)).await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    application,
                    reason,
                    frozen_by,
                    created_at_ms,
                    authority,
                    from_environment,
                    environments,
                )| Freeze {
                    from_environment,
                    environments: environments.map(|e| {
                        e.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    }),
                    id,
                    application,
                    reason,
                    frozen_by,
                    created_at_ms,
                    authority: Authority::from_stored(&authority),
                },
            )
            .collect())
    }

    /// Freezes deploys to an app (`app_id`) or the whole site (None). Written with its
    /// audit entry and its alert in one transaction.
    pub async fn freeze(
        &self,
        app_id: Option<i64>,
        reason: &str,
        by: &str,
        authority: Authority,
        audit: &NewAudit<'_>,
    ) -> Result<i64> {
        self.set_freeze(
            &NewFreeze {
                application_id: app_id,
                from_environment: None,
                environments: None,
                reason,
                by,
                authority,
            },
            audit,
        )
        .await
    }

    /// Sets `freeze` with its audit entry and alert, in one transaction.
    pub async fn set_freeze(&self, freeze: &NewFreeze<'_>, audit: &NewAudit<'_>) -> Result<i64> {
        let (_guard, mut tx) = self.write().await?;
        let id = insert_freeze_in(&mut tx, freeze, audit).await?;
        self.commit_and_publish(tx, "*").await?;
        Ok(id)
    }

    /// Lifts exactly these freezes (the ones the rules were checked against: a freeze set
    /// meanwhile stays); how many were lifted.
    /// Written with its audit entry in one transaction.
    pub async fn lift_freezes(&self, ids: &[i64], by: &str, audit: &NewAudit<'_>) -> Result<u64> {
        let (_guard, mut tx) = self.write().await?;
        let mut n = 0;
        for id in ids {
            n += sql::exec(
                &mut *tx,
                "UPDATE freezes SET lifted_by = $1, lifted_at = $2 WHERE lifted_at IS NULL AND id = $3",
                (by, now_ms(), *id),
            )
            .await?;
        }
        insert_audit(&mut tx, audit).await?;
        if n > 0 {
            insert_alert(
                &mut tx,
                &freeze_alert(AlertKind::FreezeLifted, audit, audit.detail),
            )
            .await?;
        }
        tx.commit().await?;
        if n > 0 {
            self.publish("*").await;
        }
        Ok(n)
    }

    /// Appends to the audit log (an entry with no action of its own: a refusal). There is
    /// no update or delete.
    pub async fn audit(&self, entry: &NewAudit<'_>) -> Result<()> {
        let (_guard, mut tx) = self.write().await?;
        insert_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest audit entries, newest first, optionally only one application's or actor's.
    pub async fn audit_log(
        &self,
        application: Option<&str>,
        actor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditEntry>> {
        sql::fetch_all(
            &self.pool,
            "SELECT id, at AS at_ms, actor, action, application, environment, outcome, detail FROM audit_log
             WHERE ($1 = '' OR application = $1) AND ($2 = '' OR actor = $2) ORDER BY at DESC, id DESC LIMIT $3",
            (application.unwrap_or(""), actor.unwrap_or(""), limit),
        )
        .await
    }

    /// A deployment's identity, for Resubmit.
    pub async fn deployment_for_resubmit(&self, id: i64) -> Result<Option<ResubmitTarget>> {
        sql::fetch_optional(
            &self.pool,
            "SELECT d.application_id, a.shortname, a.repo, d.environment, d.status, d.failed_stage,
                    d.workflow_namespace, d.workflow_name, d.trigger_kind
             FROM deployments d JOIN applications a ON a.id = d.application_id WHERE d.id = $1",
            (id,),
        )
        .await
    }

    /// Just the version of a deployment (for recording a resubmitted workflow's event).
    pub async fn deployment_version(&self, id: i64) -> Result<Option<String>> {
        sql::scalar_optional(
            &self.pool,
            "SELECT version FROM deployments WHERE id = $1",
            (id,),
        )
        .await
    }
}

/// A deployment as Resubmit reads it: whose, where, how it went, and its Argo workflow.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ResubmitTarget {
    pub application_id: i64,
    pub shortname: String,
    pub repo: String,
    pub environment: String,
    pub status: String,
    pub failed_stage: Option<String>,
    pub workflow_namespace: Option<String>,
    pub workflow_name: Option<String>,
    pub trigger_kind: String,
}

impl ResubmitTarget {
    /// Deployed by a person (a manual deployment is never promoted onwards).
    pub fn manual(&self) -> bool {
        self.trigger_kind == "manual"
    }
}
