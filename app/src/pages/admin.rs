//! `/admin/users`: who has signed in, their roles, and when they last signed in. Admins only.

use super::ErrorView;
use crate::model::{ago, exact_time};
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
    let rows = state
        .store
        .users()
        .await
        .map_err(crate::error::AppError::store)?;
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
    view! {
        <Title text="Users · Release"/>
        <h1>"Users"</h1>
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            <ErrorBoundary fallback=|errors| view! { <ErrorView errors/> }>
                {move || Suspend::new(async move {
                    users.await.map(|list| {
                        let now = list.now_ms;
                        view! {
                            <table class="activity">
                                <thead>
                                    <tr>
                                        <th scope="col">"Login"</th>
                                        <th scope="col">"Name"</th>
                                        <th scope="col">"Role"</th>
                                        <th scope="col">"Last sign-in"</th>
                                        <th scope="col">"Roles read from GitHub"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {list.users.into_iter().map(|u| view! {
                                        <tr>
                                            <td>{u.login}{u.dev.then_some(" (development)")}</td>
                                            <td>{u.name.unwrap_or_default()}</td>
                                            <td>{u.role}</td>
                                            <td><time title=exact_time(u.last_sign_in_ms)>{ago(now, u.last_sign_in_ms)}</time></td>
                                            <td><time title=exact_time(u.roles_checked_ms)>{ago(now, u.roles_checked_ms)}</time></td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                    })
                })}
            </ErrorBoundary>
        </Suspense>
    }
}
