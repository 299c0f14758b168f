//! The alert outbox. `insert_alert` runs inside the transaction of the change that causes
//! the alert, so a change is never recorded without its alert, nor an alert without its
//! change. The sender (`src/alerts.rs`) then fans each event out to the receivers whose
//! teams match, one delivery row each, and claims due deliveries with a lease, so two
//! servers never send one delivery at the same time and a server killed mid-send leaves
//! it to be sent again once the lease runs out (at least once).

use super::sql::Params;
use super::{now_ms, sql, Result, Store};
use crate::domain::{AlertEvent, AlertKind, DeliveryRow};

/// Appends `event` to the outbox inside `tx`.
pub(super) async fn insert_alert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    event: &AlertEvent,
) -> Result<i64> {
    let kind = event.kind.map_or("unknown", |k| k.as_str());
    let payload = serde_json::to_string(event)
        .map_err(|e| super::StoreError::Conflict(format!("an alert could not be encoded: {e}")))?;
    sql::scalar(
        &mut **tx,
        "INSERT INTO alert_events (kind, application, payload, created_at, fanned_out) VALUES ($1, $2, $3, $4, 0) RETURNING id",
        (kind, event.application.clone(), payload, now_ms()),
    )
    .await
}

/// A delivery of event `event_id` to `receiver`, due at once.
async fn insert_delivery(
    conn: &mut sqlx::AnyConnection,
    event_id: i64,
    receiver: &str,
    now: i64,
) -> Result<()> {
    sql::exec(
        conn,
        "INSERT INTO alert_deliveries (event_id, receiver, state, attempts, next_attempt_at, created_at) VALUES ($1, $2, 'pending', 0, $3, $3)",
        (event_id, receiver, now),
    )
    .await?;
    Ok(())
}

/// Appends `event` for one receiver only (a test message, a digest): fanned out already,
/// with its one delivery.
async fn queue_for(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    receiver: &str,
    event: &AlertEvent,
    now: i64,
) -> Result<()> {
    let id = insert_alert(tx, event).await?;
    sql::exec(
        &mut **tx,
        "UPDATE alert_events SET fanned_out = 1 WHERE id = $1",
        (id,),
    )
    .await?;
    insert_delivery(tx, id, receiver, now).await
}

/// A receiver, as the fan-out needs it: which apps' teams and which events it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRoute {
    pub name: String,
    /// Empty: every application (and site-wide events).
    pub teams: Vec<String>,
    /// Empty: every event.
    pub kinds: Vec<AlertKind>,
}

impl AlertRoute {
    /// Site-wide events (no application, or an app with no team) reach only site-wide
    /// receivers.
    fn takes(&self, kind: Option<AlertKind>, team: Option<&str>) -> bool {
        let kind_ok = self.kinds.is_empty() || kind.is_some_and(|k| self.kinds.contains(&k));
        let team_ok = self.teams.is_empty()
            || team.is_some_and(|t| !t.is_empty() && self.teams.iter().any(|x| x == t));
        kind_ok && team_ok && !matches!(kind, Some(AlertKind::Test | AlertKind::Digest))
    }
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    /// The lease this claim holds: the attempt is recorded only while it still holds it.
    pub lease_until: i64,
    pub receiver: String,
    pub attempts: i64,
    pub created_at_ms: i64,
    pub event: AlertEvent,
}

impl Store {
    /// Gives each new event a delivery row per matching receiver; how many events it took.
    /// An event is taken once even by two servers at a time (its `fanned_out` flips once).
    pub async fn fan_out_alerts(&self, routes: &[AlertRoute]) -> Result<usize> {
        let waiting = sql::exists(
            &self.pool,
            "SELECT id FROM alert_events WHERE fanned_out = 0 LIMIT 1",
            (),
        )
        .await?;
        if !waiting {
            return Ok(0);
        }
        let (_guard, mut tx) = self.write().await?;
        let rows: Vec<(i64, String, Option<String>)> = sql::fetch_all(
            &mut *tx,
            "SELECT e.id, e.kind, a.team FROM alert_events e LEFT JOIN applications a ON a.shortname = e.application
             WHERE e.fanned_out = 0 ORDER BY e.id LIMIT 500",
            (),
        )
        .await?;
        let now = now_ms();
        for (id, kind, team) in &rows {
            let taken = sql::exec(
                &mut *tx,
                "UPDATE alert_events SET fanned_out = 1 WHERE id = $1 AND fanned_out = 0",
                (*id,),
            )
            .await?;
            if taken != 1 {
                continue;
            }
            let kind = AlertKind::parse(kind).ok();
            for r in routes.iter().filter(|r| r.takes(kind, team.as_deref())) {
                insert_delivery(&mut tx, *id, &r.name, now).await?;
            }
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Claims up to `limit` deliveries to `receivers` (the ones this server knows) that are
    /// due, leasing them for `lease_ms`. A delivery to a receiver no server has configured
    /// for `give_up_ms` is given up (during a rolling change of configuration another
    /// server may know it).
    pub async fn claim_due_deliveries(
        &self,
        receivers: &[String],
        lease_ms: i64,
        limit: i64,
        give_up_ms: i64,
    ) -> Result<Vec<Delivery>> {
        let now = now_ms();
        let due = sql::exists(
            &self.pool,
            "SELECT id FROM alert_deliveries WHERE state = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) LIMIT 1",
            (now,),
        )
        .await?;
        if !due {
            return Ok(vec![]);
        }
        let names = if receivers.is_empty() {
            "''".to_string()
        } else {
            sql::placeholders(3, receivers.len())
        };
        let (_guard, mut tx) = self.write().await?;
        let sql = format!(
            "UPDATE alert_deliveries SET state = 'gave_up', last_error = 'no receiver of this name is configured', lease_until = NULL
             WHERE state = 'pending' AND created_at < $1 AND (lease_until IS NULL OR lease_until < $2) AND receiver NOT IN ({names})"
        );
        let known = || receivers.iter().map(|r| (r.as_str(),)).collect::<Vec<_>>();
        sql::exec(&mut *tx, &sql, (now - give_up_ms, now).and(known())).await?;
        let sql = format!(
            "SELECT d.id, d.receiver, d.attempts, d.created_at, e.payload FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND (d.lease_until IS NULL OR d.lease_until < $1)
             AND d.receiver IN ({names}) ORDER BY d.next_attempt_at, d.id LIMIT $2"
        );
        let rows: Vec<(i64, String, i64, i64, String)> =
            sql::fetch_all(&mut *tx, &sql, (now, limit).and(known())).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for (id, receiver, attempts, created_at_ms, payload) in rows {
            let taken = sql::exec(
                &mut *tx,
                "UPDATE alert_deliveries SET lease_until = $1 WHERE id = $2 AND state = 'pending' AND (lease_until IS NULL OR lease_until < $3)",
                (now + lease_ms, id, now),
            )
            .await?;
            if taken != 1 {
                continue;
            }
            match serde_json::from_str::<AlertEvent>(&payload) {
                Ok(event) => claimed.push(Delivery {
                    id,
                    lease_until: now + lease_ms,
                    receiver,
                    attempts,
                    created_at_ms,
                    event,
                }),
                // Written by this program, so this cannot happen short of tampering: the
                // delivery is given up with the reason rather than retried forever.
                Err(e) => {
                    sql::exec(
                        &mut *tx,
                        "UPDATE alert_deliveries SET state = 'gave_up', last_error = $1, lease_until = NULL WHERE id = $2",
                        (format!("the stored alert is unreadable: {e}"), id),
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records an attempt: delivered (`next_attempt_at` None and `error` None), to retry at
    /// `next_attempt_at`, or given up (`next_attempt_at` None with an error). Only while
    /// the claim's lease holds: once it ran out, the delivery is another claim's to record.
    pub async fn record_delivery_attempt(
        &self,
        id: i64,
        lease_until: i64,
        status: Option<u16>,
        error: Option<&str>,
        next_attempt_at: Option<i64>,
    ) -> Result<()> {
        let now = now_ms();
        let state = match (error, next_attempt_at) {
            (None, _) => "delivered",
            (Some(_), Some(_)) => "pending",
            (Some(_), None) => "gave_up",
        };
        self.write_one(
            "UPDATE alert_deliveries SET state = $1, attempts = attempts + 1, last_status = $2, last_error = $3,
               next_attempt_at = COALESCE($4, next_attempt_at), delivered_at = $5, lease_until = NULL WHERE id = $6 AND lease_until = $7",
            (
                state,
                status.map(i64::from),
                error.map(str::to_owned),
                next_attempt_at,
                (state == "delivered").then_some(now),
                id,
                lease_until,
            ),
        )
        .await?;
        Ok(())
    }

    /// The latest deliveries, newest first, `limit` per receiver at most.
    pub async fn recent_deliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>> {
        // `summary` is read as the alert's payload, then worded.
        let rows: Vec<DeliveryRow> = sql::fetch_all(
            &self.pool,
            "SELECT d.id, d.receiver, e.kind, e.payload AS summary, d.state, d.attempts, d.last_status, d.last_error,
                    d.created_at AS created_at_ms, d.next_attempt_at AS next_attempt_at_ms, d.delivered_at AS delivered_at_ms
             FROM alert_deliveries d JOIN alert_events e ON e.id = d.event_id ORDER BY d.id DESC LIMIT $1",
            (limit * 10,),
        )
        .await?;
        let mut per: std::collections::HashMap<String, i64> = Default::default();
        Ok(rows
            .into_iter()
            .filter(|r| {
                let n = per.entry(r.receiver.clone()).or_default();
                *n += 1;
                *n <= limit
            })
            .map(|r| DeliveryRow {
                summary: serde_json::from_str::<AlertEvent>(&r.summary)
                    .map(|e| e.summary())
                    .unwrap_or_else(|_| r.kind.clone()),
                ..r
            })
            .collect())
    }

    /// An admin's test message for one receiver (delivered like any alert), audited.
    pub async fn enqueue_test_alert(
        &self,
        receiver: &str,
        actor: &str,
        audit: &super::NewAudit<'_>,
    ) -> Result<()> {
        let now = now_ms();
        let mut event = AlertEvent::new(AlertKind::Test, now);
        event.actor = Some(actor.to_owned());
        let (_guard, mut tx) = self.write().await?;
        queue_for(&mut tx, receiver, &event, now).await?;
        super::audit::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the digest of the local day `day` (`2026-12-07`) went out.
    pub async fn digest_sent(&self, day: &str) -> Result<bool> {
        let n: i64 = sql::scalar(
            &self.pool,
            "SELECT COUNT(*) FROM digests WHERE day = $1",
            (day,),
        )
        .await?;
        Ok(n > 0)
    }

    /// The digest of `day`: one message per receiver, queued for delivery, in the
    /// transaction that records the day as sent. False when another server recorded it
    /// first (nothing queued): one digest a day, however many servers.
    pub async fn send_digest(&self, day: &str, messages: &[(String, AlertEvent)]) -> Result<bool> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let claimed = sql::exec(
            &mut *tx,
            "INSERT INTO digests (day, sent_at, messages) VALUES ($1, $2, $3) ON CONFLICT (day) DO NOTHING",
            (day, now, messages.len() as i64),
        )
        .await?;
        if claimed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        for (receiver, event) in messages {
            queue_for(&mut tx, receiver, event, now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Forgets deliveries that ended (delivered or given up) before `before_ms`, and events
    /// left with no delivery; how many deliveries. The outbox does not grow for ever.
    pub async fn prune_alerts(&self, before_ms: i64) -> Result<u64> {
        let (_guard, mut tx) = self.write().await?;
        let n = sql::exec(
            &mut *tx,
            "DELETE FROM alert_deliveries WHERE state <> 'pending' AND created_at < $1",
            (before_ms,),
        )
        .await?;
        sql::exec(
            &mut *tx,
            "DELETE FROM alert_events WHERE fanned_out = 1 AND created_at < $1
             AND NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.event_id = alert_events.id)",
            (before_ms,),
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Alerts each manual deploy that has heard nothing for `stall_ms`, once; how many.
    pub async fn alert_stalled_deploys(&self, stall_ms: i64) -> Result<usize> {
        let now = now_ms();
        let query = "SELECT d.id, a.shortname, d.environment, d.version, d.deployed_by, d.run_url FROM deploy_locks l
             JOIN deployments d ON d.id = l.deployment_id JOIN applications a ON a.id = d.application_id
             WHERE d.status = 'requested' AND d.created_at < $1 AND d.stall_alerted_at IS NULL";
        let any: Vec<(i64, String, String, String, Option<String>, Option<String>)> =
            sql::fetch_all(&self.pool, query, (now - stall_ms,)).await?;
        if any.is_empty() {
            return Ok(0);
        }
        let (_guard, mut tx) = self.write().await?;
        let mut n = 0;
        for (id, app, env, version, by, run_url) in any {
            let taken = sql::exec(
                &mut *tx,
                "UPDATE deployments SET stall_alerted_at = $1 WHERE id = $2 AND stall_alerted_at IS NULL AND status = 'requested'",
                (now, id),
            )
            .await?;
            if taken != 1 {
                continue;
            }
            let mut e = AlertEvent::new(AlertKind::DeploymentStalled, now);
            e.application = Some(app);
            e.environment = Some(env);
            e.version = Some(version);
            e.deployment_id = Some(id);
            e.actor = by;
            e.workflow_url = run_url;
            insert_alert(&mut tx, &e).await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_team_and_event() {
        let site = AlertRoute {
            name: "all".into(),
            teams: vec![],
            kinds: vec![],
        };
        let team = AlertRoute {
            name: "pub".into(),
            teams: vec!["#publishing".into()],
            kinds: vec![AlertKind::DeploymentFailed],
        };
        let failed = Some(AlertKind::DeploymentFailed);
        assert!(site.takes(failed, None));
        assert!(site.takes(failed, Some("#publishing")));
        assert!(team.takes(failed, Some("#publishing")));
        assert!(!team.takes(failed, Some("#other")));
        assert!(
            !team.takes(failed, None),
            "a site-wide event reaches site-wide receivers only"
        );
        assert!(!team.takes(Some(AlertKind::FreezeSet), Some("#publishing")));
        assert!(
            !site.takes(Some(AlertKind::Test), None),
            "a test goes to the one receiver asked"
        );
    }
}
