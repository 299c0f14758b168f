//! `/`: every application, a column per environment, and what needs attention.

use super::{CellView, ErrorView, FlagBadge};
use crate::domain::Flag;
use crate::model::{AppSummary, Grid};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

#[server(endpoint = "grid")]
pub async fn get_grid() -> Result<Grid, crate::error::AppError> {
    crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let mut grid = state
        .store
        .grid()
        .await
        .map_err(crate::error::AppError::store)?;
    grid.simulated = state.simulator.is_some();
    let now = grid.now_ms;
    for c in grid
        .apps
        .iter_mut()
        .flat_map(|a| a.cells.iter_mut())
        .flatten()
    {
        c.stalled = crate::model::is_stalled(c.status, c.created_at_ms, now, state.stall_ms);
    }
    Ok(grid)
}

#[component]
pub fn GridPage() -> impl IntoView {
    let grid = Resource::new(|| (), |_| get_grid());
    // The filter lives in the query string, so the form works with JavaScript off; after
    // hydration typing filters at once.
    let query = use_query_map();
    let filter = RwSignal::new(query.read_untracked().get("q").unwrap_or_default());
    let attention_only = RwSignal::new(
        query
            .read_untracked()
            .get("attention")
            .is_some_and(|v| v == "1"),
    );

    #[cfg(feature = "hydrate")]
    {
        // "/" focuses the filter box, unless the person is typing somewhere already.
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            use wasm_bindgen::JsCast;
            if ev.key() != "/" {
                return;
            }
            let typing = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
                .is_some_and(|el| {
                    matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                });
            if typing {
                return;
            }
            if let Some(input) = document().get_element_by_id("filter") {
                if let Ok(input) = input.dyn_into::<web_sys::HtmlElement>() {
                    ev.prevent_default();
                    let _ = input.focus();
                }
            }
        });
        on_cleanup(move || handle.remove());
    }

    crate::live::on_change(None, move || grid.refetch());

    view! {
        <h1 class="visually-hidden">"Applications"</h1>
        <form class="filters" method="get" action="/" role="search" on:submit=|ev| ev.prevent_default()>
            <label for="filter">"Filter applications"</label>
            <input
                id="filter"
                name="q"
                type="search"
                placeholder="Name, repo or team — press / to focus"
                autocomplete="off"
                value=filter.get_untracked()
                prop:value=move || filter.get()
                on:input=move |ev| filter.set(event_target_value(&ev))
            />
            <label class="check">
                <input
                    type="checkbox"
                    name="attention"
                    value="1"
                    checked=attention_only.get_untracked()
                    prop:checked=move || attention_only.get()
                    on:change=move |ev| attention_only.set(event_target_checked(&ev))
                />
                " Needs attention only"
            </label>
            <noscript><button type="submit">"Filter"</button></noscript>
        </form>
        <Transition fallback=|| view! { <p class="loading">"Loading applications…"</p> }>
            <ErrorBoundary fallback=|errors| view! { <ErrorView errors/> }>
                {move || Suspend::new(async move {
                    grid.await.map(|g| view! { <GridView grid=g filter attention_only/> })
                })}
            </ErrorBoundary>
        </Transition>
    }
}

fn needs_attention(app: &AppSummary) -> bool {
    !app.flags.is_empty()
}

#[component]
fn GridView(grid: Grid, filter: RwSignal<String>, attention_only: RwSignal<bool>) -> impl IntoView {
    let attention = grid.apps.iter().filter(|a| needs_attention(a)).count();
    let count = |pred: fn(&Flag) -> bool| {
        grid.apps
            .iter()
            .filter(|a| a.flags.iter().any(pred))
            .count()
    };
    let manual = count(|f| matches!(f, Flag::ManualDeployment { .. }));
    let sync = count(|f| matches!(f, Flag::NotInSync { .. }));
    let failed = count(|f| matches!(f, Flag::LastDeploymentFailed { .. }));
    let total = grid.apps.len();
    let now = grid.now_ms;
    let envs = grid.environments.clone();
    let site_freezes: Vec<_> = grid
        .freezes
        .iter()
        .filter(|f| f.application.is_none())
        .cloned()
        .collect();
    let frozen_apps: std::collections::HashSet<String> = grid
        .freezes
        .iter()
        .filter_map(|f| f.application.clone())
        .collect();

    let rows = grid
        .apps
        .into_iter()
        .map(|app| {
            let haystack = format!("{} {} {} {}", app.name, app.shortname, app.repo, app.team).to_lowercase();
            let flagged = needs_attention(&app);
            let visible = move || {
                let f = filter.read();
                (!attention_only.get() || flagged) && (f.is_empty() || haystack.contains(&f.trim().to_lowercase()))
            };
            let href = format!("/applications/{}", app.shortname);
            let frozen = frozen_apps.contains(&app.shortname);
            let repo = app.repo.clone();
            let cells = app
                .cells
                .into_iter()
                .zip(app.continuous.iter().copied())
                .map(|(cell, continuous)| {
                    let repo = repo.clone();
                    view! {
                        <td class:manual=!continuous>
                            <CellView repo cell now_ms=now/>
                        </td>
                    }
                })
                .collect_view();
            view! {
                <tr hidden=move || !visible() class:attention=flagged data-app=app.shortname.clone()>
                    <th scope="row">
                        <a href=href>{app.name.clone()}</a>
                        <div class="muted small">{app.repo.clone()}</div>
                    </th>
                    {cells}
                    <td class="flags">
                        {frozen.then(|| view! { <span class="flag flag-frozen" title="deploys to this app are frozen">"frozen"</span> })}
                        {app.flags.into_iter().map(|flag| view! { <FlagBadge flag/> }).collect_view()}
                    </td>
                </tr>
            }
        })
        .collect_view();

    let simulated = grid.simulated;
    view! {
        {simulated.then(|| view! { <p class="banner demo" role="note">"Demo mode: deployments started here are simulated; nothing is deployed anywhere."</p> })}
        <super::deploy::FreezeBanners freezes=site_freezes now_ms=now/>
        <section class="summary" aria-live="polite">
            {if attention == 0 {
                view! { <p class="ok">{format!("All {total} applications are in order.")}</p> }.into_any()
            } else {
                view! {
                    <p>
                        <strong>{format!("{attention} of {total} applications need attention")}</strong>
                        {format!(": {manual} need a manual deployment, {sync} not in sync, {failed} with a failed deployment.")}
                    </p>
                }
                .into_any()
            }}
        </section>
        <div class="table-wrap">
            <table class="grid">
                <caption class="visually-hidden">"Deployed versions of each application in each environment"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Application"</th>
                        {envs.into_iter().map(|e| view! { <th scope="col">{e}</th> }).collect_view()}
                        <th scope="col">"Needs attention"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}
