//! `/applications/{shortname}`: one app's current versions, why it is flagged, and its
//! history per environment with each deployment's pipeline timeline.

use super::deploy::{
    ActionResult, Deploy, FreezeBanners, LiftFreeze, PreviewDeploy, PreviewView, RefSuggestions,
    Resubmit, SetFreeze, SimulateMerge,
};
use super::{tree_url, CellView, ErrorView, NotFound, StatusBadge};
use crate::model::{ago, exact_time, short_sha, AppDetail, DeploymentView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[server(endpoint = "application")]
pub async fn get_application(
    shortname: String,
) -> Result<Option<AppDetail>, crate::error::AppError> {
    let user = crate::auth::require_user()?;
    let shortname = crate::domain::Shortname::parse(&shortname)
        .map_err(|e| crate::error::AppError::new(422, e.to_string()))?;
    let state = crate::state::app_state()?;
    let mut detail = state.store.app_detail(shortname.as_str()).await?;
    if let Some(d) = detail.as_mut() {
        d.approvals = state.store.approvals_of(shortname.as_str()).await?;
    }
    // The soak gate of each environment, for what runs in the one before.
    if let (Some(d), Some(app)) = (
        detail.as_mut(),
        state.store.application(shortname.as_str()).await?,
    ) {
        let envs = state.store.environments().as_slice().to_vec();
        for (i, env) in envs.iter().enumerate().skip(1) {
            let Some(Some(before)) = d.summary.cells.get(i - 1) else {
                continue;
            };
            if let Some(s) =
                crate::actions::gates::soak_hold(&state, &app, env, &before.version).await?
            {
                d.soaking.push((
                    env.to_string(),
                    format!("soaking {}/{} min", s.current_minutes, s.required_minutes),
                    s.hold.unwrap_or_default(),
                ));
            }
        }
    }
    Ok(detail.map(|mut d| {
        d.simulated = state.simulator.is_some();
        d.may_deploy = state
            .store
            .environments()
            .names()
            .into_iter()
            .filter(|e| crate::domain::deploy_rules::may_act_on(&user, e))
            .map(str::to_owned)
            .collect();
        d.who_may_deploy = state.who_may_deploy.as_ref().clone();
        d
    }))
}

/// Approves or rejects, as the signed-in person on GitHub, the wait of a run Release
/// dispatched for a GitHub environment with required reviewers (`decision` is `approve`
/// or `reject`). See `actions::approvals::review` for the rules.
#[server(endpoint = "review_deployment")]
pub async fn review_deployment(
    deployment_id: i64,
    decision: String,
    comment: Option<String>,
) -> Result<crate::actions::ActionDone, crate::error::AppError> {
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let approve = match decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(AppError::new(422, "decision must be approve or reject")),
    };
    crate::actions::approvals::review(&state, &user, deployment_id, approve, comment.as_deref())
        .await
}

#[component]
pub fn ApplicationPage() -> impl IntoView {
    let params = use_params_map();
    let shortname = move || params.read().get("shortname").unwrap_or_default();
    let deploy = ServerAction::<Deploy>::new();
    let resubmit = ServerAction::<Resubmit>::new();
    let freeze = ServerAction::<SetFreeze>::new();
    let unfreeze = ServerAction::<LiftFreeze>::new();
    let promote = ServerAction::<super::promote::Promote>::new();
    let rollback = ServerAction::<super::promote::Rollback>::new();
    let actions = Actions {
        deploy,
        resubmit,
        freeze,
        unfreeze,
        promote,
        rollback,
    };
    // Any action done: read the app again.
    let detail = Resource::new(
        move || {
            (
                shortname(),
                deploy.version().get(),
                resubmit.version().get(),
                freeze.version().get(),
                unfreeze.version().get(),
                promote.version().get(),
                rollback.version().get(),
            )
        },
        |(s, ..)| get_application(s),
    );
    crate::changes::on_change(
        Some(params.read_untracked().get("shortname").unwrap_or_default()),
        move || detail.refetch(),
    );
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            <ErrorBoundary fallback=|errors| view! { <ErrorView errors/> }>
                {move || Suspend::new(async move {
                    detail.await.map(|d| match d {
                        Some(d) => view! { <Detail detail=d actions/> }.into_any(),
                        None => view! { <NotFound/> }.into_any(),
                    })
                })}
            </ErrorBoundary>
        </Transition>
    }
}

#[derive(Clone, Copy)]
struct Actions {
    deploy: ServerAction<Deploy>,
    resubmit: ServerAction<Resubmit>,
    freeze: ServerAction<SetFreeze>,
    unfreeze: ServerAction<LiftFreeze>,
    promote: ServerAction<super::promote::Promote>,
    rollback: ServerAction<super::promote::Rollback>,
}

#[component]
fn Detail(detail: AppDetail, actions: Actions) -> impl IntoView {
    let s = detail.summary;
    let freezes = detail.freezes.clone();
    let frozen = !freezes.is_empty();
    let (sn_deploy, sn_freeze, sn_unfreeze) = (
        s.shortname.clone(),
        s.shortname.clone(),
        s.shortname.clone(),
    );
    let now = detail.now_ms;
    let repo = s.repo.clone();
    let envs: Vec<String> = detail
        .history
        .iter()
        .map(|h| h.environment.clone())
        .collect();
    let preview = ServerAction::<PreviewDeploy>::new();
    // Suggestions load when the ref box is first focused, not with the page.
    let suggestions = ServerAction::<RefSuggestions>::new();
    let sn_refs = s.shortname.clone();
    // The forms offer only the environments this person may deploy to; someone who may
    // deploy nowhere sees who may instead of a form that would refuse them.
    let may = detail.may_deploy.clone();
    let cannot = may.is_empty();
    let who_may = detail.who_may_deploy.clone();
    let chosen_env = RwSignal::new(may.first().cloned().unwrap_or_default());
    let chosen_ref = RwSignal::new(String::new());
    let sn_preview = s.shortname.clone();
    // Each "manual deployment" flag offers its promotion: what runs in the environment
    // before (the server decides the version again when it is asked).
    let promotions: Vec<(String, String)> = s
        .flags
        .iter()
        .filter_map(|f| match f {
            crate::domain::Flag::ManualDeployment {
                environment,
                behind,
            } => {
                let i = envs.iter().position(|e| e == behind)?;
                let cell = s.cells.get(i)?.as_ref()?;
                (cell.status == crate::domain::DeploymentStatus::Succeeded)
                    .then(|| (environment.clone(), cell.version.clone()))
            }
            _ => None,
        })
        .filter(|(env, _)| may.contains(env))
        .collect();
    let last_env = envs.last().cloned().unwrap_or_default();
    let sn_promote = s.shortname.clone();
    // Each environment's rollback: the newest earlier version that succeeded there (the
    // server decides it again, and refuses if it changed).
    let rollbacks: Vec<Option<String>> = detail
        .history
        .iter()
        .zip(&s.cells)
        .map(|(h, cell)| {
            if !may.contains(&h.environment) {
                return None;
            }
            let history: Vec<(String, crate::domain::DeploymentStatus)> = h
                .deployments
                .iter()
                .map(|d| (d.version.clone(), d.status))
                .collect();
            crate::domain::deploy_rules::rollback_target(
                &h.environment,
                cell.as_ref().map(|c| c.version.as_str()),
                &history,
            )
            .ok()
        })
        .collect();
    let sn_rollback = s.shortname.clone();
    let last_rollback = last_env.clone();
    let soaking = std::sync::Arc::new(detail.soaking.clone());
    let current = envs
        .iter()
        .cloned()
        .zip(s.cells.into_iter().zip(s.continuous.iter().copied()))
        .zip(rollbacks)
        .map(|((env, (cell, continuous)), target)| {
            let repo = repo.clone();
            let soaking = soaking.clone();
            let (sn_form, env_form) = (sn_rollback.clone(), env.clone());
            let needs_confirm = env == last_rollback;
            let form = target.map(move |target| {
                let label = format!("Roll back to {target}");
                let confirm_label = format!(" I mean it (needed for {env_form})");
                view! {
                    <details class="rollback">
                        <summary>{label.clone()}</summary>
                        <ActionForm action=actions.rollback attr:class="rollback-form">
                            <input type="hidden" name="shortname" value=sn_form.clone()/>
                            <input type="hidden" name="environment" value=env_form.clone()/>
                            <input type="hidden" name="expected_version" value=target.clone()/>
                            <label>"Reason " <input name="reason" required maxlength="500" placeholder="what went wrong"/></label>
                            <label class="override">"Reason to go through a closed gate (optional) " <input name="override_reason" maxlength="500" placeholder="failing checks, soak time: audited and alerted"/></label>
                            {needs_confirm.then(|| view! {
                                <label class="check"><input type="checkbox" name="confirm" value="yes"/>{confirm_label.clone()}</label>
                            })}
                            <button type="submit">{label}</button>
                        </ActionForm>
                    </details>
                }
            });
            view! {
                <div class="env-card">
                    <h3>{env.clone()} {(!continuous).then(|| view! { <span class="tag">"manual"</span> })}</h3>
                    <CellView repo cell now_ms=now/>
                    {soaking.iter().find(|(e, _, _)| *e == env).map(|(_, short, long)| view! {
                        <p class="soaking" title=long.clone()>{short.clone()}</p>
                    })}
                    {form}
                </div>
            }
        })
        .collect_view();
    let flags = s.flags.clone();
    view! {
        <Title text=format!("{} · Release", s.name)/>
        <nav class="breadcrumb" aria-label="Breadcrumb"><a href="/">"Applications"</a> " / " {s.shortname.clone()}</nav>
        <h1>{s.name.clone()}</h1>
        <p class="muted">
            <a href=format!("https://github.com/{}", s.repo)>{s.repo.clone()}</a>
            {(!s.team.is_empty()).then(|| format!(" · {}", s.team))}
            {format!(" · default branch {} · workflow {}", detail.default_branch, detail.workflow_file)}
        </p>
        {(!detail.notes.is_empty()).then(|| view! { <p class="notes">{detail.notes.clone()}</p> })}
        <FreezeBanners freezes now_ms=now/>
        <Approvals approvals=detail.approvals.clone() may_deploy=detail.may_deploy.clone() now_ms=now/>
        <section class="current" aria-labelledby="current-h">
            <h2 id="current-h">"Deployed now"</h2>
            <div class="env-cards">{current}</div>
            <p class="muted small">{s.release_status.clone()}</p>
            <ActionResult value=actions.rollback.value()/>
        </section>
        <section aria-labelledby="flags-h">
            <h2 id="flags-h">"Needs attention"</h2>
            {if flags.is_empty() {
                view! { <p class="ok">"Nothing: every environment is where it should be."</p> }.into_any()
            } else {
                view! {
                    <ul class="flag-list">
                        {flags.into_iter().map(|f| view! {
                            <li><span class=f.css_class()>{f.label()}</span> " " {f.explain()}</li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            {promotions.into_iter().map(|(env, version)| {
                let (sn, env_p, version_p) = (sn_promote.clone(), env.clone(), version.clone());
                let sn_form = sn_promote.clone();
                let is_last = env == last_env;
                let id = format!("promote-{env}");
                let confirm_label = format!(" I mean it (needed for {env})");
                let label = format!("Deploy {version} to {env}");
                view! {
                    <div class="promote" id=id>
                        <ActionForm action=actions.promote attr:class="promote-form">
                            <input type="hidden" name="shortname" value=sn_form/>
                            <input type="hidden" name="environment" value=env/>
                            <input type="hidden" name="expected_version" value=version.clone()/>
                            <label class="override">"Reason to go through a closed gate (optional) " <input name="override_reason" maxlength="500" placeholder="failing checks, soak time: audited and alerted"/></label>
                            {is_last.then(|| view! {
                                <label class="check"><input type="checkbox" name="confirm" value="yes"/>{confirm_label.clone()}</label>
                            })}
                            <button type="submit">{label}</button>
                        </ActionForm>
                        <button
                            type="button"
                            class="secondary"
                            on:click=move |_| {
                                preview.dispatch(PreviewDeploy { shortname: sn.clone(), environment: env_p.clone(), git_ref: version_p.clone() });
                            }
                        >
                            "What would this ship?"
                        </button>
                    </div>
                }
            }).collect_view()}
            <ActionResult value=actions.promote.value()/>
        </section>
        <section aria-labelledby="deploy-h" class="deploy">
            <h2 id="deploy-h">"Deploy"</h2>
            {detail.simulated.then(|| view! { <p class="banner demo" role="note">"Demo mode: deploys here drive a simulated pipeline (a few seconds per stage, an occasional smoke-test failure). Nothing is deployed anywhere. As in the real pipeline, a manual deploy stays where you put it: it is never promoted to other environments."</p> })}
            {(detail.simulated && !cannot).then(|| {
                let merge = ServerAction::<SimulateMerge>::new();
                let sn = sn_deploy.clone();
                view! {
                    <ActionForm action=merge attr:class="merge-form">
                        <input type="hidden" name="shortname" value=sn/>
                        <button type="submit" class="secondary">"Simulate a merge to main"</button>
                        <span class="muted">" The continuous pipeline from the first environment onwards: a new version, promoted wherever continuous deployment is on."</span>
                    </ActionForm>
                    <ActionResult value=merge.value()/>
                }
            })}
            {cannot.then(|| view! {
                <div class="who-may" role="note">
                    <p>"You may not deploy this application. Who may:"</p>
                    {if who_may.is_empty() {
                        view! { <p class="muted">"No deploy roles are configured here ([access.deployers] in the configuration file); in the demo, sign in as a deployer."</p> }.into_any()
                    } else {
                        view! {
                            <ul>
                                {who_may.iter().map(|(env, who)| view! {
                                    <li><strong>{env.clone()}</strong>": "{who.join(", ")}</li>
                                }).collect_view()}
                            </ul>
                        }.into_any()
                    }}
                </div>
            })}
            <ActionForm action=actions.deploy attr:class="deploy-form" attr:hidden=cannot>
                <input type="hidden" name="shortname" value=sn_deploy.clone()/>
                <label>
                    "Environment "
                    <select name="environment" on:change=move |ev| chosen_env.set(event_target_value(&ev))>
                        {may.iter().map(|e| view! { <option value=e.clone()>{e.clone()}</option> }).collect_view()}
                    </select>
                </label>
                <label>
                    "Git ref "
                    <input
                        name="git_ref"
                        required
                        placeholder="tag, branch or commit SHA"
                        autocomplete="off"
                        list="ref-suggestions"
                        on:input=move |ev| chosen_ref.set(event_target_value(&ev))
                        on:focus=move |_| {
                            if suggestions.value().get_untracked().is_none() && !suggestions.pending().get_untracked() {
                                suggestions.dispatch(RefSuggestions { shortname: sn_refs.clone() });
                            }
                        }
                    />
                    <datalist id="ref-suggestions">
                        {move || {
                            suggestions
                                .value()
                                .get()
                                .and_then(Result::ok)
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(r, what)| view! { <option value=r>{what}</option> })
                                .collect_view()
                        }}
                    </datalist>
                </label>
                <label class="check">
                    <input type="checkbox" name="confirm" value="yes"/>
                    {format!(" I mean it (needed for {})", envs.last().cloned().unwrap_or_default())}
                </label>
                <label class="override">{if frozen { "Reason to deploy through the freeze (admins) or a closed gate " } else { "Reason to go through a closed gate (optional) " }}
                    <input name="override_reason" maxlength="500" placeholder="failing checks, soak time, a freeze: audited and alerted"/></label>
                <button type="submit">"Deploy"</button>
            </ActionForm>
            <button
                type="button"
                class="secondary"
                hidden=cannot
                on:click=move |_| {
                    preview.dispatch(PreviewDeploy { shortname: sn_preview.clone(), environment: chosen_env.get_untracked(), git_ref: chosen_ref.get_untracked() });
                }
            >
                "What would this ship?"
            </button>
            <PreviewView value=preview.value()/>
            <ActionResult value=actions.deploy.value()/>
            <details class="freeze-controls" hidden=cannot>
                <summary>"Freeze deploys to this app"</summary>
                <ActionForm action=actions.freeze>
                    <input type="hidden" name="shortname" value=sn_freeze.clone()/>
                    <label>"Reason " <input name="reason" required placeholder="e.g. data migration running"/></label>
                    <button type="submit">"Freeze"</button>
                </ActionForm>
                <ActionForm action=actions.unfreeze>
                    <input type="hidden" name="shortname" value=sn_unfreeze.clone()/>
                    <button type="submit">"Lift the freeze"</button>
                </ActionForm>
                <ActionResult value=actions.freeze.value()/>
                <ActionResult value=actions.unfreeze.value()/>
            </details>
        </section>
        <section aria-labelledby="history-h">
            <h2 id="history-h">"History"</h2>
            // The answer to a Resubmit stays here, not beside its button: the deployment
            // stops being "failed" (and loses the button) as soon as the pipeline starts
            // again, and the answer must not vanish with it.
            <ActionResult value=actions.resubmit.value()/>
            {detail.history.into_iter().map(|h| {
                let repo = repo.clone();
                view! {
                    <h3>{h.environment.clone()}</h3>
                    {if h.deployments.is_empty() {
                        view! { <p class="muted">"No deployments yet."</p> }.into_any()
                    } else {
                        view! {
                            <ol class="history">
                                {h.deployments.into_iter().map(|d| view! { <DeploymentItem repo=repo.clone() d now_ms=now resubmit=actions.resubmit/> }).collect_view()}
                            </ol>
                        }.into_any()
                    }}
                }
            }).collect_view()}
        </section>
    }
}

#[component]
fn DeploymentItem(
    repo: String,
    d: DeploymentView,
    now_ms: i64,
    resubmit: ServerAction<Resubmit>,
) -> impl IntoView {
    let can_resubmit = d.status == crate::domain::DeploymentStatus::Failed
        && d.workflow.as_ref().is_some_and(|w| w.name.is_some());
    let sha = d
        .sha
        .as_deref()
        .filter(|s| *s != d.version)
        .map(|s| short_sha(s).to_string());
    let workflow_link = d.workflow.as_ref().and_then(|w| w.url.clone());
    // The deployment's own workflow is linked once, above; a stage links another one
    // (a resubmit's) where it first appears.
    let head_link = workflow_link.clone();
    view! {
        <li class="deployment" id=format!("deployment-{}", d.id)>
            <div class="deployment-head">
                <a class="version" href=tree_url(&repo, &d.version)>{d.version.clone()}</a>
                {sha.map(|s| view! { <code class="sha">{s}</code> })}
                <StatusBadge status=d.status failed_stage=d.failed_stage stalled=d.stalled/>
                <span class="muted">{d.trigger.clone()}</span>
                {d.deployed_by.clone().map(|who| view! { <span>" by " {who}</span> })}
                {d.gate_note.clone().map(|n| view! { <strong class="gate-note">{n}</strong> })}
                <time datetime=exact_time(d.created_at_ms) title=exact_time(d.created_at_ms)>{ago(now_ms, d.created_at_ms)}</time>
                {workflow_link.map(|u| view! { <a class="workflow" href=u>"View workflow"</a> })}
                {d.run_url.clone().map(|u| view! { <a class="workflow" href=u>"GitHub run"</a> })}
                {can_resubmit.then(|| view! {
                    <ActionForm action=resubmit attr:class="inline">
                        <input type="hidden" name="deployment_id" value=d.id.to_string()/>
                        <button type="submit">"Resubmit"</button>
                    </ActionForm>
                })}
            </div>
            {(!d.events.is_empty()).then(|| view! {
                <ol class="timeline" aria-label="Pipeline stages">
                    {crate::model::stage_rows(&d.events).into_iter().map(|r| {
                        let when = r.started_ms.or(r.finished_ms).unwrap_or(d.created_at_ms);
                        let took = match (r.duration_ms(), r.outcome) {
                            (Some(ms), _) => crate::domain::stats::human_duration(ms / 1000),
                            (None, "running") => format!("running for {}", crate::domain::stats::human_duration((now_ms - when) / 1000)),
                            (None, _) => String::new(),
                        };
                        let attempt = (r.attempt > 1).then(|| format!("attempt {}", r.attempt));
                        let link = r.workflow_url.filter(|u| Some(u) != head_link.as_ref());
                        view! {
                            <li class=format!("stage-row stage-{}", r.outcome)>
                                <span class="stage">{r.stage.label()}</span>
                                {attempt.map(|a| view! { <span class="muted">{a}</span> })}
                                <span class="event-status">{r.outcome}</span>
                                <span class="duration">{took}</span>
                                <time datetime=exact_time(when) title=exact_time(when)>{ago(now_ms, when)}</time>
                                {r.message.map(|m| view! { <span class="message">{m}</span> })}
                                {link.map(|u| view! { <a href=u>"View workflow"</a> })}
                            </li>
                        }
                    }).collect_view()}
                </ol>
            })}
        </li>
    }
}

/// Runs Release dispatched that wait for a reviewer of a GitHub environment, with
/// Approve and Reject (GitHub decides who may; self-review is refused where the
/// environment prevents it); and the last decisions.
#[component]
fn Approvals(
    approvals: Vec<crate::domain::approval::ApprovalView>,
    may_deploy: Vec<String>,
    now_ms: i64,
) -> impl IntoView {
    if approvals.is_empty() {
        return ().into_any();
    }
    let review = ServerAction::<ReviewDeployment>::new();
    view! {
        <section class="approvals" aria-labelledby="approvals-h">
            <h2 id="approvals-h">"Approvals"</h2>
            <ul>
                {approvals.into_iter().take(10).map(|a| {
                    // The buttons for those with the deploy role there; GitHub then decides.
                    let waiting = a.state == "waiting" && may_deploy.contains(&a.environment);
                    let id = a.deployment_id.to_string();
                    view! {
                        <li class=format!("approval {}", a.state)>
                            <span>{a.label(now_ms)}</span>
                            {waiting.then(|| view! {
                                <ActionForm action=review attr:class="inline review-form">
                                    <input type="hidden" name="deployment_id" value=id.clone()/>
                                    <label>"Comment " <input name="comment" maxlength="1000"/></label>
                                    <button type="submit" name="decision" value="approve">"Approve"</button>
                                    <button type="submit" name="decision" value="reject" class="secondary">"Reject"</button>
                                </ActionForm>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            <ActionResult value=review.value()/>
        </section>
    }
    .into_any()
}
