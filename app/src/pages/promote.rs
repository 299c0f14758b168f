//! One-click promotion ("Deploy v301 to staging": what runs in the environment before),
//! release trains (the same for many apps at once), and rollback ("Roll back to v299", with
//! a reason, freezing promotion out of that environment). The version always comes from the
//! server's own record (`deploy_rules::promotion`); each deploy goes through
//! `deploy::perform_deploy`, so the rules, the in-flight slot, the audit entry and the
//! alert are the same as a manual Deploy's.

use super::deploy::ActionDone;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Deploys to `environment` what runs in the environment before it.
#[server(endpoint = "promote")]
pub async fn promote(
    shortname: String,
    environment: String,
    confirm: Option<String>,
    expected_version: Option<String>,
) -> Result<ActionDone, crate::error::AppError> {
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let env = state
        .store
        .environments()
        .parse(&environment)
        .map_err(|e| AppError::new(422, e.to_string()))?;
    let shortname = crate::domain::Shortname::parse(&shortname)
        .map_err(|e| AppError::new(422, e.to_string()))?;
    // The role first: someone who may not deploy there learns nothing more.
    crate::domain::deploy_rules::check_deploy_role(&user, env.as_str()).map_err(AppError::from)?;
    let app = state
        .store
        .application(shortname.as_str())
        .await
        .map_err(AppError::store)?
        .ok_or_else(|| AppError::new(404, format!("no application {shortname}")))?;
    let confirmed = confirm.as_deref() == Some("yes");
    let grid = state
        .store
        .grid_for(std::slice::from_ref(&app.shortname))
        .await
        .map_err(AppError::store)?;
    promote_one(
        &state,
        &user,
        &app,
        &grid,
        &env,
        confirmed,
        expected_version.as_deref(),
    )
    .await
}

/// One app's promotion: what to deploy from the server's record (`grid`, read once for
/// all the apps of a train), then the deploy.
#[cfg(feature = "ssr")]
async fn promote_one(
    state: &crate::state::AppState,
    user: &crate::auth::CurrentUser,
    app: &crate::store::ApplicationRow,
    grid: &crate::model::Grid,
    env: &crate::domain::Environment,
    confirmed: bool,
    expected_version: Option<&str>,
) -> Result<ActionDone, crate::error::AppError> {
    use crate::error::AppError;
    let summary = grid
        .apps
        .iter()
        .find(|a| a.shortname == app.shortname)
        .ok_or_else(|| AppError::new(404, format!("no application {}", app.shortname)))?;
    let names: Vec<&str> = grid.environments.iter().map(String::as_str).collect();
    let cells: Vec<Option<crate::domain::CellState>> = summary
        .cells
        .iter()
        .map(|c| {
            c.as_ref().map(|c| crate::domain::CellState {
                version: c.version.clone(),
                sha: c.sha.clone(),
                status: c.status,
                failed_stage: c.failed_stage,
            })
        })
        .collect();
    let p = crate::domain::deploy_rules::promotion(&names, &cells, env.as_str())
        .map_err(|r| AppError::new(r.status(), format!("{}: {r}", app.shortname)))?;
    // The button said which version: if the environment before moved on since the page
    // was read, nothing is deployed and the person looks again.
    if let Some(expected) = expected_version.filter(|v| *v != p.version) {
        return Err(AppError::new(
            409,
            format!(
                "{}: {} now runs {}, not {expected}: nothing was deployed; look again",
                app.shortname, p.from, p.version
            ),
        ));
    }
    let git_ref = crate::domain::GitRef::parse(&p.version).map_err(|e| {
        AppError::new(
            422,
            format!(
                "{} in {} is not a git ref GitHub could deploy: {}",
                p.version, p.from, e.message
            ),
        )
    })?;
    super::deploy::perform_deploy(
        state,
        user,
        app,
        env.clone(),
        git_ref,
        confirmed,
        None,
        Some(&format!("promoted from {}", p.from)),
    )
    .await
}

/// Rolls `environment` back to the newest earlier version that succeeded there
/// (`deploy_rules::rollback_target`), through the same deploy path as Deploy, then freezes
/// automatic promotion of the app *from* that environment with the written reason (the
/// pipeline's promotion gate answers `allowed: false` until someone lifts it). Audited.
#[server(endpoint = "rollback")]
pub async fn rollback(
    shortname: String,
    environment: String,
    reason: Option<String>,
    confirm: Option<String>,
    expected_version: Option<String>,
) -> Result<ActionDone, crate::error::AppError> {
    use crate::domain::deploy_rules as rules;
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let store = &state.store;
    let env = store
        .environments()
        .parse(&environment)
        .map_err(|e| AppError::new(422, e.to_string()))?;
    let shortname = crate::domain::Shortname::parse(&shortname)
        .map_err(|e| AppError::new(422, e.to_string()))?;
    crate::domain::deploy_rules::check_deploy_role(&user, env.as_str()).map_err(AppError::from)?;
    let reason = rules::rollback_reason(reason.as_deref()).map_err(AppError::from)?;
    let app = store
        .application(shortname.as_str())
        .await
        .map_err(AppError::store)?
        .ok_or_else(|| AppError::new(404, format!("no application {shortname}")))?;
    let detail = store
        .app_detail(shortname.as_str())
        .await
        .map_err(AppError::store)?
        .ok_or_else(|| AppError::new(404, format!("no application {shortname}")))?;
    let idx = store.environments().index_of(&env).unwrap_or(0);
    let current = detail.summary.cells.get(idx).cloned().flatten();
    let history: Vec<(String, crate::domain::DeploymentStatus)> = detail
        .history
        .get(idx)
        .map(|h| {
            h.deployments
                .iter()
                .map(|d| (d.version.clone(), d.status))
                .collect()
        })
        .unwrap_or_default();
    let target = rules::rollback_target(
        env.as_str(),
        current.as_ref().map(|c| c.version.as_str()),
        &history,
    )
    .map_err(AppError::from)?;
    if let Some(expected) = expected_version.as_deref().filter(|v| *v != target) {
        return Err(AppError::new(
            409,
            format!("the version to roll back to is now {target}, not {expected}: nothing was deployed; look again"),
        ));
    }
    let git_ref = crate::domain::GitRef::parse(&target).map_err(|e| {
        AppError::new(
            422,
            format!(
                "{target} is not a git ref GitHub could deploy: {}",
                e.message
            ),
        )
    })?;
    let from_version = current.map(|c| c.version).unwrap_or_default();
    let note = format!("rollback from {from_version}: {reason}");
    let done = super::deploy::perform_deploy(
        &state,
        &user,
        &app,
        env.clone(),
        git_ref,
        confirm.as_deref() == Some("yes"),
        None,
        Some(&note),
    )
    .await?;
    let audit_detail = format!(
        "{} {env}: {from_version} -> {target}; promotion from {env} frozen: {reason}",
        app.shortname
    );
    store
        .freeze_promotion_from(
            app.id,
            env.as_str(),
            &reason,
            &user.login,
            rules::Authority::of(&user).unwrap_or(rules::Authority::Deployer),
            &crate::store::NewAudit {
                actor: &user.login,
                action: "rollback",
                application: Some(&app.shortname),
                environment: Some(env.as_str()),
                outcome: "requested",
                detail: &audit_detail,
            },
        )
        .await
        .map_err(|e| {
            AppError::new(
                503,
                format!(
                    "{} Promotion from {env} could NOT be frozen ({e}): freeze the app by hand.",
                    done.message
                ),
            )
        })?;
    Ok(ActionDone {
        message: format!(
            "{} Promotion of {} into and out of {env} is frozen until someone lifts it.",
            done.message.replace("Deploy of", "Rollback to"),
            app.shortname
        ),
        link: done.link,
    })
}

/// What happened to one app of a train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainItem {
    pub application: String,
    /// `dispatched`, `skipped` (frozen, in flight, nothing to promote) or `failed`.
    pub outcome: String,
    pub message: String,
    pub link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    pub environment: String,
    pub items: Vec<TrainItem>,
}

/// The most apps one train takes (each is a GitHub call as the person).
pub const MAX_TRAIN: usize = 100;

/// A release train: promotes each chosen app (`applications[0]=...&applications[1]=...`,
/// or shortnames separated by commas or spaces; none: every app that needs a manual
/// deployment to `environment`).
/// One dispatch per app, four at a time; a refusal or failure of one does not stop the
/// others. The train is one audit entry listing its items (each deploy has its own too).
#[server(endpoint = "train")]
pub async fn release_train(
    environment: String,
    applications: Option<Vec<String>>,
    confirm: Option<String>,
) -> Result<TrainResult, crate::error::AppError> {
    use crate::domain::Flag;
    use crate::error::AppError;
    use futures::StreamExt;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let store = &state.store;
    let env = store
        .environments()
        .parse(&environment)
        .map_err(|e| AppError::new(422, e.to_string()))?;
    crate::domain::deploy_rules::check_deploy_role(&user, env.as_str()).map_err(AppError::from)?;
    let asked: Vec<String> = applications
        .unwrap_or_default()
        .iter()
        .flat_map(|a| a.split(|c: char| c == ',' || c.is_whitespace()))
        .filter(|s| !s.is_empty())
        .map(|s| {
            crate::domain::Shortname::parse(s)
                .map(|s| s.as_str().to_owned())
                .map_err(|e| AppError::new(422, e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let chosen: Vec<String> = if asked.is_empty() {
        let grid = store.grid().await.map_err(AppError::store)?;
        grid.apps
            .iter()
            .filter(|a| {
                a.flags.iter().any(|f| {
                    matches!(f, Flag::ManualDeployment { environment, .. } if environment == env.as_str())
                })
            })
            .map(|a| a.shortname.clone())
            .collect()
    } else {
        let mut asked = asked;
        asked.sort();
        asked.dedup();
        asked
    };
    if chosen.is_empty() {
        return Err(AppError::new(
            409,
            format!("no application needs a manual deployment to {env}"),
        ));
    }
    if chosen.len() > MAX_TRAIN {
        return Err(AppError::new(
            422,
            format!(
                "a train takes at most {MAX_TRAIN} applications ({} chosen): run it in parts",
                chosen.len()
            ),
        ));
    }
    let confirmed = confirm.as_deref() == Some("yes");
    // Every app's row and state read once for the whole train, not once per app.
    let rows: std::collections::HashMap<String, crate::store::ApplicationRow> = store
        .applications()
        .await
        .map_err(AppError::store)?
        .into_iter()
        .map(|a| (a.shortname.clone(), a))
        .collect();
    let grid = store.grid_for(&chosen).await.map_err(AppError::store)?;
    let (state_ref, user_ref, env_ref, rows_ref, grid_ref) = (&state, &user, &env, &rows, &grid);
    let items: Vec<TrainItem> = futures::stream::iter(chosen)
        .map(|shortname| async move {
            let Some(app) = rows_ref.get(&shortname) else {
                return TrainItem {
                    message: format!("no application {shortname}"),
                    application: shortname,
                    outcome: "skipped".into(),
                    link: None,
                };
            };
            let app = app.clone();
            match promote_one(
                state_ref, user_ref, &app, grid_ref, env_ref, confirmed, None,
            )
            .await
            {
                Ok(done) => TrainItem {
                    application: app.shortname,
                    outcome: "dispatched".into(),
                    message: done.message,
                    link: done.link,
                },
                Err(e) => TrainItem {
                    application: app.shortname,
                    // Refused by the state of things (frozen, in flight, nothing to
                    // promote) or by a missing confirmation: skipped, with the reason.
                    outcome: if matches!(e.status, 409 | 422) {
                        "skipped"
                    } else {
                        "failed"
                    }
                    .into(),
                    message: e.to_string(),
                    link: None,
                },
            }
        })
        .buffered(4)
        .collect()
        .await;
    // An item's refusal or failure is part of the answer, not the answer's status (an
    // `AppError` made for one sets the response's status as it is made).
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(axum::http::StatusCode::OK);
    }
    let count = |o: &str| items.iter().filter(|i| i.outcome == o).count();
    let detail = format!(
        "{} dispatched, {} skipped, {} failed: {}",
        count("dispatched"),
        count("skipped"),
        count("failed"),
        items
            .iter()
            .map(|i| format!("{} {} ({})", i.application, i.outcome, i.message))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let entry = crate::store::NewAudit {
        actor: &user.login,
        action: "train",
        application: None,
        environment: Some(env.as_str()),
        outcome: if count("dispatched") > 0 {
            "requested"
        } else {
            "refused"
        },
        detail: &detail,
    };
    if let Err(e) = store.audit(&entry).await {
        // The deploys themselves are audited one by one; the train's summary is lost.
        tracing::error!(error = %e, "could not write the release train's audit entry");
    }
    Ok(TrainResult {
        environment: env.to_string(),
        items,
    })
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
    if applications.len() > MAX_TRAIN {
        return Err(AppError::new(
            422,
            format!("at most {MAX_TRAIN} applications"),
        ));
    }
    let names: Vec<String> = applications
        .iter()
        .filter_map(|a| crate::domain::Shortname::parse(a).ok())
        .map(|s| s.as_str().to_owned())
        .collect();
    let mut grid = state
        .store
        .grid_for(&names)
        .await
        .map_err(AppError::store)?;
    grid.mark_stalled(state.stall_ms);
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
    let grid = state
        .store
        .grid()
        .await
        .map_err(crate::error::AppError::store)?;
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
    // The dispatched apps' deployments, read again at every change the pipeline reports.
    let tick = RwSignal::new(0u64);
    crate::live::on_change(None, move || {
        candidates.refetch();
        tick.update(|t| *t += 1);
    });
    let status = Resource::new(
        move || {
            let asked = train.value().get().and_then(Result::ok).map(|r| {
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
        <p class="muted">"Promote many applications at once: each gets exactly what runs in the environment before, through the same rules as Deploy (your role for the environment, freezes, one deploy in flight). Frozen apps and apps with a deploy in flight are skipped with the reason; one failure does not stop the others."</p>
        <Transition fallback=|| ()>
            {move || {
                let now: Vec<(String, String)> = status.get().unwrap_or_default();
                train.value().get().map(|r| match r {
                    Ok(result) => view! {
                        <table class="activity train-result" aria-live="polite">
                            <caption>{format!("Train to {}: each app's deployment as the pipeline reports it, live", result.environment)}</caption>
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
                    }.into_any(),
                    Err(e) => view! { <p class="notice error" role="alert">{e.to_string()}</p> }.into_any(),
                })
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
