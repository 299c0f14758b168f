//! Release trains as jobs: the train and its items are stored before anything is
//! dispatched; the dispatches run in a task of their own, four at a time, each item's
//! state written as it changes; the train ends with one audit entry listing every item.
//! No request owns the job: a client that leaves or a request that times out stops
//! nothing. A train left running by a server that stopped is ended by the reconciler.

use super::{TrainItem, TrainResult};
use crate::auth::CurrentUser;
use crate::domain::{deploy_rules as rules, Environment};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{TrainItemRow, TrainRow};
use futures::StreamExt;

/// Dispatches at once in one train.
const AT_ONCE: usize = 4;

/// A running train with no news for this long was left by a server that stopped.
pub const ABANDONED_MS: i64 = 120_000;

/// Stores the train and starts its job; the job's handle, to wait on for a while.
pub async fn start(
    state: &AppState,
    user: &CurrentUser,
    environment: Environment,
    chosen: Vec<String>,
    confirmed: bool,
    override_reason: Option<String>,
) -> Result<(i64, tokio::task::JoinHandle<()>), AppError> {
    // The train's row and its job in one task no request owns: a request dropped at any
    // await leaves no train without its job.
    let (began, created) = tokio::sync::oneshot::channel();
    let (task_state, task_user, env) = (state.clone(), user.clone(), environment.clone());
    let handle = tokio::spawn(async move {
        let written = task_state
            .store
            .create_train(env.as_str(), &task_user.login, &chosen)
            .await;
        match written {
            Ok(Ok(id)) => {
                // The request may be gone: the train goes on regardless.
                began.send(Ok(Ok(id))).ok();
                run(
                    task_state,
                    task_user,
                    id,
                    env,
                    chosen,
                    confirmed,
                    override_reason,
                )
                .await;
            }
            other => {
                began.send(other).ok();
            }
        }
    });
    let id = match created.await {
        Ok(Ok(Ok(id))) => id,
        Ok(Ok(Err((id, actor)))) => {
            return Err(AppError::new(
                409,
                format!("{actor}'s train {id} to {environment} is running: wait for it to end (the train page shows it)"),
            ))
        }
        Ok(Err(e)) => return Err(AppError::store(e)),
        Err(_) => {
            return Err(AppError::new(
                500,
                "the train's task stopped before the train was written: nothing was dispatched",
            ))
        }
    };
    Ok((id, handle))
}

/// The job: every item, `AT_ONCE` at a time, then the train's end and audit entry.
async fn run(
    state: AppState,
    user: CurrentUser,
    id: i64,
    environment: Environment,
    chosen: Vec<String>,
    confirmed: bool,
    override_reason: Option<String>,
) {
    let override_reason: Option<std::sync::Arc<str>> = override_reason.map(Into::into);
    let store = &state.store;
    // Every app's row and state read once for the whole train, not once per app.
    let read = async {
        let rows = store.applications().await?;
        let grid = store.grid_for(&chosen).await?;
        Ok::<_, crate::store::StoreError>((rows, grid))
    }
    .await;
    let (rows, grid) = match read {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, train = id, "a release train could not read its applications");
            finish(
                &state,
                id,
                Some(&format!(
                    "not started: the database could not be read ({e})"
                )),
            )
            .await;
            return;
        }
    };
    let rows: std::sync::Arc<std::collections::HashMap<String, crate::store::ApplicationRow>> =
        std::sync::Arc::new(rows.into_iter().map(|a| (a.shortname.clone(), a)).collect());
    let grid = std::sync::Arc::new(grid);
    // The job says it is alive between its items' changes (a dispatch can take a while).
    let heartbeat = {
        let store = store.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(20)).await;
                if let Err(e) = store.train_heartbeat(id).await {
                    tracing::warn!(error = %e, train = id, "a train's heartbeat was not recorded");
                }
            }
        }))
    };
    let state_for_items = state.clone();
    let items = chosen.into_iter().enumerate().map(|(position, shortname)| {
        let (state, user, env, rows, grid, override_reason) = (
            state.clone(),
            user.clone(),
            environment.clone(),
            rows.clone(),
            grid.clone(),
            override_reason.clone(),
        );
        // Each item in a task of its own: one that panics ends as failed, not the train.
        let app = shortname.clone();
        let task = tokio::spawn(async move {
            let item = Item {
                train: id,
                position: position as i64,
                shortname,
                confirmed,
                override_reason,
            };
            run_item(&state, &user, &env, &rows, &grid, item).await
        });
        let state = state_for_items.clone();
        async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, train = id, application = %app, "a train item's task failed");
                let failed = TrainItemRow {
                    position: position as i64,
                    application: app,
                    outcome: "failed".into(),
                    message: "Release failed while dispatching it: the application's page says what became of its deploy".into(),
                    link: None,
                };
                save(&state, id, &failed).await;
            }
        }
    });
    futures::stream::iter(items)
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<()>>()
        .await;
    drop(heartbeat);
    finish(&state, id, None).await;
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One item of a train.
struct Item {
    train: i64,
    position: i64,
    shortname: String,
    confirmed: bool,
    /// The written reason to deploy through a closed gate (checks, soak), for every item.
    override_reason: Option<std::sync::Arc<str>>,
}

/// One item: its promotion, then (when dispatched) the dispatch's outcome.
async fn run_item(
    state: &AppState,
    user: &CurrentUser,
    env: &Environment,
    rows: &std::collections::HashMap<String, crate::store::ApplicationRow>,
    grid: &crate::model::Grid,
    it: Item,
) {
    let row = |outcome: &str, message: String, link: Option<String>| TrainItemRow {
        position: it.position,
        application: it.shortname.clone(),
        outcome: outcome.into(),
        message,
        link,
    };
    let last = match rows.get(&it.shortname) {
        None => row("skipped", format!("no application {}", it.shortname), None),
        Some(app) => {
            let started = super::promote::promote_one(
                state,
                user,
                app,
                grid,
                env,
                it.confirmed,
                None,
                it.override_reason.as_deref(),
                Some(it.train),
            )
            .await;
            match started {
                Err(e) => row(rules::train_item_outcome(e.status), e.message, None),
                Ok(dispatching) => {
                    save(
                        state,
                        it.train,
                        &row("dispatching", "dispatching to GitHub".into(), None),
                    )
                    .await;
                    match dispatching.finish().await {
                        Ok(done) => row("dispatched", done.message, done.link),
                        Err(e) => row("failed", e.message, None),
                    }
                }
            }
        }
    };
    save(state, it.train, &last).await;
}

/// One item's state; a failure to write it is logged (the item's deployment and its
/// audit entries are written by the deploy itself either way).
async fn save(state: &AppState, id: i64, item: &TrainItemRow) {
    if let Err(e) = state.store.set_train_item(id, item).await {
        tracing::error!(error = %e, train = id, application = %item.application, "could not record a train item's state");
    }
}

/// Ends the train with its audit entry; `left_as`: why unfinished items did not finish.
pub async fn finish(state: &AppState, id: i64, left_as: Option<&str>) {
    let ended = state
        .store
        .finish_train(id, left_as, |t| {
            let count = |o: &str| t.items.iter().filter(|i| i.outcome == o).count();
            let outcome = if count("dispatched") > 0 {
                "requested"
            } else {
                "refused"
            };
            let detail = format!(
                "{} dispatched, {} skipped, {} failed: {}",
                count("dispatched"),
                count("skipped"),
                count("failed"),
                t.items
                    .iter()
                    .map(|i| format!("{} {} ({})", i.application, i.outcome, i.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            (outcome.to_string(), detail)
        })
        .await;
    if let Err(e) = ended {
        tracing::error!(error = %e, train = id, "could not end a release train; the reconciler will");
    }
}

/// Ends the trains left running by a server that stopped (no news since `before_ms`).
pub async fn end_abandoned(state: &AppState, before_ms: i64) -> crate::store::Result<usize> {
    let ids = state.store.abandoned_trains(before_ms).await?;
    for id in &ids {
        finish(
            state,
            *id,
            Some("the server running this train stopped before this item finished; the application's page says what became of its deploy"),
        )
        .await;
    }
    Ok(ids.len())
}

/// A stored train as the page shows it.
pub fn result_of(t: TrainRow) -> TrainResult {
    TrainResult {
        id: t.id,
        environment: t.environment,
        finished: t.state == "done",
        items: t
            .items
            .into_iter()
            .map(|i| TrainItem {
                application: i.application,
                outcome: i.outcome,
                message: i.message,
                link: i.link,
            })
            .collect(),
    }
}
