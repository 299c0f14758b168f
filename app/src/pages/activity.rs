//! `/activity`: the latest deployments across all applications.

use super::{data_table, tree_url, ErrorView, StatusBadge};
use crate::model::{ago, exact_time, Activity};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[server(endpoint = "activity")]
pub async fn get_activity(environment: Option<String>) -> Result<Activity, crate::error::AppError> {
    crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let env = match environment.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(
            state
                .store
                .environments()
                .parse(e)
                .map_err(|e| crate::error::AppError::new(422, e.to_string()))?,
        ),
        None => None,
    };
    state
        .store
        .activity(env.as_ref().map(|e| e.as_str()))
        .await
        .map_err(crate::error::AppError::store)
}

#[component]
pub fn ActivityPage() -> impl IntoView {
    let query = use_query_map();
    let env = move || query.read().get("environment");
    let activity = Resource::new(env, get_activity);
    crate::changes::on_change(None, move || activity.refetch());
    view! {
        <Title text="Activity · Release"/>
        <h1>"Activity"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            <ErrorBoundary fallback=|errors| view! { <ErrorView errors/> }>
                {move || Suspend::new(async move { activity.await.map(|a| view! { <ActivityView a/> }) })}
            </ErrorBoundary>
        </Transition>
    }
}

#[component]
fn ActivityView(a: Activity) -> impl IntoView {
    let now = a.now_ms;
    let current = a.filter.clone();
    let tabs = std::iter::once(None)
        .chain(a.environments.iter().cloned().map(Some))
        .map(|e| {
            let href = match &e {
                Some(e) => format!("/activity?environment={e}"),
                None => "/activity".to_string(),
            };
            let selected = e == current;
            let label = e.unwrap_or_else(|| "all environments".into());
            view! { <a href=href class:selected=selected aria-current=selected.then_some("page")>{label}</a> }
        })
        .collect_view();
    view! {
        <nav class="tabs" aria-label="Filter by environment">{tabs}</nav>
        {if a.deployments.is_empty() {
            view! { <p class="muted">"No deployments yet."</p> }.into_any()
        } else {
            data_table(
                &["When", "Application", "Environment", "Version", "Trigger", "Deployed by", "Status"],
                a.deployments
                    .into_iter()
                    .map(|d| {
                        view! {
                            <tr>
                                <td><time datetime=exact_time(d.created_at_ms) title=exact_time(d.created_at_ms)>{ago(now, d.created_at_ms)}</time></td>
                                <td><a href=format!("/applications/{}#deployment-{}", d.shortname, d.id)>{d.application.clone()}</a></td>
                                <td>{d.environment.clone()}</td>
                                <td><a href=tree_url(&d.repo, &d.version)>{d.version.clone()}</a></td>
                                <td>{d.trigger.clone()}</td>
                                <td>{d.deployed_by.clone().unwrap_or_default()}</td>
                                <td><StatusBadge status=d.status failed_stage=d.failed_stage/></td>
                            </tr>
                        }
                        .into_any()
                    })
                    .collect(),
            )
        }}
    }
}
