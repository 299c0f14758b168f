//! `/audit`: every deploy request, resubmit, freeze change, override and failed attempt,
//! newest first. Read-only: nothing in the app edits or deletes an entry.

use super::{data_table, when_cell, Loaded};
use crate::model::AuditEntry;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[server(endpoint = "audit")]
pub async fn get_audit(
    application: Option<String>,
    actor: Option<String>,
) -> Result<(Vec<AuditEntry>, i64), crate::error::AppError> {
    crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let clean = |s: Option<String>| {
        s.map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s.len() <= 100)
    };
    let entries = state
        .store
        .audit_log(clean(application).as_deref(), clean(actor).as_deref(), 200)
        .await?;
    Ok((entries, crate::store::now_ms()))
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let filters = move || (query.read().get("application"), query.read().get("actor"));
    let log = Resource::new(filters, |(app, actor)| get_audit(app, actor));
    view! {
        <Title text="Audit log · Release"/>
        <h1>"Audit log"</h1>
        <form method="get" action="/audit" class="filters">
            <label>"Application " <input name="application" value=move || query.read().get("application").unwrap_or_default()/></label>
            <label>"Person " <input name="actor" value=move || query.read().get("actor").unwrap_or_default()/></label>
            <button type="submit">"Filter"</button>
        </form>
        <Loaded resource=log show=audit_table/>
    }
}

fn audit_table((entries, now): (Vec<AuditEntry>, i64)) -> AnyView {
    if entries.is_empty() {
        return view! { <p class="muted">"No audit entries yet (or none match the filter)."</p> }
            .into_any();
    }
    data_table(
        &[
            "When",
            "Who",
            "Action",
            "Application",
            "Environment",
            "Outcome",
            "Detail",
        ],
        entries
            .into_iter()
            .map(|e| {
                view! {
                    <tr>
                        {when_cell(now, e.at_ms)}
                        <td>{e.actor}</td>
                        <td>{e.action}</td>
                        <td>{e.application.unwrap_or_default()}</td>
                        <td>{e.environment.unwrap_or_default()}</td>
                        <td class=format!("outcome outcome-{}", e.outcome)>{e.outcome.clone()}</td>
                        <td>{e.detail}</td>
                    </tr>
                }
                .into_any()
            })
            .collect(),
    )
}
