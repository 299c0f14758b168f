//! All the SQL. One `Store` over `sqlx::Any`, so the same queries run on SQLite (the
//! embedded default) and PostgreSQL. Times are stored as milliseconds since the epoch
//! because `sqlx::Any` has no chrono types.
//!
//! The grid reads `current_deployments` (one row per app and environment), never the
//! history, so its cost does not grow with the number of deployments ever made.

mod alerts;
mod approvals;
mod audit;
mod deployments;
mod dispatches;
mod gates;
mod github_reports;
mod group_commit;
mod live_states;
mod ops;
mod seed;
mod sessions;
pub(crate) mod sql;
mod stats;
mod tokens;
mod users;
mod views;

pub use alerts::{AlertRoute, Delivery};
pub use approvals::{DispatchedRun, NewWaiting};
pub use deployments::Also;
pub use deployments::{EventOutcome, NewDeployment, NewEvent, NotifyOutcome};
pub use dispatches::{
    DeployIntent, DispatchRow, GateOverride, Intent, Outcome, PendingDispatch, TrainItemRow,
    TrainRow,
};
pub use github_reports::{ReportJob, ReportResult, ReportRow};
pub use live_states::{LiveState, Observation, Observed};
pub use ops::{AuditEntry, Freeze, LockHolder, NewAudit, NewFreeze, ResubmitTarget};
pub use seed::PastDeployment;
pub use stats::StatsWork;
pub use tokens::TokenInfo;
pub use users::{SignIn, UserRow};

use crate::domain::{Environments, RepoName, Shortname};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    /// Too many expensive reads at once: retry in a moment (429 with Retry-After).
    #[error("{0}")]
    Busy(String),
}

/// What every reader of a named application answers when there is none (a 404).
pub fn no_application(shortname: &str) -> StoreError {
    StoreError::NotFound(format!("no application {shortname}"))
}

impl StoreError {
    /// The database is busy or out of reach (pool exhausted, a SQLite lock held past
    /// `busy_timeout`, a connection lost or refused, PostgreSQL shutting down): the load
    /// or the operator's doing, not the caller's, and worth retrying. Callers answer 503
    /// with `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(e) => match e {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
                sqlx::Error::Database(db) => {
                    let code = db.code().unwrap_or_default();
                    // SQLite: BUSY (5), LOCKED (6), BUSY_SNAPSHOT (517), BUSY_TIMEOUT (773).
                    // PostgreSQL: connection exceptions (08xxx), shutdowns (57P0x).
                    matches!(code.as_ref(), "5" | "6" | "517" | "773")
                        || code.starts_with("08")
                        || code.starts_with("57P0")
                }
                _ => false,
            },
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Held while a write transaction is open (SQLite's writers queue on it).
pub type WriteGuard = tokio::sync::OwnedMutexGuard<()>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Where `write()` takes its transactions. On SQLite a pool of one connection of its
    /// own: SQLite drops a connection's whole page cache when it sees that another
    /// connection wrote to the file, so with writes spread over the read pool every
    /// batch started by re-reading its indexes. One writer connection never sees a
    /// foreign write (the file has one writer) and keeps them cached. On PostgreSQL, the
    /// pool itself.
    writer: AnyPool,
    backend: Backend,
    /// Shared: a `Store` is cloned into every request's state.
    environments: std::sync::Arc<Environments>,
    write_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Changes (an application's shortname, or `*` for the whole site) for live pages.
    /// On PostgreSQL every server hears every server's changes through LISTEN/NOTIFY.
    changes: tokio::sync::broadcast::Sender<String>,
    /// Notifications waiting for their group commit (`group_commit::GroupCommit`).
    group: std::sync::Arc<group_commit::GroupCommit>,
    /// How long what Argo CD says runs may differ from the current deployment before it is
    /// drift (`[deploys] drift_grace_seconds`).
    drift_grace_ms: i64,
    /// A deploy requested from the dashboard that hears nothing for this long is stalled
    /// (`[deploys] stall_minutes`).
    stall_ms: i64,
    /// One application's stats, counted once per change (`Store::application_stats`).
    app_stats: std::sync::Arc<stats::AppStatsCache>,
}

/// The PostgreSQL channel that carries changes between Release servers.
pub const CHANGES_CHANNEL: &str = "release_changes";

/// An application as declared in the configuration file.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ApplicationSpec {
    pub name: String,
    pub shortname: Shortname,
    pub repo: RepoName,
    pub default_branch: String,
    pub workflow: String,
    pub team: String,
    pub notes: String,
    /// Environments where continuous deployment is off.
    pub manual_environments: Vec<String>,
}

/// A row of `APP_COLUMNS`, read by column name.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ApplicationRow {
    pub id: i64,
    pub shortname: String,
    pub name: String,
    pub repo: String,
    pub default_branch: String,
    pub workflow: String,
    pub team: String,
    pub notes: String,
    #[sqlx(try_from = "CommaList")]
    pub manual_environments: Vec<String>,
}

/// One row's `($n, ...)` of a multi-row INSERT: each column's parameter number after
/// `base` (a number twice: two columns take one parameter).
pub(super) fn row_params(base: usize, params: &[usize]) -> String {
    let list: Vec<String> = params.iter().map(|p| format!("${}", base + p)).collect();
    format!("({})", list.join(", "))
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    fn pool_options(backend: Backend, size: u32) -> AnyPoolOptions {
        AnyPoolOptions::new()
            .max_connections(size)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets the grid read while the API writes; NORMAL is durable
                        // across application crashes, and busy_timeout queues writers.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        // 16 MiB of page cache per connection (SQLite's default is 2): with
                        // a million deployments the indexes a notification touches stay in
                        // memory instead of being read back from the OS for every insert.
                        conn.execute("PRAGMA cache_size = -16384").await?;
                        // Sorts and temporary indexes in memory, not in temporary files.
                        conn.execute("PRAGMA temp_store = MEMORY").await?;
                        // WAL checkpoints run in the background (`spawn_checkpointer`), off
                        // the write path, once a second: a page written by many commits in
                        // between is copied back once. This is the safety net should that
                        // task fall behind (SQLite's default is 1,000 pages).
                        conn.execute("PRAGMA wal_autocheckpoint = 20000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
    }

    /// Opens (and for SQLite creates) the database. `sqlite:path` or `postgres://...`.
    pub async fn connect(url: &str, environments: Environments) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Conflict(format!(
                "unsupported database URL (expected sqlite:PATH or postgres://...): {}",
                redact_url(url)
            )));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                }
            }
            _ => url.to_owned(),
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let pool = Self::pool_options(backend, if backend == Backend::Sqlite { 4 } else { 10 })
            .connect_with(opts.clone())
            .await?;
        let writer = match backend {
            Backend::Sqlite => Self::pool_options(backend, 1).connect_with(opts).await?,
            Backend::Postgres => pool.clone(),
        };
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        if backend == Backend::Postgres {
            spawn_listener(url.clone(), changes.clone());
        } else {
            spawn_checkpointer(pool.clone());
        }
        Ok(Self {
            pool,
            writer,
            backend,
            environments: std::sync::Arc::new(environments),
            write_lock: Default::default(),
            changes,
            group: Default::default(),
            drift_grace_ms: crate::domain::DRIFT_GRACE_MS,
            stall_ms: 30 * 60_000,
            app_stats: Default::default(),
        })
    }

    /// The one way to write. On SQLite (one writer per file) it queues writers of this
    /// process on one lock, then starts the transaction with `BEGIN IMMEDIATE`, so the
    /// file's write lock is taken at the start, where `busy_timeout` applies, instead of
    /// at the first write after a read, where SQLite refuses at once with "database is
    /// locked". On PostgreSQL it is a plain transaction. Hold the returned guard until the
    /// transaction is committed.
    pub async fn write(
        &self,
    ) -> Result<(Option<WriteGuard>, sqlx::Transaction<'static, sqlx::Any>)> {
        match self.backend {
            Backend::Sqlite => {
                let guard = self.write_lock.clone().lock_owned().await;
                let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
                Ok((Some(guard), tx))
            }
            Backend::Postgres => Ok((None, self.pool.begin().await?)),
        }
    }

    /// One statement in a write transaction of its own (on SQLite, the one writer and
    /// `BEGIN IMMEDIATE`): how many rows it changed.
    pub(crate) async fn write_one<'q>(
        &self,
        statement: &'q str,
        params: impl sql::Params<'q>,
    ) -> Result<u64> {
        let (_guard, mut tx) = self.write().await?;
        let changed = sql::exec(&mut *tx, statement, params).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Live changes: each message is an application's shortname, or `*`.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.changes.subscribe()
    }

    /// Commits `tx`, then tells live pages that `what` changed (`publish`): never before
    /// the commit, so a page that reads again on the news sees the change.
    pub(super) async fn commit_and_publish(
        &self,
        tx: sqlx::Transaction<'static, sqlx::Any>,
        what: &str,
    ) -> Result<()> {
        tx.commit().await?;
        self.publish(what).await;
        Ok(())
    }

    /// Tells every live page (on every server) that `what` changed. On PostgreSQL this is a
    /// NOTIFY, which this server's own listener also hears; on SQLite, one process, it is
    /// the local channel.
    pub async fn publish(&self, what: &str) {
        match self.backend {
            Backend::Postgres => {
                if let Err(e) = sql::exec(
                    &self.pool,
                    "SELECT pg_notify($1, $2)",
                    (CHANGES_CHANNEL, what),
                )
                .await
                {
                    tracing::warn!(error = %e, "could not NOTIFY a change");
                }
            }
            // A failed send only means no page is open.
            Backend::Sqlite => {
                self.changes.send(what.to_owned()).ok();
            }
        }
    }

    /// Sets the drift grace period (before the store is shared).
    /// How long a requested deploy may hear nothing before it shows as stalled.
    pub fn set_stall_ms(&mut self, ms: i64) {
        self.stall_ms = ms.max(0);
    }

    pub fn set_drift_grace_ms(&mut self, ms: i64) {
        self.drift_grace_ms = ms.max(0);
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn environments(&self) -> &Environments {
        &self.environments
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("../migrations/sqlite")
                    .run(&self.pool)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("../migrations/postgres")
                    .run(&self.pool)
                    .await?
            }
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sql::exec(&self.pool, "SELECT 1", ()).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    /// Creates or updates the applications declared in configuration.
    pub async fn sync_applications(&self, specs: &[ApplicationSpec]) -> Result<()> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        for a in specs {
            sql::exec(
                &mut *tx,
                "INSERT INTO applications (shortname, name, repo, default_branch, workflow, team, notes, manual_environments, declared, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9)
                 ON CONFLICT (shortname) DO UPDATE SET name = excluded.name, repo = excluded.repo,
                   default_branch = excluded.default_branch, workflow = excluded.workflow, team = excluded.team,
                   notes = excluded.notes, manual_environments = excluded.manual_environments, declared = 1",
                (
                    a.shortname.as_str(),
                    &a.name,
                    a.repo.as_str(),
                    &a.default_branch,
                    &a.workflow,
                    &a.team,
                    &a.notes,
                    a.manual_environments.join(","),
                    now,
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn application_count(&self) -> Result<i64> {
        sql::scalar(&self.pool, "SELECT COUNT(*) FROM applications", ()).await
    }

    pub async fn deployment_count(&self) -> Result<i64> {
        sql::scalar(&self.pool, "SELECT COUNT(*) FROM deployments", ()).await
    }

    /// The application named `shortname`, or `NotFound`.
    pub async fn existing_application(&self, shortname: &str) -> Result<ApplicationRow> {
        self.application(shortname)
            .await?
            .ok_or_else(|| no_application(shortname))
    }

    pub async fn application(&self, shortname: &str) -> Result<Option<ApplicationRow>> {
        let sql = format!("{APP_COLUMNS} WHERE shortname = $1");
        sql::fetch_optional(&self.pool, &sql, (shortname,)).await
    }

    pub async fn applications(&self) -> Result<Vec<ApplicationRow>> {
        let sql = format!("{APP_COLUMNS} ORDER BY name, shortname");
        sql::fetch_all(&self.pool, &sql, ()).await
    }

    /// The application a pipeline notification for `repo` belongs to: the one declared
    /// with that repo, or a new one created on the fly (as the Release app does). More than
    /// one application with that repo is a conflict the caller must resolve.
    async fn application_for_repo<'c>(
        tx: &mut sqlx::Transaction<'c, sqlx::Any>,
        repo: &RepoName,
    ) -> Result<ApplicationRow> {
        let by_repo = format!("{APP_COLUMNS} WHERE repo = $1 ORDER BY id");
        let mut rows: Vec<ApplicationRow> =
            sql::fetch_all(&mut **tx, &by_repo, (repo.as_str(),)).await?;
        match rows.len() {
            1 => return Ok(rows.swap_remove(0)),
            0 => {}
            n => {
                let names: Vec<String> = rows.into_iter().map(|r| r.shortname).collect();
                return Err(StoreError::Conflict(format!(
                    "repo {repo} matches {n} applications ({}); it is ambiguous",
                    names.join(", ")
                )));
            }
        }
        // Created on the fly: the repo's name as shortname, or owner-name if that is taken.
        // Two notifications for a new repo may race (on PostgreSQL both transactions see no
        // row): the insert yields to a concurrent one, and the winner's row is used.
        let base = repo.default_shortname();
        let mut owner_name = format!("{}-{}", repo.owner().to_ascii_lowercase(), base.as_str());
        owner_name.truncate(100);
        let name = repo.humanized_name();
        let mut created = None;
        for candidate in [base.as_str().to_owned(), owner_name] {
            let id: Option<i64> = sql::scalar_optional(
                &mut **tx,
                "INSERT INTO applications (shortname, name, repo, default_branch, workflow, team, notes, manual_environments, declared, created_at)
                 VALUES ($1, $2, $3, 'main', 'deploy.yml', '', '', '', 0, $4)
                 ON CONFLICT (shortname) DO NOTHING RETURNING id",
                (&candidate, &name, repo.as_str(), now_ms()),
            )
            .await?;
            if let Some(id) = id {
                created = Some((id, candidate));
                break;
            }
            // Taken: by a concurrent notification for this same repo (use its row), or by
            // another application (try the next name).
            let first = format!("{APP_COLUMNS} WHERE repo = $1 ORDER BY id LIMIT 1");
            let same: Option<ApplicationRow> =
                sql::fetch_optional(&mut **tx, &first, (repo.as_str(),)).await?;
            if let Some(row) = same {
                return Ok(row);
            }
        }
        let Some((id, shortname)) = created else {
            return Err(StoreError::Conflict(format!(
                "no free shortname for {repo}: declare it in the configuration with a shortname"
            )));
        };
        Ok(ApplicationRow {
            id,
            shortname,
            name,
            repo: repo.as_str().to_owned(),
            default_branch: "main".into(),
            workflow: "deploy.yml".into(),
            team: String::new(),
            notes: String::new(),
            manual_environments: vec![],
        })
    }
}

/// Follows `release_changes` on PostgreSQL, reconnecting after a lost connection. After a
/// reconnect it tells every page to refetch everything (`*`): changes made while it was
/// away were not heard. (A failed `send` only means no page is open.)
/// Copies the WAL back into the database file once a second, from a reading connection
/// (a PASSIVE checkpoint never blocks the writer). A failure is logged once per run of
/// failures; the writer's own autocheckpoint stays as the safety net.
fn spawn_checkpointer(pool: AnyPool) {
    tokio::spawn(async move {
        let mut failing = false;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            match sql::exec(&pool, "PRAGMA wal_checkpoint(PASSIVE)", ()).await {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "a WAL checkpoint failed");
                }
                Err(_) => {}
            }
        }
    });
}

fn spawn_listener(url: String, changes: tokio::sync::broadcast::Sender<String>) {
    tokio::spawn(async move {
        let mut lost = false;
        loop {
            match sqlx::postgres::PgListener::connect(&url).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANGES_CHANNEL).await {
                        tracing::warn!(error = %e, "LISTEN failed; retrying");
                    } else {
                        if lost {
                            tracing::info!("change listener reconnected");
                            changes.send("*".to_owned()).ok();
                        }
                        lost = true;
                        loop {
                            match listener.recv().await {
                                Ok(n) => {
                                    changes.send(n.payload().to_owned()).ok();
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "lost the change listener; reconnecting");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not connect the change listener; retrying")
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

pub(super) const APP_COLUMNS: &str =
    "SELECT id, shortname, name, repo, default_branch, workflow, team, notes, manual_environments FROM applications";

/// A list stored as one comma-separated text column (`manual_environments`,
/// `deploy_environments`), read with `#[sqlx(try_from = "CommaList")]` into its items
/// (none for an empty string).
#[derive(sqlx::Type)]
#[sqlx(transparent)]
pub(super) struct CommaList(String);

impl From<CommaList> for Vec<String> {
    fn from(list: CommaList) -> Self {
        list.0
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A database URL with any password replaced, for logs and messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacts_passwords() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite:release.db"), "sqlite:release.db");
    }
}
