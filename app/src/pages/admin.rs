//! `/admin/users`: who has signed in, their roles, and when they last signed in; the alert
//! receivers with their recent deliveries and a test button. Admins only.

use super::{data_table, when_cell, ErrorView, Loaded};
use crate::model::exact_time;
use leptos::prelude::*;
use leptos_meta::Title;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserList {
    pub users: Vec<UserLine>,
    pub now_ms: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserLine {
    pub login: String,
    pub name: Option<String>,
    pub role: String,
    pub dev: bool,
    pub last_sign_in_ms: i64,
    pub roles_checked_ms: i64,
}

#[server(endpoint = "users")]
pub async fn list_users() -> Result<UserList, crate::error::AppError> {
    crate::auth::require_role(crate::auth::Role::Admin)?;
    let state = crate::state::app_state()?;
    let rows = state.store.users().await?;
    Ok(UserList {
        users: rows
            .into_iter()
            .map(|r| UserLine {
                role: r.user.role_label(),
                login: r.user.login,
                name: r.user.name,
                dev: r.user.dev,
                last_sign_in_ms: r.last_sign_in_ms,
                roles_checked_ms: r.roles_checked_ms,
            })
            .collect(),
        now_ms: crate::store::now_ms(),
    })
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    let dispatches = Resource::new(|| (), |_| unconfirmed_dispatches());
    let reports = Resource::new(|| (), |_| github_reports());
    view! {
        <Title text="Users · Release"/>
        <h1>"Users"</h1>
        <Loaded resource=users show=users_table/>
        <AlertsSection/>
        <h2>"Dispatches not confirmed"</h2>
        <Loaded resource=dispatches show=dispatches_table/>
        <h2>"Deployments not told to GitHub"</h2>
        <Loaded resource=reports show=reports_table/>
    }
}

fn users_table(list: UserList) -> AnyView {
    let now = list.now_ms;
    data_table(
        &[
            "Login",
            "Name",
            "Role",
            "Last sign-in",
            "Roles read from GitHub",
        ],
        list.users
            .into_iter()
            .map(|u| {
                view! {
                    <tr>
                        <td>{u.login}{u.dev.then_some(" (development)")}</td>
                        <td>{u.name.unwrap_or_default()}</td>
                        <td>{u.role}</td>
                        {when_cell(now, u.last_sign_in_ms)}
                        {when_cell(now, u.roles_checked_ms)}
                    </tr>
                }
                .into_any()
            })
            .collect(),
    )
}

/// A deployment GitHub's Deployments API was not told of, or not yet, as admins see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GitHubReportLine {
    pub deployment_id: i64,
    pub application: String,
    pub environment: String,
    pub version: String,
    /// GitHub's deployment id, when it created one.
    pub github_id: Option<i64>,
    /// Stopped for good (GitHub's 202, 409, 422, ...), or still retried.
    pub stopped: bool,
    pub what: String,
    pub attempts: i64,
    pub updated_at_ms: i64,
}

/// Deployments not told to GitHub: stopped for good or still failing, newest first.
/// Admins only.
#[server(endpoint = "github_reports")]
pub async fn github_reports() -> Result<(Vec<GitHubReportLine>, i64), crate::error::AppError> {
    crate::auth::require_role(crate::auth::Role::Admin)?;
    let state = crate::state::app_state()?;
    let rows = state.store.troubled_reports(50).await?;
    Ok((
        rows.into_iter()
            .map(|r| GitHubReportLine {
                deployment_id: r.deployment_id,
                application: r.application,
                environment: r.environment,
                version: r.version,
                github_id: r.github_id,
                stopped: r.outcome.is_some(),
                what: r.outcome.or(r.last_error).unwrap_or_default(),
                attempts: r.attempts,
                updated_at_ms: r.updated_at,
            })
            .collect(),
        crate::store::now_ms(),
    ))
}

/// An admin list as a table, one row a line, or `empty` when there is none.
fn lines_table<L>(
    lines: Vec<L>,
    empty: &'static str,
    headings: &'static [&'static str],
    row: impl Fn(L) -> AnyView,
) -> AnyView {
    if lines.is_empty() {
        return view! { <p>{empty}</p> }.into_any();
    }
    data_table(headings, lines.into_iter().map(row).collect())
}

fn reports_table((lines, now): (Vec<GitHubReportLine>, i64)) -> AnyView {
    lines_table(
        lines,
        "GitHub took every deployment reported to it.",
        &[
            "Application",
            "Environment",
            "Version",
            "State",
            "When",
            "GitHub's answer",
        ],
        move |l| {
            let state = if l.stopped {
                "stopped".to_string()
            } else {
                format!("retrying ({} attempts)", l.attempts)
            };
            view! {
                    <tr>
                        <td><a href=format!("/applications/{}#deployment-{}", l.application, l.deployment_id)>{l.application.clone()}</a></td>
                        <td>{l.environment}</td>
                        <td>{l.version}</td>
                        <td>{state}</td>
                        {when_cell(now, l.updated_at_ms)}
                        <td>{l.what}</td>
                    </tr>
                }
                .into_any()
        },
    )
}

/// A dispatch whose outcome could not be confirmed, as admins see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UnconfirmedLine {
    pub deployment_id: i64,
    pub application: String,
    pub environment: String,
    pub git_ref: String,
    pub actor: String,
    pub what_to_check: String,
    pub created_at_ms: i64,
}

/// The dispatches whose outcome could not be confirmed (GitHub's answer lost and no run
/// found for them): what to check, newest first. Admins only.
#[server(endpoint = "unconfirmed")]
pub async fn unconfirmed_dispatches() -> Result<(Vec<UnconfirmedLine>, i64), crate::error::AppError>
{
    crate::auth::require_role(crate::auth::Role::Admin)?;
    let state = crate::state::app_state()?;
    let rows = state.store.unconfirmed_dispatches(50).await?;
    Ok((
        rows.into_iter()
            .map(|r| UnconfirmedLine {
                deployment_id: r.deployment_id,
                application: r.application,
                environment: r.environment,
                git_ref: r.git_ref,
                actor: r.actor,
                what_to_check: r.error.unwrap_or_default(),
                created_at_ms: r.created_at_ms,
            })
            .collect(),
        crate::store::now_ms(),
    ))
}

fn dispatches_table((lines, now): (Vec<UnconfirmedLine>, i64)) -> AnyView {
    lines_table(
        lines,
        "Every dispatch's outcome is known.",
        &[
            "Application",
            "Environment",
            "Version",
            "By",
            "When",
            "What to check",
        ],
        move |l| {
            view! {
                    <tr>
                        <td><a href=format!("/applications/{}", l.application)>{l.application.clone()}</a></td>
                        <td>{l.environment}</td>
                        <td>{l.git_ref}</td>
                        <td>{l.actor}</td>
                        {when_cell(now, l.created_at_ms)}
                        <td>{l.what_to_check}</td>
                    </tr>
                }
                .into_any()
        },
    )
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertsView {
    pub receivers: Vec<crate::domain::AlertReceiverInfo>,
    pub deliveries: Vec<crate::domain::DeliveryRow>,
    pub now_ms: i64,
}

#[server(endpoint = "alerts")]
pub async fn alerts_overview() -> Result<AlertsView, crate::error::AppError> {
    crate::auth::require_role(crate::auth::Role::Admin)?;
    let state = crate::state::app_state()?;
    let deliveries = state.store.recent_deliveries(20).await?;
    Ok(AlertsView {
        receivers: state.alert_receivers.as_ref().clone(),
        deliveries,
        now_ms: crate::store::now_ms(),
    })
}

/// Queues a test message for one configured receiver (delivered like any alert).
#[server(endpoint = "alert_test")]
pub async fn send_test_alert(receiver: String) -> Result<String, crate::error::AppError> {
    let user = crate::auth::require_role(crate::auth::Role::Admin)?;
    let state = crate::state::app_state()?;
    let Some(r) = state.alert_receivers.iter().find(|r| r.name == receiver) else {
        return Err(crate::error::AppError::new(
            404,
            format!("no alert receiver is named {receiver:?}"),
        ));
    };
    let detail = format!("test message queued for {}", r.name);
    state
        .store
        .enqueue_test_alert(
            &r.name,
            &user.login,
            &crate::store::NewAudit {
                actor: &user.login,
                action: "alert_test",
                application: None,
                environment: None,
                outcome: "requested",
                detail: &detail,
            },
        )
        .await?;
    Ok(format!(
        "A test message to {} is queued; its delivery shows below.",
        r.name
    ))
}

#[component]
fn AlertsSection() -> impl IntoView {
    let test = ServerAction::<SendTestAlert>::new();
    let overview = Resource::new(move || test.version().get(), |_| alerts_overview());
    view! {
        <h2>"Alert receivers"</h2>
        {move || test.value().get().map(|r| match r {
            Ok(m) => view! { <p class="notice ok" role="status">{m}</p> }.into_any(),
            Err(e) => view! { <p class="notice error" role="alert">{e.to_string()}</p> }.into_any(),
        })}
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            <ErrorBoundary fallback=|errors| view! { <ErrorView errors/> }>
                {move || Suspend::new(async move {
                    overview.await.map(|o| {
                        let now = o.now_ms;
                        let receivers = if o.receivers.is_empty() {
                            view! { <p>"No alert receivers are configured ([[alerts.receivers]] in the configuration file)."</p> }.into_any()
                        } else {
                            view! {
                                <table class="activity">
                                    <thead><tr>
                                        <th scope="col">"Receiver"</th>
                                        <th scope="col">"Kind"</th>
                                        <th scope="col">"Teams"</th>
                                        <th scope="col">"Events"</th>
                                        <th scope="col">"Test"</th>
                                    </tr></thead>
                                    <tbody>
                                        {o.receivers.into_iter().map(|r| view! {
                                            <tr>
                                                <td>{r.name.clone()}</td>
                                                <td>{r.kind}</td>
                                                <td>{if r.teams.is_empty() { "every application".to_string() } else { r.teams.join(", ") }}</td>
                                                <td>{if r.events.is_empty() { "all".to_string() } else { r.events.join(", ") }}</td>
                                                <td>
                                                    <ActionForm action=test>
                                                        <input type="hidden" name="receiver" value=r.name.clone()/>
                                                        <button type="submit">"Send a test message"</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        };
                        let deliveries = if o.deliveries.is_empty() {
                            view! { <p>"No deliveries yet."</p> }.into_any()
                        } else {
                            view! {
                                <table class="activity">
                                    <caption>"Recent deliveries (newest first, 20 per receiver)"</caption>
                                    <thead><tr>
                                        <th scope="col">"When"</th>
                                        <th scope="col">"Receiver"</th>
                                        <th scope="col">"Alert"</th>
                                        <th scope="col">"State"</th>
                                        <th scope="col">"Attempts"</th>
                                        <th scope="col">"Last answer"</th>
                                    </tr></thead>
                                    <tbody>
                                        {o.deliveries.into_iter().map(|d| {
                                            let answer = match (d.last_status, d.last_error) {
                                                (_, Some(e)) => e,
                                                (Some(s), None) => format!("HTTP {s}"),
                                                (None, None) => String::new(),
                                            };
                                            let state = match d.state.as_str() {
                                                "pending" if d.attempts > 0 => format!("retrying at {}", exact_time(d.next_attempt_at_ms)),
                                                other => other.replace('_', " "),
                                            };
                                            view! {
                                                <tr class=format!("delivery-{}", d.state)>
                                                    {when_cell(now, d.created_at_ms)}
                                                    <td>{d.receiver}</td>
                                                    <td>{d.summary}</td>
                                                    <td>{state}</td>
                                                    <td>{d.attempts}</td>
                                                    <td>{answer}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        };
                        view! { {receivers} {deliveries} }
                    })
                })}
            </ErrorBoundary>
        </Suspense>
    }
}
