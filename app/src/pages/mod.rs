//! One module per page, each with the server functions it calls, plus the small pieces
//! they share.

pub mod activity;
pub mod admin;
pub mod application;
pub mod audit;
pub mod deploy;
pub mod grid;
pub mod promote;
pub mod stats;

use crate::domain::{DeploymentStatus, Flag, Stage};
use crate::model::{ago, exact_time, short_sha, Cell};
use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <h1>"Not found"</h1>
        <p>"There is no page here. " <a href="/">"Back to the applications"</a></p>
    }
}

/// A deployment's status in words, naming the failed stage if there is one.
pub fn status_words(
    status: DeploymentStatus,
    failed_stage: Option<Stage>,
    stalled: bool,
) -> String {
    match (status, failed_stage) {
        (DeploymentStatus::Failed, Some(stage)) => format!("{} failed", stage.label()),
        _ if stalled => "stalled: nothing heard from the pipeline".to_string(),
        _ => status.label().to_string(),
    }
}

/// A deployment's status as a badge, naming the failed stage if there is one.
#[component]
pub fn StatusBadge(
    status: DeploymentStatus,
    failed_stage: Option<Stage>,
    #[prop(optional)] stalled: bool,
) -> impl IntoView {
    let text = status_words(status, failed_stage, stalled);
    let class = if stalled {
        "status status-stalled".to_string()
    } else {
        format!("status status-{}", status.as_str())
    };
    view! { <span class=class>{text}</span> }
}

#[component]
pub fn FlagBadge(flag: Flag) -> impl IntoView {
    let text = match &flag {
        Flag::LastDeploymentFailed { environment, .. } => {
            format!("{}: {}", flag.label(), environment)
        }
        Flag::ManualDeployment { environment, .. } | Flag::NotInSync { environment, .. } => {
            format!("{}: {}", flag.label(), environment)
        }
        Flag::Drift {
            environment,
            running,
            ..
        } => {
            format!("{}: {} runs {}", flag.label(), environment, running)
        }
    };
    view! { <span class=flag.css_class() title=flag.explain()>{text}</span> }
}

/// The GitHub page of a version: `https://github.com/OWNER/NAME/tree/REF`, each part
/// percent-encoded (a `%`, `#` or `?` in a reported version cannot make the link point
/// anywhere but that repository's tree). Refs keep their `/` (branches like `release/1`).
pub fn tree_url(repo: &str, git_ref: &str) -> String {
    let enc = crate::domain::encode_path_segment;
    let repo: Vec<String> = repo.split('/').map(enc).collect();
    let git_ref: Vec<String> = git_ref.split('/').map(enc).collect();
    format!(
        "https://github.com/{}/tree/{}",
        repo.join("/"),
        git_ref.join("/")
    )
}

/// The contents of one grid cell: version, SHA, when, who, status.
#[component]
pub fn CellView(repo: String, cell: Option<Cell>, now_ms: i64) -> impl IntoView {
    match cell {
        None => view! { <span class="muted">"not deployed"</span> }.into_any(),
        Some(c) => {
            let sha = c
                .sha
                .as_deref()
                .filter(|s| *s != c.version)
                .map(|s| short_sha(s).to_string());
            view! {
                <div class="cell">
                    <a class="version" href=tree_url(&repo, &c.version)>{c.version.clone()}</a>
                    {sha.map(|s| view! { <code class="sha">{s}</code> })}
                    <div class="meta">
                        <time datetime=exact_time(c.created_at_ms) title=exact_time(c.created_at_ms)>
                            {ago(now_ms, c.created_at_ms)}
                        </time>
                        {c.deployed_by.map(|who| view! { <span class="who">" by " {who}</span> })}
                    </div>
                    <StatusBadge status=c.status failed_stage=c.failed_stage stalled=c.stalled/>
                </div>
            }
            .into_any()
        }
    }
}

#[component]
pub fn ErrorView(errors: ArcRwSignal<Errors>) -> impl IntoView {
    // The one place a page takes its error's status (the highest, when there are several).
    #[cfg(feature = "ssr")]
    {
        let status = errors
            .get_untracked()
            .into_iter()
            .filter_map(|(_, e)| e.downcast_ref::<crate::error::AppError>().map(|a| a.status))
            .max();
        if let Some(s) = status {
            crate::error::set_page_status(s);
        }
    }
    view! {
        <div class="error" role="alert">
            <h2>"Something went wrong"</h2>
            <ul>
                {move || {
                    errors.get().into_iter().map(|(_, e)| view! { <li>{e.to_string()}</li> }).collect_view()
                }}
            </ul>
        </div>
    }
}

/// A table cell saying how long ago `ms` was, with the exact time on hover.
pub fn when_cell(now_ms: i64, ms: i64) -> impl IntoView {
    use crate::model::{ago, exact_time};
    view! { <td><time title=exact_time(ms)>{ago(now_ms, ms)}</time></td> }
}

/// A table of rows with column headings, as the activity, audit and admin pages show
/// them.
pub fn data_table(headings: &'static [&'static str], rows: Vec<AnyView>) -> AnyView {
    view! {
        <table class="activity">
            <thead><tr>
                {headings.iter().map(|h| view! { <th scope="col">{*h}</th> }).collect_view()}
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// What `resource` loads, shown by `show` once it is there: "Loading…" before, the error
/// (with its status) if it fails. Every page's loaded section is wrapped the same way.
#[component]
pub fn Loaded<T>(
    resource: Resource<Result<T, crate::error::AppError>>,
    show: fn(T) -> AnyView,
) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            <ErrorBoundary fallback=|errors| view! { <ErrorView errors/> }>
                {move || Suspend::new(async move { resource.await.map(show) })}
            </ErrorBoundary>
        </Suspense>
    }
}
