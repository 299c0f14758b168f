//! `/applications/{shortname}`: one app's current versions, why it is flagged, and its
//! history per environment with each deployment's pipeline timeline.

use super::{tree_url, CellView, ErrorView, NotFound, StatusBadge};
use crate::model::{ago, exact_time, short_sha, AppDetail, DeploymentView};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[server(endpoint = "application")]
pub async fn get_application(shortname: String) -> Result<Option<AppDetail>, ServerFnError> {
    crate::auth::require_user()?;
    let shortname = crate::domain::Shortname::parse(&shortname)
        .map_err(|e| ServerFnError::new(e.to_string()))?;
    let state = crate::state::app_state()?;
    state
        .store
        .app_detail(shortname.as_str())
        .await
        .map_err(crate::state::internal)
}

#[component]
pub fn ApplicationPage() -> impl IntoView {
    let params = use_params_map();
    let shortname = move || params.read().get("shortname").unwrap_or_default();
    let detail = Resource::new(shortname, get_application);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            <ErrorBoundary fallback=|errors| view! { <ErrorView errors/> }>
                {move || Suspend::new(async move {
                    detail.await.map(|d| match d {
                        Some(d) => view! { <Detail detail=d/> }.into_any(),
                        None => view! { <NotFound/> }.into_any(),
                    })
                })}
            </ErrorBoundary>
        </Suspense>
    }
}

#[component]
fn Detail(detail: AppDetail) -> impl IntoView {
    let s = detail.summary;
    let now = detail.now_ms;
    let repo = s.repo.clone();
    let envs: Vec<String> = detail
        .history
        .iter()
        .map(|h| h.environment.clone())
        .collect();
    let current = envs
        .iter()
        .cloned()
        .zip(s.cells.into_iter().zip(s.continuous.iter().copied()))
        .map(|(env, (cell, continuous))| {
            let repo = repo.clone();
            view! {
                <div class="env-card">
                    <h3>{env} {(!continuous).then(|| view! { <span class="tag">"manual"</span> })}</h3>
                    <CellView repo cell now_ms=now/>
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
        <section class="current" aria-labelledby="current-h">
            <h2 id="current-h">"Deployed now"</h2>
            <div class="env-cards">{current}</div>
            <p class="muted small">{s.release_status.clone()}</p>
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
        </section>
        <section aria-labelledby="history-h">
            <h2 id="history-h">"History"</h2>
            {detail.history.into_iter().map(|h| {
                let repo = repo.clone();
                view! {
                    <h3>{h.environment.clone()}</h3>
                    {if h.deployments.is_empty() {
                        view! { <p class="muted">"No deployments yet."</p> }.into_any()
                    } else {
                        view! {
                            <ol class="history">
                                {h.deployments.into_iter().map(|d| view! { <DeploymentItem repo=repo.clone() d now_ms=now/> }).collect_view()}
                            </ol>
                        }.into_any()
                    }}
                }
            }).collect_view()}
        </section>
    }
}

#[component]
fn DeploymentItem(repo: String, d: DeploymentView, now_ms: i64) -> impl IntoView {
    let sha = d
        .sha
        .as_deref()
        .filter(|s| *s != d.version)
        .map(|s| short_sha(s).to_string());
    let workflow_link = d.workflow.as_ref().and_then(|w| w.url.clone());
    view! {
        <li class="deployment" id=format!("deployment-{}", d.id)>
            <div class="deployment-head">
                <a class="version" href=tree_url(&repo, &d.version)>{d.version.clone()}</a>
                {sha.map(|s| view! { <code class="sha">{s}</code> })}
                <StatusBadge status=d.status failed_stage=d.failed_stage/>
                <span class="muted">{d.trigger.clone()}</span>
                {d.deployed_by.clone().map(|who| view! { <span>" by " {who}</span> })}
                <time datetime=exact_time(d.created_at_ms) title=exact_time(d.created_at_ms)>{ago(now_ms, d.created_at_ms)}</time>
                {workflow_link.map(|u| view! { <a class="workflow" href=u>"View workflow"</a> })}
            </div>
            {(!d.events.is_empty()).then(|| view! {
                <ol class="timeline" aria-label="Pipeline timeline">
                    {d.events.into_iter().map(|e| {
                        let url = e.workflow.as_ref().and_then(|w| w.url.clone());
                        view! {
                            <li class=format!("event event-{}", e.status)>
                                <span class="stage">{e.stage.label()}</span>
                                <span class="event-status">{e.status.clone()}</span>
                                <time datetime=exact_time(e.at_ms) title=exact_time(e.at_ms)>{ago(now_ms, e.at_ms)}</time>
                                {e.message.map(|m| view! { <span class="message">{m}</span> })}
                                {url.map(|u| view! { <a href=u>"View workflow"</a> })}
                            </li>
                        }
                    }).collect_view()}
                </ol>
            })}
        </li>
    }
}
