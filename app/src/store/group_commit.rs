//! Group commit for pipeline notifications (`POST /deployments`): the notifications that
//! arrive while a transaction is being written queue up, and the next writer takes them
//! all into one transaction (the bulk writer for plain ones, `write_deployment` for the
//! rest).

use super::alerts::insert_alert;
use super::deployments::{needs_manual, Also, NewDeployment, NotifyOutcome};
use super::{now_ms, sql, ApplicationRow, Result, Store, StoreError};
use crate::domain::{DeploymentStatus, Environments};

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
        let sql = format!(
            "{} WHERE repo IN ({}) ORDER BY id",
            super::APP_COLUMNS,
            sql::placeholders(1, repos.len())
        );
        let listed: Vec<(&str,)> = repos.iter().map(|r| (*r,)).collect();
        let apps: Vec<ApplicationRow> = match sql::fetch_all(&mut **tx, &sql, listed).await {
            Ok(a) => a,
            Err(e) => return Err((e, jobs)),
        };
        let mut by_repo: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        let mut manual: HashMap<i64, Vec<String>> = HashMap::new();
        for a in apps {
            by_repo.entry(a.repo).or_default().push((a.id, a.shortname));
            if !a.manual_environments.is_empty() {
                manual.insert(a.id, a.manual_environments);
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
                sql::placeholders(1, ids.len())
            );
            let listed: Vec<(i64,)> = ids.iter().map(|id| (*id,)).collect();
            let rows: Result<Vec<(i64, String, String, Option<String>)>> =
                sql::fetch_all(&mut **tx, &sql, listed).await;
            match rows {
                Ok(rows) => {
                    for (app, env, version, sha) in rows {
                        current.insert((app, env), (version, sha));
                    }
                }
                Err(e) => return Err((e, jobs)),
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
            // status and updated_at take base_status's and created_at's parameters.
            values.push(super::row_params(b, &[1, 2, 3, 4, 5, 6, 7, 7, 8, 8]));
        }
        let sql = format!(
            "INSERT INTO deployments (application_id, environment, version, sha, trigger_kind, deployed_by, base_status, status, created_at, updated_at)
             VALUES {} RETURNING id, application_id, environment",
            values.join(", ")
        );
        let rows: Vec<_> = plain
            .iter()
            .map(|(job, id, _)| {
                let d = &job.deployment;
                let sha = d
                    .sha
                    .as_ref()
                    .map(|s| s.as_str().to_owned())
                    .or_else(|| d.version.as_sha().map(|s| s.as_str().to_owned()));
                (
                    *id,
                    d.environment.as_str().to_owned(),
                    d.version.as_str().to_owned(),
                    sha,
                    d.trigger.as_str(),
                    d.deployed_by.clone(),
                    d.base_status.as_str(),
                    d.created_at_ms.unwrap_or(now),
                )
            })
            .collect();
        let inserted: Vec<(i64, i64, String)> = match sql::fetch_all(&mut **tx, &sql, rows).await {
            Ok(rows) => rows,
            Err(e) => {
                let jobs = plain.into_iter().map(|(j, _, _)| j).chain(rest).collect();
                return Err((e, jobs));
            }
        };
        let ids: Vec<i64> = inserted.iter().map(|(id, _, _)| *id).collect();
        if let Err(e) = super::github_reports::mark_reports(tx, &ids, now).await {
            let jobs = plain.into_iter().map(|(j, _, _)| j).chain(rest).collect();
            return Err((e, jobs));
        }
        let new_ids: HashMap<(i64, String), i64> = inserted
            .into_iter()
            .map(|(id, app, env)| ((app, env), id))
            .collect();
        let mut values = Vec::with_capacity(plain.len());
        for i in 0..plain.len() {
            let b = i * 4;
            values.push(super::row_params(b, &[1, 2, 3, 4]));
        }
        let sql = format!(
            "INSERT INTO current_deployments (application_id, environment, deployment_id, created_at) VALUES {}
             ON CONFLICT (application_id, environment) DO UPDATE SET deployment_id = excluded.deployment_id, created_at = excluded.created_at
             WHERE excluded.created_at >= current_deployments.created_at",
            values.join(", ")
        );
        let mut cells = Vec::with_capacity(plain.len());
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
            cells.push((
                *app_id,
                d.environment.as_str().to_owned(),
                deployment_id,
                d.created_at_ms.unwrap_or(now),
            ));
            outcomes.push(NotifyOutcome {
                application: shortname.clone(),
                deployment_id,
                created: true,
            });
        }
        if let Err(e) = sql::exec(&mut **tx, &sql, cells).await {
            let jobs = plain.into_iter().map(|(j, _, _)| j).chain(rest).collect();
            return Err((e, jobs));
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
