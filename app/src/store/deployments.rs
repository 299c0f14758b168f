//! Writing deployments and pipeline events.

use super::alerts::insert_alert;
use super::audit::{insert_audit, NewAudit};
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
            sqlx::query("UPDATE deploy_locks SET deployment_id = $1 WHERE application_id = $2 AND environment = $3")
                .bind(deployment_id)
                .bind(app_id)
                .bind(env)
                .execute(&mut **tx)
                .await?;
            // An earlier run's link is kept until this deploy's run is known.
            sqlx::query("UPDATE deployments SET run_url = COALESCE($1, run_url) WHERE id = $2")
                .bind(run_url.map(str::to_owned))
                .bind(deployment_id)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(a) = &self.audit {
            insert_audit(tx, a).await?;
        }
        Ok(())
    }
}

/// A notification waiting for the next group commit, and where its answer goes.
struct Job {
    deployment: NewDeployment,
    reply: tokio::sync::oneshot::Sender<Result<NotifyOutcome>>,
}

/// Group commit for notifications (`POST /deployments`): the notifications that arrive
/// while a transaction is being written queue up, and the next writer takes them all
/// (up to `MAX_BATCH`) into one transaction. One that is refused (a repo matching two
/// applications) is refused before it writes anything: it gets its error and the batch
/// goes on. A database error halfway through one rolls the batch back and writes each
/// notification in a transaction of its own, each with its own answer. Answers come only
/// after the commit, so nothing is acknowledged before it is durable. The one write path
/// stays: the batch's transaction comes from `Store::write`.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: std::sync::Mutex<Vec<Job>>,
    writer: tokio::sync::Mutex<()>,
}

/// At most this many notifications in one transaction (a bound on how long the write
/// lock is held at once).
pub const MAX_BATCH: usize = 256;

impl Store {
    /// Records a deployment. A notification for the version already current in that
    /// environment attaches to that deployment (filling in the SHA and deployer if they
    /// were unknown) instead of adding a second row. Written by group commit (see
    /// `GroupCommit`): answered once its transaction is committed.
    pub async fn record_deployment(&self, d: &NewDeployment) -> Result<NotifyOutcome> {
        let (reply, mut answer) = tokio::sync::oneshot::channel();
        // Its time is when it arrived, not when its batch is written.
        let mut d = d.clone();
        d.created_at_ms.get_or_insert_with(now_ms);
        self.group
            .queue
            .lock()
            .map_err(|_| StoreError::Conflict("the write queue is unusable".into()))?
            .push(Job {
                deployment: d,
                reply,
            });
        loop {
            tokio::select! {
                biased;
                r = &mut answer => return r.unwrap_or_else(|_| Err(abandoned())),
                writer = self.group.writer.lock() => {
                    let jobs: Vec<Job> = {
                        let mut q = self.group.queue.lock().map_err(|_| StoreError::Conflict("the write queue is unusable".into()))?;
                        let n = q.len().min(MAX_BATCH);
                        q.drain(..n).collect()
                    };
                    if jobs.is_empty() {
                        // Ours was taken by the writer before us: its answer is coming.
                        drop(writer);
                        return answer.await.unwrap_or_else(|_| Err(abandoned()));
                    }
                    // Written by a task of its own, so a caller that goes away (a client
                    // hanging up) cannot abandon the others' transaction halfway.
                    let store = self.clone();
                    let done = tokio::spawn(async move { store.commit_batch(jobs).await });
                    done.await.ok();
                    drop(writer);
                }
            }
        }
    }

    async fn commit_batch(&self, jobs: Vec<Job>) {
        let (guard, mut tx) = match self.write().await {
            Ok(w) => w,
            Err(e) => {
                let unavailable = e.is_unavailable();
                tracing::warn!(error = %e, n = jobs.len(), "could not start a group commit");
                for j in jobs {
                    j.reply.send(Err(same_kind(&e, unavailable))).ok();
                }
                return;
            }
        };
        let mut done: Vec<(Job, NotifyOutcome)> = Vec::with_capacity(jobs.len());
        // The common case in bulk: a known app's new version, once per (app, environment)
        // in the batch: a handful of statements for the whole batch. The rest (a new app,
        // a repeat of the current version, a second notification for the same cell) one
        // by one after it, in order, in the same transaction.
        let jobs = match Self::write_bulk(&mut tx, &self.environments, jobs, &mut done).await {
            Ok(rest) => rest,
            Err((e, jobs)) => {
                tracing::warn!(error = %e, "a group commit failed; writing its notifications one by one");
                drop(tx);
                drop(guard);
                for j in done.into_iter().map(|(j, _)| j).chain(jobs) {
                    let r = self
                        .record_deployment_with(&j.deployment, &Also::default())
                        .await;
                    j.reply.send(r).ok();
                }
                return;
            }
        };
        let mut rest = jobs.into_iter();
        while let Some(job) = rest.next() {
            match Self::write_deployment(
                &mut tx,
                &self.environments,
                &job.deployment,
                &Also::default(),
            )
            .await
            {
                Ok(outcome) => done.push((job, outcome)),
                // Refused before it wrote anything (a repo matching two applications, no
                // free shortname): answered, and the batch goes on.
                Err(e @ (StoreError::Conflict(_) | StoreError::NotFound(_))) => {
                    job.reply.send(Err(e)).ok();
                }
                // The database failed halfway through this one: the transaction is not to
                // be trusted. Roll it back and write each notification alone, so each gets
                // its own answer.
                Err(e) => {
                    tracing::warn!(error = %e, "a group commit failed; writing its notifications one by one");
                    drop(tx);
                    drop(guard);
                    let all = done
                        .into_iter()
                        .map(|(j, _)| j)
                        .chain(std::iter::once(job))
                        .chain(rest);
                    for j in all {
                        let r = self
                            .record_deployment_with(&j.deployment, &Also::default())
                            .await;
                        j.reply.send(r).ok();
                    }
                    return;
                }
            }
        }
        let committed = tx.commit().await;
        drop(guard);
        match committed {
            Ok(()) => {
                let mut apps: Vec<&str> =
                    done.iter().map(|(_, o)| o.application.as_str()).collect();
                apps.sort_unstable();
                apps.dedup();
                for app in apps {
                    self.publish(app).await;
                }
                for (job, outcome) in done {
                    job.reply.send(Ok(outcome)).ok();
                }
            }
            Err(e) => {
                let e = StoreError::from(e);
                let unavailable = e.is_unavailable();
                tracing::warn!(error = %e, n = done.len(), "a group commit failed");
                for (job, _) in done {
                    job.reply.send(Err(same_kind(&e, unavailable))).ok();
                }
            }
        }
    }

    /// Writes the batch's plain notifications (a known app's new version, the first for
    /// its cell in the batch) with one statement per step for all of them; answers the
    /// refused ones (a repo matching two applications); returns the others, in order, for
    /// `write_deployment`. On a database error, returns every job not yet answered.
    #[allow(clippy::type_complexity)]
    async fn write_bulk(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        envs: &Environments,
        jobs: Vec<Job>,
        done: &mut Vec<(Job, NotifyOutcome)>,
    ) -> std::result::Result<Vec<Job>, (StoreError, Vec<Job>)> {
        use std::collections::{HashMap, HashSet};
        if jobs.len() < 2 {
            return Ok(jobs);
        }
        let mut repos: Vec<&str> = jobs.iter().map(|j| j.deployment.repo.as_str()).collect();
        repos.sort_unstable();
        repos.dedup();
        let placeholders = |n: usize, from: usize| {
            (from..from + n)
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let sql = format!(
            "{} WHERE repo IN ({}) ORDER BY id",
            super::APP_COLUMNS,
            placeholders(repos.len(), 1)
        );
        let mut q = sqlx::query_as::<_, super::AppTuple>(&sql);
        for r in &repos {
            q = q.bind(r.to_string());
        }
        let apps = match q.fetch_all(&mut **tx).await {
            Ok(a) => a,
            Err(e) => return Err((e.into(), jobs)),
        };
        let mut by_repo: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        let mut manual: HashMap<i64, Vec<String>> = HashMap::new();
        for a in apps {
            by_repo
                .entry(a.3.clone())
                .or_default()
                .push((a.0, a.1.clone()));
            let row = super::ApplicationRow::from(a);
            if !row.manual_environments.is_empty() {
                manual.insert(row.id, row.manual_environments);
            }
        }
        let ids: Vec<i64> = by_repo
            .values()
            .filter(|v| v.len() == 1)
            .map(|v| v[0].0)
            .collect();
        // What is current in each cell of these apps.
        let mut current: HashMap<(i64, String), (String, Option<String>)> = HashMap::new();
        if !ids.is_empty() {
            let sql = format!(
                "SELECT c.application_id, c.environment, d.version, d.sha FROM current_deployments c
                 JOIN deployments d ON d.id = c.deployment_id WHERE c.application_id IN ({})",
                placeholders(ids.len(), 1)
            );
            let mut q = sqlx::query_as::<_, (i64, String, String, Option<String>)>(&sql);
            for id in &ids {
                q = q.bind(*id);
            }
            match q.fetch_all(&mut **tx).await {
                Ok(rows) => {
                    for (app, env, version, sha) in rows {
                        current.insert((app, env), (version, sha));
                    }
                }
                Err(e) => return Err((e.into(), jobs)),
            }
        }
        let now = now_ms();
        let mut seen: HashSet<(i64, String)> = HashSet::new();
        let mut plain: Vec<(Job, i64, String)> = Vec::new();
        let mut rest: Vec<Job> = Vec::new();
        for job in jobs {
            let d = &job.deployment;
            match by_repo.get(d.repo.as_str()).map(Vec::as_slice) {
                Some([(id, shortname)]) => {
                    let cell = (*id, d.environment.as_str().to_owned());
                    // A repeat of the current version attaches to it (`write_deployment`),
                    // and so does everything after it for that cell, in order.
                    let repeat = current
                        .get(&cell)
                        .is_some_and(|(v, _)| v == d.version.as_str());
                    if seen.insert(cell) && !repeat {
                        plain.push((job, *id, shortname.clone()));
                    } else {
                        rest.push(job);
                    }
                }
                Some(many) if many.len() > 1 => {
                    let names: Vec<&str> = many.iter().map(|(_, n)| n.as_str()).collect();
                    let e = StoreError::Conflict(format!(
                        "repo {} matches {} applications ({}); it is ambiguous",
                        d.repo,
                        many.len(),
                        names.join(", ")
                    ));
                    job.reply.send(Err(e)).ok();
                }
                _ => rest.push(job),
            }
        }
        if plain.is_empty() {
            return Ok(rest);
        }
        // Rows locked in one order by every batch: two servers' batches on one PostgreSQL
        // cannot deadlock on the current cells. (Each cell is in `plain` once.)
        plain.sort_by(|a, b| {
            (a.1, a.0.deployment.environment.as_str())
                .cmp(&(b.1, b.0.deployment.environment.as_str()))
        });
        // One INSERT for every plain notification, then one upsert of the current cells.
        let mut values = Vec::with_capacity(plain.len());
        for i in 0..plain.len() {
            let b = i * 8;
            values.push(format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 7,
                b + 8,
                b + 8
            ));
        }
        let sql = format!(
            "INSERT INTO deployments (application_id, environment, version, sha, trigger_kind, deployed_by, base_status, status, created_at, updated_at)
             VALUES {} RETURNING id, application_id, environment",
            values.join(", ")
        );
        let mut q = sqlx::query_as::<_, (i64, i64, String)>(&sql);
        for (job, id, _) in &plain {
            let d = &job.deployment;
            let sha = d
                .sha
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .or_else(|| d.version.as_sha().map(|s| s.as_str().to_owned()));
            q = q
                .bind(*id)
                .bind(d.environment.as_str().to_owned())
                .bind(d.version.as_str().to_owned())
                .bind(sha)
                .bind(d.trigger.as_str())
                .bind(d.deployed_by.clone())
                .bind(d.base_status.as_str())
                .bind(d.created_at_ms.unwrap_or(now));
        }
        let inserted = match q.fetch_all(&mut **tx).await {
            Ok(rows) => rows,
            Err(e) => {
                let jobs = plain.into_iter().map(|(j, _, _)| j).chain(rest).collect();
                return Err((e.into(), jobs));
            }
        };
        let new_ids: HashMap<(i64, String), i64> = inserted
            .into_iter()
            .map(|(id, app, env)| ((app, env), id))
            .collect();
        let mut values = Vec::with_capacity(plain.len());
        for i in 0..plain.len() {
            let b = i * 4;
            values.push(format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4));
        }
        let sql = format!(
            "INSERT INTO current_deployments (application_id, environment, deployment_id, created_at) VALUES {}
             ON CONFLICT (application_id, environment) DO UPDATE SET deployment_id = excluded.deployment_id, created_at = excluded.created_at
             WHERE excluded.created_at >= current_deployments.created_at",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        let mut outcomes = Vec::with_capacity(plain.len());
        for (job, app_id, shortname) in &plain {
            let d = &job.deployment;
            let cell = (*app_id, d.environment.as_str().to_owned());
            let Some(deployment_id) = new_ids.get(&cell).copied() else {
                let jobs = plain.into_iter().map(|(j, _, _)| j).chain(rest).collect();
                return Err((
                    StoreError::Conflict(
                        "a bulk insert returned fewer rows than it inserted".into(),
                    ),
                    jobs,
                ));
            };
            q = q
                .bind(*app_id)
                .bind(d.environment.as_str().to_owned())
                .bind(deployment_id)
                .bind(d.created_at_ms.unwrap_or(now));
            outcomes.push(NotifyOutcome {
                application: shortname.clone(),
                deployment_id,
                created: true,
            });
        }
        if let Err(e) = q.execute(&mut **tx).await {
            let jobs = plain.into_iter().map(|(j, _, _)| j).chain(rest).collect();
            return Err((e.into(), jobs));
        }
        // A new version whose next environment is deployed by hand and runs something
        // else: that environment newly needs a manual deployment.
        for ((job, app_id, shortname), outcome) in plain.iter().zip(&outcomes) {
            let d = &job.deployment;
            let Some(next) = envs.next(&d.environment) else {
                continue;
            };
            let there = current.get(&(*app_id, next.as_str().to_owned()));
            if !crate::domain::newly_needs_manual(
                d.base_status == DeploymentStatus::Succeeded,
                manual
                    .get(app_id)
                    .is_some_and(|m| m.iter().any(|e| e == next.as_str())),
                (d.version.as_str(), d.sha.as_ref().map(|s| s.as_str())),
                there.map(|(v, s)| (v.as_str(), s.as_deref())),
            ) {
                continue;
            }
            let alert = needs_manual(shortname, d, next, outcome.deployment_id);
            if let Err(e) = insert_alert(tx, &alert).await {
                let jobs = plain.into_iter().map(|(j, _, _)| j).chain(rest).collect();
                return Err((e, jobs));
            }
        }
        done.extend(plain.into_iter().map(|(j, _, _)| j).zip(outcomes));
        Ok(rest)
    }

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
        tx.commit().await?;
        self.publish(&outcome.application).await;
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
        let current: Option<DeploymentKey> = sqlx::query_as(
            "SELECT d.id, d.version, d.sha, d.deployed_by FROM current_deployments c
             JOIN deployments d ON d.id = c.deployment_id
             WHERE c.application_id = $1 AND c.environment = $2",
        )
        .bind(app.id)
        .bind(d.environment.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let now = now_ms();
        if let Some((id, _, _, _)) = current.filter(|c| c.1 == d.version.as_str()) {
            sqlx::query(
                "UPDATE deployments SET sha = COALESCE(sha, $1), deployed_by = COALESCE(deployed_by, $2), updated_at = $3 WHERE id = $4",
            )
            .bind(d.sha.as_ref().map(|s| s.as_str().to_owned()))
            .bind(d.deployed_by.clone())
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            also.write(tx, id).await?;
            return Ok(NotifyOutcome {
                application: app.shortname,
                deployment_id: id,
                created: false,
            });
        }
        let created_at = d.created_at_ms.unwrap_or(now);
        let sha = d
            .sha
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .or_else(|| d.version.as_sha().map(|s| s.as_str().to_owned()));
        let id = insert_deployment(
            tx,
            app.id,
            d.environment.as_str(),
            d.version.as_str(),
            sha,
            d.trigger,
            d.deployed_by.clone(),
            d.base_status,
            created_at,
        )
        .await?;
        also.write(tx, id).await?;
        // A manual deploy's "requested" alert is written with the dispatch's outcome
        // (`Store::finish_dispatch`), once GitHub took it and with its run.
        if let Some(next) = envs.next(&d.environment) {
            let next_is_manual = app.manual_environments.iter().any(|e| e == next.as_str());
            let succeeded = d.base_status == DeploymentStatus::Succeeded;
            if succeeded && next_is_manual {
                let there: Option<(String, Option<String>)> = sqlx::query_as(
                    "SELECT d.version, d.sha FROM current_deployments c JOIN deployments d ON d.id = c.deployment_id
                     WHERE c.application_id = $1 AND c.environment = $2",
                )
                .bind(app.id)
                .bind(next.as_str())
                .fetch_optional(&mut **tx)
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
            let claimed: Option<String> = sqlx::query_scalar(
                "INSERT INTO deliveries (delivery_id, response, created_at) VALUES ($1, '', $2)
                 ON CONFLICT (delivery_id) DO NOTHING RETURNING delivery_id",
            )
            .bind(delivery)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?;
            if claimed.is_none() {
                tx.rollback().await?;
                let response: String =
                    sqlx::query_scalar("SELECT response FROM deliveries WHERE delivery_id = $1")
                        .bind(delivery)
                        .fetch_one(&self.pool)
                        .await?;
                return serde_json::from_str(&response).map_err(|err| {
                    StoreError::Conflict(format!(
                        "delivery {delivery:?} is being processed ({err})"
                    ))
                });
            }
        }
        let outcome = Self::write_event(&mut tx, e, audit).await?;
        tx.commit().await?;
        self.publish(&outcome.application).await;
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
        let existing: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT id, base_status, status FROM deployments WHERE application_id = $1 AND environment = $2 AND version = $3
             ORDER BY id DESC LIMIT 1",
        )
        .bind(app.id)
        .bind(e.environment.as_str())
        .bind(e.version.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let mut was_failed = false;
        let (deployment_id, base, created_deployment) = match existing {
            Some((id, base, status)) => {
                was_failed = status == DeploymentStatus::Failed.as_str();
                // A deploy whose dispatch was "not confirmed" is heard of: it did start.
                // It is current again (unless something newer is).
                let confirmed = sqlx::query(
                    "UPDATE deployments SET dispatch_state = NULL WHERE id = $1 AND dispatch_state = 'not confirmed'",
                )
                .bind(id)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                if confirmed {
                    sqlx::query(
                        "INSERT INTO current_deployments (application_id, environment, deployment_id, created_at)
                         SELECT application_id, environment, id, created_at FROM deployments WHERE id = $1
                         ON CONFLICT (application_id, environment) DO UPDATE SET deployment_id = excluded.deployment_id,
                           created_at = excluded.created_at WHERE excluded.created_at >= current_deployments.created_at",
                    )
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                }
                (
                    id,
                    DeploymentStatus::parse(&base).unwrap_or(DeploymentStatus::InProgress),
                    false,
                )
            }
            None => {
                let sha = e.version.as_sha().map(|s| s.as_str().to_owned());
                let id = insert_deployment(
                    tx,
                    app.id,
                    e.environment.as_str(),
                    e.version.as_str(),
                    sha,
                    Trigger::Continuous,
                    None,
                    DeploymentStatus::InProgress,
                    at,
                )
                .await?;
                (id, DeploymentStatus::InProgress, true)
            }
        };
        let wf = e.workflow.clone().unwrap_or(Workflow {
            environment: None,
            namespace: None,
            name: None,
            url: None,
        });
        let event_id: i64 = sqlx::query_scalar(
            "INSERT INTO events (deployment_id, stage, status, message, workflow_environment, workflow_namespace, workflow_name, workflow_url, at, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(deployment_id)
        .bind(e.stage.as_str())
        .bind(e.status.as_str())
        .bind(e.message.clone())
        .bind(wf.environment.clone())
        .bind(wf.namespace.clone())
        .bind(wf.name.clone())
        .bind(wf.url.clone())
        .bind(at)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT stage, status, at FROM events WHERE deployment_id = $1 ORDER BY id",
        )
        .bind(deployment_id)
        .fetch_all(&mut **tx)
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
            && sqlx::query("UPDATE deployments SET status = $1 WHERE id = $2 AND status <> $1")
                .bind(DeploymentStatus::Failed.as_str())
                .bind(deployment_id)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                == 1;
        sqlx::query(
            "UPDATE deployments SET status = $1, failed_stage = $2,
               workflow_environment = COALESCE($3, workflow_environment), workflow_namespace = COALESCE($4, workflow_namespace),
               workflow_name = COALESCE($5, workflow_name), workflow_url = COALESCE($6, workflow_url), updated_at = $7
             WHERE id = $8",
        )
        .bind(status.as_str())
        .bind(failed_stage.map(|s| s.as_str().to_owned()))
        .bind(wf.environment)
        .bind(wf.namespace)
        .bind(wf.name)
        .bind(wf.url)
        .bind(now)
        .bind(deployment_id)
        .execute(&mut **tx)
        .await?;
        let outcome = EventOutcome {
            application: app.shortname,
            deployment_id,
            event_id,
            deployment_status: status,
            created_deployment,
        };
        if let Some(delivery) = &e.delivery_id {
            sqlx::query("UPDATE deliveries SET response = $1 WHERE delivery_id = $2")
                .bind(serde_json::to_string(&outcome).unwrap_or_default())
                .bind(delivery)
                .execute(&mut **tx)
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
                    sqlx::query_scalar("SELECT workflow_url FROM deployments WHERE id = $1")
                        .bind(deployment_id)
                        .fetch_one(&mut **tx)
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
            let mut q = sqlx::query(&sql);
            for (app, env, version, at) in chunk {
                q = q
                    .bind(*app)
                    .bind(env.as_str())
                    .bind(version.as_str())
                    .bind(*at);
            }
            q.execute(&mut *tx).await?;
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
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM applications ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let envs: Vec<String> = self
            .environments
            .names()
            .iter()
            .map(|s| s.to_string())
            .collect();
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
                sqlx::query(
                    "INSERT INTO deployments (application_id, environment, version, sha, trigger_kind, deployed_by, base_status, status, created_at, updated_at)
                     WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n + 1 < $1)
                     SELECT $2, $3, 'v' || CAST(n AS TEXT), NULL, 'continuous', 'bench', 'succeeded', 'succeeded', $4 + n * $5, $4 + n * $5
                     FROM seq",
                )
                .bind(rows)
                .bind(*id)
                .bind(env.as_str())
                .bind(start_ms + env_index as i64 * 3_600_000)
                .bind(step_ms)
                .execute(&mut *tx)
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
    sqlx::query(
        "INSERT INTO current_deployments (application_id, environment, deployment_id, created_at)
         SELECT application_id, environment, MAX(id), MAX(created_at) FROM deployments GROUP BY application_id, environment
         ON CONFLICT (application_id, environment) DO UPDATE SET deployment_id = excluded.deployment_id, created_at = excluded.created_at",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_deployment(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    application_id: i64,
    environment: &str,
    version: &str,
    sha: Option<String>,
    trigger: Trigger,
    deployed_by: Option<String>,
    base_status: DeploymentStatus,
    created_at: i64,
) -> Result<i64> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deployments (application_id, environment, version, sha, trigger_kind, deployed_by, base_status, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $8) RETURNING id",
    )
    .bind(application_id)
    .bind(environment)
    .bind(version)
    .bind(sha)
    .bind(trigger.as_str())
    .bind(deployed_by)
    .bind(base_status.as_str())
    .bind(created_at)
    .fetch_one(&mut **tx)
    .await?;
    // The newest deployment (by its time) is the current one; an old notification sent
    // late does not take the place of a newer one.
    sqlx::query(
        "INSERT INTO current_deployments (application_id, environment, deployment_id, created_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (application_id, environment) DO UPDATE SET deployment_id = excluded.deployment_id, created_at = excluded.created_at
         WHERE excluded.created_at >= current_deployments.created_at",
    )
    .bind(application_id)
    .bind(environment)
    .bind(id)
    .bind(created_at)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// `next` newly needs a manual deployment of `d`'s version.
fn needs_manual(shortname: &str, d: &NewDeployment, next: &Environment, id: i64) -> AlertEvent {
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

/// The answer when a group commit's writer went away without answering (it cannot,
/// short of a panic): the caller may retry.
fn abandoned() -> StoreError {
    StoreError::Database(sqlx::Error::PoolTimedOut)
}

/// A batch's error for each of its notifications: "busy, retry" stays that (503), anything
/// else is reported as it was.
fn same_kind(e: &StoreError, unavailable: bool) -> StoreError {
    if unavailable {
        StoreError::Database(sqlx::Error::PoolTimedOut)
    } else {
        StoreError::Database(sqlx::Error::Protocol(format!(
            "the notification's transaction could not be committed: {e}"
        )))
    }
}
