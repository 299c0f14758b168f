//! One-click promotion ("Deploy v301 to staging": what runs in the environment before),
//! release trains (the same for many apps at once), and rollback ("Roll back to v299", with
//! a reason, freezing promotion out of that environment). The version always comes from the
//! server's own record (`deploy_rules::promotion`); each deploy goes through
//! `actions::deploy::perform_deploy`, so the rules, the in-flight slot, the audit entry and the
//! alert are the same as a manual Deploy's.

use crate::actions::{ActionDone, TrainResult};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Who asks to deploy an application to an environment (`deployer_of`): the person, the
/// server's state, the environment and the application's shortname.
#[cfg(feature = "ssr")]
struct Deployer(
    crate::auth::CurrentUser,
    crate::state::AppState,
    crate::domain::Environment,
    crate::domain::Shortname,
);

/// Who asks to deploy `shortname` to `environment`, checked in this order: signed in,
/// the names parse, and the person may deploy there (the role first: someone who may not
/// deploy there learns nothing more, not even whether the application exists).
#[cfg(feature = "ssr")]
fn deployer_of(shortname: &str, environment: &str) -> Result<Deployer, crate::error::AppError> {
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let env = state.store.environments().parse(environment)?;
    let shortname = crate::domain::Shortname::parse(shortname)?;
    crate::domain::deploy_rules::check_deploy_role(&user, env.as_str())?;
    Ok(Deployer(user, state, env, shortname))
}

/// Deploys to `environment` what runs in the environment before it.
#[server(endpoint = "promote")]
pub async fn promote(
    shortname: String,
    environment: String,
    confirm: Option<String>,
    expected_version: Option<String>,
    override_reason: Option<String>,
) -> Result<ActionDone, crate::error::AppError> {
    use crate::actions::deploy::answer_wait;
    let Deployer(user, state, env, shortname) = deployer_of(&shortname, &environment)?;
    let app = state.store.existing_application(shortname.as_str()).await?;
    let grid = state
        .store
        .grid_for(std::slice::from_ref(&app.shortname))
        .await?;
    crate::actions::promote::promote_one(
        &state,
        &user,
        &app,
        &grid,
        &env,
        confirm.as_deref() == Some("yes"),
        expected_version.as_deref(),
        override_reason.as_deref(),
        None,
    )
    .await?
    .answer(answer_wait(state.pipeline.timeout()))
    .await
}

/// Rolls `environment` back to the newest earlier version that succeeded there
/// (`deploy_rules::rollback_target`), through the same deploy path as Deploy, freezing
/// automatic promotion of the app into and out of that environment with the written
/// reason, in the same transaction as the deploy's intent (the pipeline's promotion gate
/// answers `allowed: false` until someone lifts it). Audited.
#[server(endpoint = "rollback")]
pub async fn rollback(
    shortname: String,
    environment: String,
    reason: Option<String>,
    confirm: Option<String>,
    expected_version: Option<String>,
    override_reason: Option<String>,
) -> Result<ActionDone, crate::error::AppError> {
    use crate::actions::deploy::answer_wait;
    let Deployer(user, state, env, shortname) = deployer_of(&shortname, &environment)?;
    let reason = crate::domain::deploy_rules::rollback_reason(reason.as_deref())?;
    let app = state.store.existing_application(shortname.as_str()).await?;
    let (dispatching, _from, _target) = crate::actions::rollback::rollback(
        &state,
        &user,
        &app,
        &env,
        reason,
        confirm.as_deref() == Some("yes"),
        expected_version.as_deref(),
        override_reason.as_deref(),
    )
    .await?;
    let done = dispatching
        .answer(answer_wait(state.pipeline.timeout()))
        .await?;
    Ok(ActionDone {
        message: format!(
            "{} Promotion of {} into and out of {env} is frozen until someone lifts it.",
            done.message
                .replace("Deploy of", "Rollback to")
                .replace("The deploy of", "The rollback to"),
            app.shortname
        ),
        link: done.link,
    })
}

/// A release train: promotes each chosen app (`applications[0]=...&applications[1]=...`,
/// or shortnames separated by commas or spaces; none: every app that needs a manual
/// deployment to `environment`). The train is stored and run as a job
/// (`actions::train`): one dispatch per app, four at a time; a refusal or failure of one
/// does not stop the others; one audit entry lists its items (each deploy has its own
/// too). The answer comes when the train ends, or after a while with the items as they
/// stand (the page follows the rest live, and `/train?id=N` shows it after a reload).
#[server(endpoint = "train")]
pub async fn release_train(
    environment: String,
    applications: Option<Vec<String>>,
    confirm: Option<String>,
    override_reason: Option<String>,
) -> Result<TrainResult, crate::error::AppError> {
    use crate::domain::{deploy_rules as rules, Flag};
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let store = &state.store;
    let env = store.environments().parse(&environment)?;
    rules::check_deploy_role(&user, env.as_str())?;
    let asked: Vec<String> = applications
        .unwrap_or_default()
        .iter()
        .flat_map(|a| a.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .map(|s| crate::domain::Shortname::parse(s).map(|s| s.as_str().to_owned()))
        .collect::<Result<_, _>>()?;
    // None asked: every app flagged "manual deployment" there (the grid read only then).
    let flagged: Vec<(String, Vec<Flag>)> = if asked.is_empty() {
        store
            .grid()
            .await?
            .apps
            .into_iter()
            .map(|a| (a.shortname, a.flags))
            .collect()
    } else {
        vec![]
    };
    let chosen = rules::train_choice(asked, &flagged, env.as_str())?;
    let confirmed = confirm.as_deref() == Some("yes");
    // A gate's override reason is checked once, before the train starts.
    let override_reason = match override_reason.as_deref().map(str::trim) {
        Some(r) if !r.is_empty() => {
            Some(rules::written_reason(Some(r), "deploying through a gate")?)
        }
        _ => None,
    };
    let (id, job) =
        crate::actions::train::start(&state, &user, env, chosen, confirmed, override_reason)
            .await?;
    let wait = crate::actions::deploy::answer_wait(state.pipeline.timeout());
    if tokio::time::timeout(wait, job).await.is_err() {
        tracing::debug!(train = id, "the train goes on after its request's answer");
    }
    let train = store
        .train(id)
        .await?
        .ok_or_else(|| AppError::new(404, format!("no train {id}")))?;
    Ok(crate::actions::train::result_of(train))
}

/// A train's items as they stand now (the train page follows a train with it, and shows
/// one after a reload). Anyone signed in may read it, as the audit log.
#[server(endpoint = "train_progress")]
pub async fn train_progress(id: i64) -> Result<TrainResult, crate::error::AppError> {
    use crate::error::AppError;
    crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let train = state
        .store
        .train(id)
        .await?
        .ok_or_else(|| AppError::new(404, format!("no train {id}")))?;
    Ok(crate::actions::train::result_of(train))
}

/// What each of `applications` has in `environment` now ("v301 in progress"): a train's
/// results, followed live.
#[server(endpoint = "train_status")]
pub async fn train_status(
    environment: String,
    applications: Vec<String>,
) -> Result<Vec<(String, String)>, crate::error::AppError> {
    use crate::error::AppError;
    crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let env = state
        .store
        .environments()
        .parse(&environment)
        .map_err(|e| AppError::new(422, e.to_string()))?;
    if applications.len() > crate::domain::deploy_rules::MAX_TRAIN {
        return Err(AppError::new(
            422,
            format!(
                "at most {} applications",
                crate::domain::deploy_rules::MAX_TRAIN
            ),
        ));
    }
    let names: Vec<String> = applications
        .iter()
        .filter_map(|a| crate::domain::Shortname::parse(a).ok())
        .map(|s| s.as_str().to_owned())
        .collect();
    let grid = state.store.grid_for(&names).await?;
    let i = state.store.environments().index_of(&env).unwrap_or(0);
    Ok(grid
        .apps
        .iter()
        .map(|a| {
            let now = match a.cells.get(i).and_then(Option::as_ref) {
                Some(c) => format!(
                    "{} {}",
                    c.version,
                    super::status_words(c.status, c.failed_stage, c.stalled)
                ),
                None => "not deployed".to_string(),
            };
            (a.shortname.clone(), now)
        })
        .collect())
}

/// An app waiting for a manual deployment, and what its promotion would deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub shortname: String,
    pub name: String,
    pub from: String,
    pub version: String,
}

/// Per environment (pipeline order, the first left out), the apps flagged "manual
/// deployment" there whose version before has succeeded.
#[server(endpoint = "train_candidates")]
pub async fn train_candidates() -> Result<Vec<(String, Vec<Candidate>)>, crate::error::AppError> {
    use crate::domain::{DeploymentStatus, Flag};
    crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let grid = state.store.grid().await?;
    let mut out: Vec<(String, Vec<Candidate>)> = grid
        .environments
        .iter()
        .skip(1)
        .map(|e| (e.clone(), vec![]))
        .collect();
    for app in &grid.apps {
        for f in &app.flags {
            let Flag::ManualDeployment {
                environment,
                behind,
            } = f
            else {
                continue;
            };
            let Some(i) = grid.environments.iter().position(|e| e == behind) else {
                continue;
            };
            let Some(Some(cell)) = app.cells.get(i) else {
                continue;
            };
            if cell.status != DeploymentStatus::Succeeded {
                continue;
            }
            if let Some((_, list)) = out.iter_mut().find(|(e, _)| e == environment) {
                list.push(Candidate {
                    shortname: app.shortname.clone(),
                    name: app.name.clone(),
                    from: behind.clone(),
                    version: cell.version.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// `/train`: every app waiting for a manual deployment, by environment, to promote in one
/// train; the result of each app as it was dispatched or skipped.
#[component]
pub fn TrainPage() -> impl IntoView {
    let train = ServerAction::<ReleaseTrain>::new();
    let candidates = Resource::new(move || train.version().get(), |_| train_candidates());
    // The train's items and the dispatched apps' deployments, read again at every change
    // (the train's job publishes each item's state as it changes).
    let tick = RwSignal::new(0u64);
    crate::changes::on_change(None, move || {
        candidates.refetch();
        tick.update(|t| *t += 1);
    });
    // The train just started here, or the one the address names (`/train?id=N`).
    let query = leptos_router::hooks::use_query_map();
    let train_id = Memo::new(move |_| {
        train
            .value()
            .get()
            .and_then(Result::ok)
            .map(|r| r.id)
            .or_else(|| query.read().get("id").and_then(|v| v.parse::<i64>().ok()))
    });
    // A reload shows the same train.
    let navigate = leptos_router::hooks::use_navigate();
    Effect::new(move |_| {
        if let Some(r) = train.value().get().and_then(Result::ok) {
            navigate(
                &format!("/train?id={}", r.id),
                leptos_router::NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..Default::default()
                },
            );
        }
    });
    let progress = Resource::new(
        move || (train_id.get(), tick.get()),
        |(id, _)| async move {
            match id {
                Some(id) => train_progress(id).await.ok(),
                None => None,
            }
        },
    );
    let status = Resource::new(
        move || {
            let asked = progress.get().flatten().map(|r| {
                let apps: Vec<String> = r
                    .items
                    .iter()
                    .filter(|i| i.outcome == "dispatched")
                    .map(|i| i.application.clone())
                    .collect();
                (r.environment, apps)
            });
            (asked, tick.get())
        },
        |(asked, _)| async move {
            match asked {
                Some((environment, applications)) if !applications.is_empty() => {
                    train_status(environment, applications)
                        .await
                        .unwrap_or_default()
                }
                _ => vec![],
            }
        },
    );
    view! {
        <leptos_meta::Title text="Release train · Release"/>
        <h1>"Release train"</h1>
        <p class="muted">"Promote many applications at once: each gets exactly what runs in the environment before, through the same rules as Deploy (your role for the environment, freezes, one deploy in flight). Frozen apps and apps with a deploy in flight are skipped with the reason; one failure does not stop the others. A train runs on the server: leaving this page stops nothing, and its address shows it again."</p>
        <Transition fallback=|| ()>
            {move || {
                let now: Vec<(String, String)> = status.get().unwrap_or_default();
                let failed = train.value().get().and_then(|r| r.err());
                let shown = progress.get().flatten().or_else(|| train.value().get().and_then(Result::ok));
                match (failed, shown) {
                    (Some(e), _) => Some(view! { <p class="notice error" role="alert">{e.to_string()}</p> }.into_any()),
                    (None, Some(result)) => Some(view! {
                        <table class="activity train-result" aria-live="polite">
                            <caption>{format!(
                                "Train {} to {}{}: each app's deployment as the pipeline reports it, live",
                                result.id,
                                result.environment,
                                if result.finished { "" } else { " (running)" }
                            )}</caption>
                            <thead><tr><th scope="col">"Application"</th><th scope="col">"Outcome"</th><th scope="col">"Now"</th><th scope="col">"Detail"</th></tr></thead>
                            <tbody>
                                {result.items.into_iter().map(|i| {
                                    let state = now
                                        .iter()
                                        .find(|(a, _)| *a == i.application)
                                        .map(|(_, s)| s.clone())
                                        .unwrap_or_default();
                                    view! {
                                        <tr class=format!("train-{}", i.outcome)>
                                            <td><a href=format!("/applications/{}", i.application)>{i.application.clone()}</a></td>
                                            <td>{i.outcome.clone()}</td>
                                            <td class="train-now">{state}</td>
                                            <td>{i.message}{i.link.map(|l| view! { " " <a href=l>"View run"</a> })}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()),
                    (None, None) => None,
                }
            }}
        </Transition>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            <ErrorBoundary fallback=|errors| view! { <super::ErrorView errors/> }>
                {move || Suspend::new(async move {
                    candidates.await.map(|envs| {
                        let last = envs.last().map(|(e, _)| e.clone()).unwrap_or_default();
                        envs.into_iter().map(|(env, apps)| {
                            let heading = format!("To {env}");
                            if apps.is_empty() {
                                return view! {
                                    <section><h2>{heading}</h2><p>{format!("No application needs a manual deployment to {env}.")}</p></section>
                                }.into_any();
                            }
                            let n = apps.len();
                            let needs_confirm = env == last;
                            view! {
                                <section>
                                    <h2>{heading}</h2>
                                    <ActionForm action=train attr:class="train-form">
                                        <input type="hidden" name="environment" value=env.clone()/>
                                        <table class="activity">
                                            <thead><tr><th scope="col">"Promote"</th><th scope="col">"Application"</th><th scope="col">"Version"</th></tr></thead>
                                            <tbody>
                                                {apps.into_iter().enumerate().map(|(i, c)| view! {
                                                    <tr>
                                                        <td><input type="checkbox" checked name=format!("applications[{i}]") value=c.shortname.clone() aria-label=format!("promote {}", c.name)/></td>
                                                        <td><a href=format!("/applications/{}", c.shortname)>{c.name.clone()}</a></td>
                                                        <td>{format!("{} (runs in {})", c.version, c.from)}</td>
                                                    </tr>
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                        <label class="override">"Reason to go through a closed gate (optional) " <input name="override_reason" maxlength="500" placeholder="failing checks, soak time: audited and alerted"/></label>
                                        {needs_confirm.then(|| view! {
                                            <label class="check"><input type="checkbox" name="confirm" value="yes"/>{format!(" I mean it (needed for {env})")}</label>
                                        })}
                                        <button type="submit">{format!("Promote the ticked apps to {env} ({n} waiting)")}</button>
                                    </ActionForm>
                                </section>
                            }.into_any()
                        }).collect_view()
                    })
                })}
            </ErrorBoundary>
        </Suspense>
    }
}
