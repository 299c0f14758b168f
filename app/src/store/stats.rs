//! Delivery metrics: the daily counts (`stats_daily`) the stats task keeps, the facts it
//! counts them from, and the commits whose time GitHub is asked for.
//!
//! The task (`src/stats.rs`) finds what changed from two marks, the last deployment id and
//! the last event id it counted, so the write path (the pipeline's notifications) does no
//! extra work. New deployments are added to their days' counts, a batch at a time, with
//! production's state per application carried from one to the next: the cost of a pass
//! follows what arrived, not the size of the day. A day where an event changed a
//! deployment already counted is counted again from its deployments.

use super::{sql, Backend, Result, Store};
use crate::domain::stats::{
    count_days, count_days_from, DayStats, DeploymentFact, Durations, ProductionBefore, DAY_MS,
};
use crate::domain::DeploymentStatus;
use std::collections::BTreeMap;

/// What the stats task has to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsWork {
    /// Days to count again from their deployments, ascending.
    pub days: Vec<i64>,
    /// New deployments: ids after `from_deployment_id`, up to `deployment_id`.
    pub from_deployment_id: i64,
    /// The marks once they are counted.
    pub deployment_id: i64,
    pub event_id: i64,
}

/// The most days one recount reads at once (a long recount goes by months).
const RUN_DAYS: i64 = 31;
/// New deployments are read this many ids at a time (a first count of a long history
/// holds one batch in memory at once).
const BATCH_IDS: i64 = 10_000;
/// On PostgreSQL a transaction that took a lower id can commit after one with a higher id:
/// the days of the last ids before the mark are counted again, in case one came late.
const LOOK_BACK: i64 = 1000;

type FactRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
);

/// The facts of the deployments a `WHERE` clause picks ($1, $2 its own; $3 production,
/// $4 the first environment), in order of application, then id.
fn facts_sql(filter: &str) -> String {
    format!(
        "SELECT d.application_id, d.environment, d.version, d.status, d.created_at,
           CASE WHEN d.environment = $3 THEN (SELECT c.committed_at FROM commit_times c WHERE c.application_id = d.application_id AND c.sha = d.sha) END,
           CASE WHEN d.environment = $3 THEN (SELECT MIN(i.created_at) FROM deployments i
             WHERE i.application_id = d.application_id AND i.environment = $4 AND i.version = d.version) END,
           CAST(CASE WHEN d.environment = $3 AND EXISTS (SELECT 1 FROM deployments p
             WHERE p.application_id = d.application_id AND p.environment = $3 AND p.version = d.version AND p.id < d.id) THEN 1 ELSE 0 END AS BIGINT)
         FROM deployments d
         WHERE {filter}
         ORDER BY d.application_id, d.id"
    )
}

/// Where production's state is read from: before a time (a recount of days) or up to an
/// id (new deployments, which come after every id counted).
#[derive(Clone, Copy)]
enum Before {
    Time(i64),
    UpToId(i64),
}

impl Store {
    fn production_and_first(&self) -> (String, String) {
        let names = self.environments.names();
        (
            names.last().map(|s| s.to_string()).unwrap_or_default(),
            names.first().map(|s| s.to_string()).unwrap_or_default(),
        )
    }

    /// Whether the stats have counted every deployment and event there is (two reads of
    /// a primary key each: cheap enough to poll).
    pub async fn stats_caught_up(&self) -> Result<bool> {
        let (done_d, done_e, max_d, max_e): (i64, i64, i64, i64) = sql::fetch_one(
            &self.pool,
            "SELECT deployment_id, event_id, CAST(COALESCE((SELECT MAX(id) FROM deployments), 0) AS BIGINT),
               CAST(COALESCE((SELECT MAX(id) FROM events), 0) AS BIGINT) FROM stats_progress WHERE id = 1",
            (),
        )
        .await?;
        Ok(done_d == max_d && done_e == max_e)
    }

    /// What changed since the stats were last counted; `None` when nothing did.
    pub async fn stats_work(&self) -> Result<Option<StatsWork>> {
        let (done_d, done_e): (i64, i64) = sql::fetch_one(
            &self.pool,
            "SELECT deployment_id, event_id FROM stats_progress WHERE id = 1",
            (),
        )
        .await?;
        let (max_d, max_e): (i64, i64) = sql::fetch_one(
            &self.pool,
            "SELECT CAST(COALESCE((SELECT MAX(id) FROM deployments), 0) AS BIGINT), CAST(COALESCE((SELECT MAX(id) FROM events), 0) AS BIGINT)",
            (),
        )
        .await?;
        if max_d == done_d && max_e == done_e {
            return Ok(None);
        }
        // SQLite has one writer: its ids commit in order, and nothing is looked back at.
        let late = match self.backend {
            Backend::Postgres => LOOK_BACK,
            Backend::Sqlite => 0,
        };
        // Days where an event changed a deployment counted before (an event for a new
        // deployment is counted with it), and, on PostgreSQL, the last ids' days.
        let mut days: Vec<i64> = sql::scalars(
            &self.pool,
            "SELECT DISTINCT CAST(d.created_at / 86400000 AS BIGINT) FROM events e JOIN deployments d ON d.id = e.deployment_id
             WHERE e.id > $1 AND e.id <= $2 AND d.id <= $3
             UNION
             SELECT DISTINCT CAST(created_at / 86400000 AS BIGINT) FROM deployments WHERE id > $4 AND id <= $3",
            ((done_e - late).max(0), max_e, done_d, (done_d - late).max(0)),
        )
        .await?;
        days.sort_unstable();
        days.dedup();
        Ok(Some(StatsWork {
            days,
            from_deployment_id: done_d,
            deployment_id: max_d,
            event_id: max_e,
        }))
    }

    /// Counts what `work` names and moves the marks, in one transaction.
    pub async fn count_stats(&self, work: &StatsWork) -> Result<()> {
        let recounted = self.recount(&work.days).await?;
        let added = self
            .count_new(work.from_deployment_id, work.deployment_id, &work.days)
            .await?;
        let (_guard, mut tx) = self.write().await?;
        replace_days(&mut tx, recounted).await?;
        for delta in added.into_values() {
            let cell = (delta.day, delta.environment.as_str());
            let existing: Option<StatsRow> = sql::fetch_optional(
                &mut *tx,
                &format!("{STATS_COLUMNS} WHERE day = $1 AND environment = $2"),
                cell,
            )
            .await?;
            let mut row = existing.map(DayStats::from).unwrap_or_default();
            row.day = delta.day;
            row.environment = delta.environment.clone();
            row.merge(&delta);
            sql::exec(
                &mut *tx,
                "DELETE FROM stats_daily WHERE day = $1 AND environment = $2",
                cell,
            )
            .await?;
            insert_day(&mut tx, &row).await?;
        }
        sql::exec(
            &mut *tx,
            "UPDATE stats_progress SET deployment_id = $1, event_id = $2 WHERE id = 1",
            (work.deployment_id, work.event_id),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Counts `days` again from their deployments (once GitHub told a commit's time).
    pub async fn recount_stats(&self, days: &[i64]) -> Result<()> {
        let recounted = self.recount(days).await?;
        let (_guard, mut tx) = self.write().await?;
        replace_days(&mut tx, recounted).await?;
        tx.commit().await?;
        Ok(())
    }

    /// `days` counted from their deployments, a month at most at a time: (first, last,
    /// the counts).
    async fn recount(&self, days: &[i64]) -> Result<Vec<(i64, i64, Vec<DayStats>)>> {
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for &day in days {
            match runs.last_mut() {
                Some((first, last)) if day == *last + 1 && day - *first < RUN_DAYS => *last = day,
                _ => runs.push((day, day)),
            }
        }
        let mut counted = Vec::new();
        for (first, last) in runs {
            counted.push((first, last, self.count_range(None, first, last).await?));
        }
        Ok(counted)
    }

    /// The deployments after id `from` up to id `to`, counted a batch at a time, by day and
    /// environment (days in `skip`, counted again whole, left out).
    async fn count_new(
        &self,
        from: i64,
        to: i64,
        skip: &[i64],
    ) -> Result<BTreeMap<(i64, String), DayStats>> {
        let (production, integration) = self.production_and_first();
        let sql = facts_sql("d.id > $1 AND d.id <= $2");
        let mut state: BTreeMap<i64, ProductionBefore> = BTreeMap::new();
        let mut out: BTreeMap<(i64, String), DayStats> = BTreeMap::new();
        let mut lo = from;
        while lo < to {
            let hi = (lo + BATCH_IDS).min(to);
            let rows: Vec<FactRow> =
                sql::fetch_all(&self.pool, &sql, (lo, hi, &production, &integration)).await?;
            let (facts, apps) = facts_of(rows, &production);
            let unseen: Vec<i64> = apps
                .into_iter()
                .filter(|a| !state.contains_key(a))
                .collect();
            state.extend(
                self.production_before(&unseen, &production, Before::UpToId(from))
                    .await?,
            );
            for d in count_days_from(&facts, &production, &mut state) {
                if skip.binary_search(&d.day).is_err() {
                    out.entry((d.day, d.environment.clone()))
                        .or_insert_with(|| DayStats {
                            day: d.day,
                            environment: d.environment.clone(),
                            ..DayStats::default()
                        })
                        .merge(&d);
                }
            }
            lo = hi;
        }
        Ok(out)
    }

    /// Counts the deployments made from day `first` to day `last` (both included), of one
    /// application or of all.
    async fn count_range(
        &self,
        application_id: Option<i64>,
        first: i64,
        last: i64,
    ) -> Result<Vec<DayStats>> {
        let (production, integration) = self.production_and_first();
        // Two statements rather than `$5 = 0 OR ...`, which would keep SQLite from using
        // the application's index.
        let sql = facts_sql(if application_id.is_some() {
            "d.created_at >= $1 AND d.created_at < $2 AND d.application_id = $5"
        } else {
            "d.created_at >= $1 AND d.created_at < $2 AND $5 = 0"
        });
        let rows: Vec<FactRow> = sql::fetch_all(
            &self.pool,
            &sql,
            (
                first * DAY_MS,
                (last + 1) * DAY_MS,
                &production,
                &integration,
                application_id.unwrap_or(0),
            ),
        )
        .await?;
        let (facts, apps) = facts_of(rows, &production);
        let before = self
            .production_before(&apps, &production, Before::Time(first * DAY_MS))
            .await?;
        Ok(count_days(&facts, &production, &before))
    }

    /// Production's state for each of `apps` just before `at`: its last deployment (one
    /// statement for all, 500 applications at a time), and, for the few whose last one
    /// failed, since when it has been failing (looking back up to 50 deployments).
    async fn production_before(
        &self,
        apps: &[i64],
        production: &str,
        before: Before,
    ) -> Result<BTreeMap<i64, ProductionBefore>> {
        let (bound, at) = match before {
            Before::Time(ms) => ("p.created_at < $2", ms),
            Before::UpToId(id) => ("p.id <= $2", id),
        };
        let mut out: BTreeMap<i64, ProductionBefore> = BTreeMap::new();
        for chunk in apps.chunks(500) {
            // The ids are integers from this database, written as numbers.
            let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
            let sql = format!(
                "SELECT d.application_id, d.version, d.status, d.created_at FROM deployments d WHERE d.id IN (
                   SELECT (SELECT p.id FROM deployments p WHERE p.application_id = a.id AND p.environment = $1 AND {bound}
                           ORDER BY p.id DESC LIMIT 1)
                   FROM applications a WHERE a.id IN ({ids}))",
                ids = ids.join(",")
            );
            let rows: Vec<(i64, String, String, i64)> =
                sql::fetch_all(&self.pool, &sql, (production, at)).await?;
            for (app, version, status, created) in rows {
                let Some(status) = DeploymentStatus::parse(&status) else {
                    continue;
                };
                out.insert(
                    app,
                    ProductionBefore {
                        last: Some((version, status, created)),
                        failing_since_ms: None,
                    },
                );
            }
        }
        let failing: Vec<i64> = out
            .iter()
            .filter(|(_, p)| matches!(p.last, Some((_, DeploymentStatus::Failed, _))))
            .map(|(app, _)| *app)
            .collect();
        for app in failing {
            let sql = format!(
                "SELECT p.status, p.created_at FROM deployments p
                 WHERE p.application_id = $3 AND p.environment = $1 AND {bound} ORDER BY p.id DESC LIMIT 50"
            );
            let rows: Vec<(String, i64)> =
                sql::fetch_all(&self.pool, &sql, (production, at, app)).await?;
            let since = rows
                .iter()
                .take_while(|(s, _)| s.as_str() == DeploymentStatus::Failed.as_str())
                .last()
                .map(|(_, at)| *at);
            if let Some(p) = out.get_mut(&app) {
                p.failing_since_ms = since;
            }
        }
        Ok(out)
    }

    /// The counted days from `first` to `last`, all applications.
    pub async fn stats_days(&self, first: i64, last: i64) -> Result<Vec<DayStats>> {
        let rows: Vec<StatsRow> = sql::fetch_all(
            &self.pool,
            &format!("{STATS_COLUMNS} WHERE day >= $1 AND day <= $2"),
            (first, last),
        )
        .await?;
        Ok(rows.into_iter().map(DayStats::from).collect())
    }

    /// One application's days from `first` to `last`: its whole history counted once and
    /// kept while the application's deployments, events and commit times are unchanged
    /// (a fingerprint read from indexes, a few milliseconds), so a repeated question is
    /// answered from memory. Counting is bounded: at most `AppStatsCache::COUNTING` at
    /// once, `StoreError::Busy` beyond (the caller answers 429 with Retry-After).
    pub async fn application_stats(
        &self,
        application_id: i64,
        first: i64,
        last: i64,
    ) -> Result<Vec<DayStats>> {
        let fingerprint: (Option<i64>, Option<i64>) = sql::fetch_one(
            &self.pool,
            "SELECT MAX(id), MAX(updated_at) FROM deployments WHERE application_id = $1",
            (application_id,),
        )
        .await?;
        let looked_up: Option<i64> = sql::scalar(
            &self.pool,
            "SELECT MAX(looked_up_at) FROM commit_times WHERE application_id = $1",
            (application_id,),
        )
        .await?;
        let key = (fingerprint.0, fingerprint.1, looked_up);
        let today = super::now_ms().div_euclid(DAY_MS);
        let cache = &self.app_stats;
        let days = match cache.get(application_id, key, today) {
            Some(days) => days,
            None => {
                let Ok(_permit) = cache.counting.clone().try_acquire_owned() else {
                    return Err(super::StoreError::Busy(
                        "other applications' stats are being counted; try again in a moment".into(),
                    ));
                };
                let days =
                    std::sync::Arc::new(self.count_range(Some(application_id), 0, today).await?);
                cache.put(application_id, key, today, days.clone());
                days
            }
        };
        Ok(days
            .iter()
            .filter(|d| d.day >= first && d.day <= last)
            .cloned()
            .collect())
    }

    /// Queues the production deployments' commits among the new deployments, for GitHub's
    /// commit time.
    pub async fn queue_commits(&self, work: &StatsWork) -> Result<()> {
        let (production, _) = self.production_and_first();
        self.write_one(
            "INSERT INTO commit_times (application_id, sha, day, committed_at, looked_up_at)
             SELECT application_id, sha, MIN(CAST(created_at / 86400000 AS BIGINT)), NULL, NULL FROM deployments
             WHERE id > $1 AND id <= $2 AND environment = $3 AND sha IS NOT NULL
             GROUP BY application_id, sha
             ON CONFLICT (application_id, sha) DO NOTHING",
            (work.from_deployment_id, work.deployment_id, production),
        )
        .await?;
        Ok(())
    }

    /// Commits not looked up yet: `(application id, repo, sha)`.
    pub async fn pending_commits(&self, limit: i64) -> Result<Vec<(i64, String, String)>> {
        sql::fetch_all(
            &self.pool,
            "SELECT c.application_id, a.repo, c.sha FROM commit_times c JOIN applications a ON a.id = c.application_id
             WHERE c.looked_up_at IS NULL ORDER BY c.day DESC LIMIT $1",
            (limit,),
        )
        .await
    }

    /// Stores what GitHub said of a commit (`None`: it does not know it) and marks the day
    /// of its first production deployment to be counted again. Returns that day.
    pub async fn save_commit_time(
        &self,
        application_id: i64,
        sha: &str,
        committed_at_ms: Option<i64>,
    ) -> Result<Option<i64>> {
        let (_guard, mut tx) = self.write().await?;
        let day: Option<i64> = sql::scalar_optional(
            &mut *tx,
            "UPDATE commit_times SET committed_at = $1, looked_up_at = $2 WHERE application_id = $3 AND sha = $4 RETURNING day",
            (committed_at_ms, super::now_ms(), application_id, sha),
        )
        .await?;
        tx.commit().await?;
        Ok(day)
    }
}

impl Store {
    /// The report for a parsed query: the counted days, or one application's days counted
    /// now. An application that does not exist is `NotFound`.
    pub async fn stats_report(
        &self,
        q: &crate::domain::stats::StatsQuery,
    ) -> Result<crate::domain::stats::StatsReport> {
        let days = match &q.application {
            Some(shortname) => {
                let app = self.existing_application(shortname).await?;
                self.application_stats(app.id, q.from_day, q.to_day).await?
            }
            None => self.stats_days(q.from_day, q.to_day).await?,
        };
        let envs: Vec<String> = self.environments.owned_names();
        let mut report = crate::domain::stats::StatsReport::build(q, &envs, &days);
        // One application is counted now, from its deployments: never behind.
        report.counting = q.application.is_none() && !self.stats_caught_up().await?;
        Ok(report)
    }
}

const STATS_COLUMNS: &str = "SELECT day, environment, deployments, succeeded, failed, failed_changes, rollbacks, lead_times, lead_from_commit, restore_times FROM stats_daily";

/// A `stats_daily` row as stored, read by column name.
#[derive(sqlx::FromRow)]
struct StatsRow {
    day: i64,
    environment: String,
    deployments: i64,
    succeeded: i64,
    failed: i64,
    failed_changes: i64,
    rollbacks: i64,
    lead_times: String,
    lead_from_commit: i64,
    restore_times: String,
}

impl From<StatsRow> for DayStats {
    fn from(r: StatsRow) -> Self {
        DayStats {
            day: r.day,
            environment: r.environment,
            deployments: r.deployments.max(0) as u64,
            succeeded: r.succeeded.max(0) as u64,
            failed: r.failed.max(0) as u64,
            failed_changes: r.failed_changes.max(0) as u64,
            rollbacks: r.rollbacks.max(0) as u64,
            lead: Durations::decode(&r.lead_times),
            lead_from_commit: r.lead_from_commit.max(0) as u64,
            restore: Durations::decode(&r.restore_times),
        }
    }
}

async fn insert_day(tx: &mut sqlx::Transaction<'_, sqlx::Any>, r: &DayStats) -> Result<()> {
    sql::exec(
        &mut **tx,
        "INSERT INTO stats_daily (day, environment, deployments, succeeded, failed, failed_changes, rollbacks, lead_times, lead_from_commit, restore_times)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        (
            r.day,
            &r.environment,
            r.deployments as i64,
            r.succeeded as i64,
            r.failed as i64,
            r.failed_changes as i64,
            r.rollbacks as i64,
            r.lead.encode(),
            r.lead_from_commit as i64,
            r.restore.encode(),
        ),
    )
    .await?;
    Ok(())
}

/// Replaces whole runs of days with their new counts.
async fn replace_days(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    runs: Vec<(i64, i64, Vec<DayStats>)>,
) -> Result<()> {
    for (first, last, rows) in runs {
        sql::exec(
            &mut **tx,
            "DELETE FROM stats_daily WHERE day >= $1 AND day <= $2",
            (first, last),
        )
        .await?;
        for r in &rows {
            insert_day(tx, r).await?;
        }
    }
    Ok(())
}

/// Parses fact rows; also returns the applications with a production deployment among
/// them.
fn facts_of(rows: Vec<FactRow>, production: &str) -> (Vec<DeploymentFact>, Vec<i64>) {
    let mut facts = Vec::with_capacity(rows.len());
    let mut apps: Vec<i64> = Vec::new();
    for (app, env, version, status, at, committed, integrated, before) in rows {
        let Some(status) = DeploymentStatus::parse(&status) else {
            continue;
        };
        if env == production && apps.last() != Some(&app) {
            apps.push(app);
        }
        facts.push(DeploymentFact {
            application_id: app,
            environment: env,
            version,
            status,
            created_at_ms: at,
            committed_at_ms: committed,
            integrated_at_ms: integrated,
            deployed_before: before == 1,
        });
    }
    (facts, apps)
}

/// What `/metrics` reports of the database, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct OperationalCounts {
    /// Current deployments by environment and status (one per application and environment).
    pub current: Vec<(String, String, i64)>,
    /// Deployments ever recorded, by environment (from the daily counts).
    pub recorded: Vec<(String, i64)>,
    /// Alert deliveries not yet sent.
    pub alerts_pending: i64,
}

impl Store {
    /// Connections of the read pool: (open, idle).
    pub fn pool_use(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    pub async fn operational_counts(&self) -> Result<OperationalCounts> {
        let current = sql::fetch_all(
            &self.pool,
            "SELECT c.environment, d.status, CAST(COUNT(*) AS BIGINT) FROM current_deployments c
             JOIN deployments d ON d.id = c.deployment_id GROUP BY c.environment, d.status",
            (),
        )
        .await?;
        let recorded = sql::fetch_all(
            &self.pool,
            "SELECT environment, CAST(SUM(deployments) AS BIGINT) FROM stats_daily GROUP BY environment",
            (),
        )
        .await?;
        let alerts_pending: i64 = sql::scalar(
            &self.pool,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM alert_deliveries WHERE state = 'pending'",
            (),
        )
        .await?;
        Ok(OperationalCounts {
            current,
            recorded,
            alerts_pending,
        })
    }
}

/// One application's whole history of daily counts, per application, kept while its
/// fingerprint (last deployment id, last update, last commit lookup) and the day are the
/// same. Bounded: at most `MAX_APPS` applications (the least recently asked go first).
#[derive(Debug)]
pub struct AppStatsCache {
    entries: std::sync::Mutex<std::collections::HashMap<i64, AppStatsEntry>>,
    /// Counts running at once.
    pub(super) counting: std::sync::Arc<tokio::sync::Semaphore>,
}

type Fingerprint = (Option<i64>, Option<i64>, Option<i64>);

#[derive(Debug)]
struct AppStatsEntry {
    key: Fingerprint,
    today: i64,
    days: std::sync::Arc<Vec<DayStats>>,
    used: std::time::Instant,
}

impl Default for AppStatsCache {
    fn default() -> Self {
        Self {
            entries: Default::default(),
            counting: std::sync::Arc::new(tokio::sync::Semaphore::new(Self::COUNTING)),
        }
    }
}

impl Store {
    /// Takes one of the slots for counting an application's stats, if one is free (the
    /// tests fill them to see the 429 a caller gets when all are taken).
    pub fn hold_stats_counting(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.app_stats.counting.clone().try_acquire_owned().ok()
    }
}

impl AppStatsCache {
    /// Applications kept.
    pub const MAX_APPS: usize = 256;
    /// Applications counted at once (each may read years of deployments).
    pub const COUNTING: usize = 2;

    fn get(&self, app: i64, key: Fingerprint, today: i64) -> Option<std::sync::Arc<Vec<DayStats>>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.get_mut(&app)?;
        if e.key != key || e.today != today {
            return None;
        }
        e.used = std::time::Instant::now();
        Some(e.days.clone())
    }

    fn put(&self, app: i64, key: Fingerprint, today: i64, days: std::sync::Arc<Vec<DayStats>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Self::MAX_APPS && !entries.contains_key(&app) {
            if let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| *id)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            app,
            AppStatsEntry {
                key,
                today,
                days,
                used: std::time::Instant::now(),
            },
        );
    }
}
