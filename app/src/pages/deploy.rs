//! Deploy, Resubmit and freezes: the server functions that change things, with every rule
//! enforced here on the server, and the forms that call them.

use crate::model::Freeze;
use leptos::prelude::*;

pub use crate::actions::ActionDone;

/// Dispatches the app's Deploy workflow on GitHub as the signed-in person.
///
/// Rules: the person may deploy to that environment; the environment exists; the ref is a
/// valid git ref or SHA; production needs `confirm`; no deploy while the app or the site is
/// frozen (an admin may override with a written reason, which is recorded); one in-flight
/// manual deploy per app and environment (409 names who started it and when).
#[server(endpoint = "deploy")]
pub async fn deploy(
    shortname: String,
    environment: String,
    git_ref: String,
    confirm: Option<String>,
    override_reason: Option<String>,
) -> Result<ActionDone, crate::error::AppError> {
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let (shortname, env, git_ref) = parse_target(&state.store, &shortname, &environment, &git_ref)?;
    let app = state.store.existing_application(shortname.as_str()).await?;
    use crate::actions::deploy::{answer_wait, perform_deploy, DeployCommand};
    let dispatching = perform_deploy(
        &state,
        &user,
        DeployCommand::new(
            &app,
            env,
            git_ref,
            confirm.as_deref() == Some("yes"),
            override_reason.as_deref(),
        ),
    )
    .await?;
    dispatching
        .answer(answer_wait(state.pipeline.timeout()))
        .await
}

/// The demo only: "a merge to main" of the app, which the simulated pipeline takes from the
/// first environment onwards, promoting where continuous deployment is on (a manual Deploy
/// is never promoted, as in the pipeline our users run). Needs the deploy role for the
/// first environment; audited.
#[server(endpoint = "simulate_merge")]
pub async fn simulate_merge(shortname: String) -> Result<ActionDone, crate::error::AppError> {
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let store = &state.store;
    let shortname = crate::domain::Shortname::parse(&shortname)?;
    let Some(first) = store.environments().as_slice().first().cloned() else {
        return Err(AppError::new(409, "there are no environments"));
    };
    crate::domain::deploy_rules::check_deploy_role(&user, first.as_str())?;
    let Some(sim) = state.simulator.clone() else {
        return Err(AppError::new(
            404,
            "merges are simulated only in the demo: here the pipeline runs on GitHub",
        ));
    };
    let app = store.existing_application(shortname.as_str()).await?;
    let repo = crate::domain::RepoName::parse(&app.repo)?;
    let version = sim.merge(store.clone(), repo).await?;
    crate::actions::Audit::new(store, &user.login, "simulated merge")
        .on(Some(&app.shortname), Some(first.as_str()))
        .record(
            "started",
            &format!("{version} through the continuous pipeline from {first}"),
        )
        .await;
    Ok(ActionDone {
        message: format!(
            "Simulated a merge to main: {version} goes through the pipeline from {first}, promoted wherever continuous deployment is on."
        ),
        link: None,
    })
}

/// What a deploy of `git_ref` to `environment` would ship: the commits between what runs
/// there now and the ref (GitHub's compare API, as the signed-in person), and whether it
/// is a rollback.
#[server(endpoint = "preview")]
pub async fn preview_deploy(
    shortname: String,
    environment: String,
    git_ref: String,
) -> Result<crate::model::DeployPreview, crate::error::AppError> {
    use crate::domain::RepoName;
    use crate::error::AppError;
    use crate::model::{DeployPreview, PreviewCommit};
    let user = crate::auth::require_user()?;
    crate::domain::deploy_rules::check_preview(&user).map_err(AppError::from)?;
    let state = crate::state::app_state()?;
    let store = &state.store;
    let (shortname, env, git_ref) = parse_target(store, &shortname, &environment, &git_ref)?;
    let detail = store.existing_app_detail(shortname.as_str()).await?;
    let idx = store.environments().index_of(&env).unwrap_or(0);
    let current = detail
        .summary
        .cells
        .get(idx)
        .cloned()
        .flatten()
        .map(|c| c.sha.unwrap_or(c.version));
    let mut preview = DeployPreview {
        environment: env.to_string(),
        current: current.clone(),
        target: git_ref.to_string(),
        status: None,
        total_commits: 0,
        rollback: false,
        commits: vec![],
        html_url: None,
        note: None,
        checks: vec![],
        checks_note: None,
        soak: None,
    };
    // The gates, as a deploy would find them now.
    if let Some(app) = store.application(shortname.as_str()).await? {
        let token = match state.simulator {
            Some(_) => None,
            None => crate::state::github_token(&state, &user).await?,
        };
        match crate::actions::gates::preview_checks(&state, &app, &env, &git_ref, token.as_deref())
            .await
        {
            Some(Ok(checks)) => preview.checks = checks,
            Some(Err(why)) => preview.checks_note = Some(why),
            None => {}
        }
        preview.soak = crate::actions::gates::soak_hold(&state, &app, &env, git_ref.as_str())
            .await?
            .and_then(|s| s.hold);
    }
    let Some(base) = current else {
        preview.note = Some(format!(
            "Nothing is deployed to {env} yet: everything up to {git_ref} would ship."
        ));
        return Ok(preview);
    };
    if state.simulator.is_some() {
        preview.note = Some("Demo mode: there is no GitHub repository to compare against.".into());
        return Ok(preview);
    }
    let Some(token) = crate::state::github_token(&state, &user).await? else {
        return Err(AppError::new(
            503,
            "comparing needs GitHub, which this Release does not have",
        ));
    };
    let repo =
        RepoName::parse(&detail.summary.repo).map_err(|e| AppError::new(500, e.to_string()))?;
    let v = state
        .pipeline
        .compare(&token, &repo, &base, &git_ref)
        .await
        .map_err(|e| AppError::new(502, e.to_string()))?;
    preview.status = v["status"].as_str().map(str::to_owned);
    preview.total_commits = v["total_commits"].as_i64().unwrap_or(0);
    preview.rollback = v["status"] == "behind" || v["behind_by"].as_i64().unwrap_or(0) > 0;
    preview.html_url = v["html_url"].as_str().map(str::to_owned);
    preview.commits = v["commits"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| PreviewCommit {
                    sha: c["sha"].as_str().unwrap_or("").chars().take(7).collect(),
                    message: c["commit"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                    author: c["author"]["login"]
                        .as_str()
                        .or(c["commit"]["author"]["name"].as_str())
                        .unwrap_or("")
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    if preview.rollback {
        preview.note = Some(format!(
            "{git_ref} is behind what runs in {env} ({base}): this deploy is a rollback."
        ));
    }
    Ok(preview)
}

/// Refs to suggest in the deploy form: the repo's recent tags and the default branch's
/// recent commits (GitHub, as the person), or, in the demo, versions seen in its history.
#[server(endpoint = "refs")]
pub async fn ref_suggestions(
    shortname: String,
) -> Result<Vec<(String, String)>, crate::error::AppError> {
    use crate::domain::{RepoName, Shortname};
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let store = &state.store;
    let shortname = Shortname::parse(&shortname).map_err(|e| AppError::new(422, e.to_string()))?;
    let detail = store.existing_app_detail(shortname.as_str()).await?;
    if state.simulator.is_some() {
        let mut seen = Vec::new();
        for d in detail.history.iter().flat_map(|h| h.deployments.iter()) {
            if !seen.iter().any(|(v, _): &(String, String)| *v == d.version) {
                seen.push((d.version.clone(), format!("deployed to {}", d.environment)));
            }
        }
        return Ok(seen.into_iter().take(15).collect());
    }
    let Some(token) = crate::state::github_token(&state, &user).await? else {
        return Ok(vec![]);
    };
    let repo =
        RepoName::parse(&detail.summary.repo).map_err(|e| AppError::new(500, e.to_string()))?;
    state
        .pipeline
        .recent_refs(&token, &repo, &detail.default_branch)
        .await
        .map_err(|e| AppError::new(502, e.to_string()))
}

/// Shows a deploy preview.
#[component]
pub fn PreviewView(
    #[prop(into)] value: Signal<
        Option<Result<crate::model::DeployPreview, crate::error::AppError>>,
    >,
) -> impl IntoView {
    move || {
        value.get().map(|r| match r {
            Ok(p) => view! {
                <div class="preview" class:rollback=p.rollback>
                    <p>
                        <strong>{format!("{} → {}", p.current.clone().unwrap_or_else(|| "nothing".into()), p.target)}</strong>
                        {format!(" in {}: {} commit{}", p.environment, p.total_commits, if p.total_commits == 1 { "" } else { "s" })}
                        {p.html_url.clone().map(|u| view! { " " <a href=u>"Full diff on GitHub"</a> })}
                    </p>
                    {p.note.clone().map(|n| view! { <p class="muted">{n}</p> })}
                    {(!p.checks.is_empty()).then(|| view! {
                        <ul class="checks" aria-label="Required checks">
                            {p.checks.clone().into_iter().map(|c| {
                                let state = c.state.as_str();
                                let name = c.name.clone();
                                view! {
                                    <li class=format!("check {state}")>
                                        {match c.url { Some(u) => view! { <a href=u>{name}</a> }.into_any(), None => view! { <span>{name}</span> }.into_any() }}
                                        {format!(": {state}")}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    })}
                    {p.checks_note.clone().map(|n| view! { <p class="notice error">{n}</p> })}
                    {p.soak.clone().map(|n| view! { <p class="notice">{n}</p> })}
                    <ol>
                        {p.commits.into_iter().map(|c| view! { <li><code>{c.sha}</code> " " {c.message} <span class="muted">{format!(" — {}", c.author)}</span></li> }).collect_view()}
                    </ol>
                </div>
            }
            .into_any(),
            Err(e) => view! { <p class="notice error" role="alert">{e.to_string()}</p> }.into_any(),
        })
    }
}

/// The three inputs of a deploy or a preview, parsed: 422 naming what is wrong.
#[cfg(feature = "ssr")]
fn parse_target(
    store: &crate::store::Store,
    shortname: &str,
    environment: &str,
    git_ref: &str,
) -> Result<
    (
        crate::domain::Shortname,
        crate::domain::Environment,
        crate::domain::GitRef,
    ),
    crate::error::AppError,
> {
    use crate::error::AppError;
    let env = store
        .environments()
        .parse(environment)
        .map_err(|e| AppError::new(422, e.to_string()))?;
    let git_ref =
        crate::domain::GitRef::parse(git_ref.trim()).map_err(|e| AppError::new(422, e.message))?;
    let shortname = crate::domain::Shortname::parse(shortname)
        .map_err(|e| AppError::new(422, e.to_string()))?;
    Ok((shortname, env, git_ref))
}

/// Resubmits the failed Argo workflow of a deployment (what "RESUBMIT" does in Argo's UI),
/// records the new workflow on the deployment's timeline, and puts it back in progress
/// (`actions::resubmit`).
#[server(endpoint = "resubmit")]
pub async fn resubmit(deployment_id: i64) -> Result<ActionDone, crate::error::AppError> {
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    crate::actions::resubmit::resubmit(&state, &user, deployment_id)
        .await?
        .answer(crate::actions::deploy::answer_wait(
            state.pipeline.timeout(),
        ))
        .await
}

/// Freezes deploys to one app (deployers) or the whole site (admins), with a reason. The
/// freeze carries its setter's authority: only someone with as much may lift it.
#[server(endpoint = "freeze")]
pub async fn set_freeze(
    shortname: Option<String>,
    reason: String,
) -> Result<ActionDone, crate::error::AppError> {
    let (state, user, app) = freeze_target(shortname).await?;
    crate::actions::freeze::set(&state, &user, app.as_ref(), &reason).await
}

/// Lifts the freezes on one app (or the site): refused, and audited, when any of them was
/// set with more authority than the person has.
#[server(endpoint = "unfreeze")]
pub async fn lift_freeze(shortname: Option<String>) -> Result<ActionDone, crate::error::AppError> {
    let (state, user, app) = freeze_target(shortname).await?;
    crate::actions::freeze::lift(&state, &user, app.as_ref()).await
}

/// The app a freeze form names (or the site): signed in, and the app exists. Who may do
/// what is `deploy_rules`' to say.
#[cfg(feature = "ssr")]
async fn freeze_target(
    shortname: Option<String>,
) -> Result<
    (
        crate::state::AppState,
        crate::auth::CurrentUser,
        Option<crate::store::ApplicationRow>,
    ),
    crate::error::AppError,
> {
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    match shortname.filter(|s| !s.is_empty()) {
        None => Ok((state, user, None)),
        Some(s) => {
            let s = crate::domain::Shortname::parse(&s)
                .map_err(|e| AppError::new(422, e.to_string()))?;
            let app = state
                .store
                .application(s.as_str())
                .await?
                .ok_or_else(|| AppError::new(404, format!("no application {s}")))?;
            Ok((state, user, Some(app)))
        }
    }
}

/// The outcome of the last form submitted, as a status line.
#[component]
pub fn ActionResult(
    #[prop(into)] value: Signal<Option<Result<ActionDone, crate::error::AppError>>>,
) -> impl IntoView {
    move || {
        value.get().map(|r| match r {
            Ok(done) => view! {
                <p class="notice ok" role="status">{done.message}{done.link.map(|l| view! { " " <a href=l>"View run"</a> })}</p>
            }
            .into_any(),
            Err(e) => view! { <p class="notice error" role="alert">{e.to_string()}</p> }.into_any(),
        })
    }
}

/// Banners for the freezes in force.
#[component]
pub fn FreezeBanners(freezes: Vec<Freeze>, now_ms: i64) -> impl IntoView {
    freezes
        .into_iter()
        .map(|f| {
            let what = f.headline();
            view! {
                <p class="banner frozen" role="status">
                    <strong>{what}</strong>
                    {format!(" by {} {}: {}", f.frozen_by, crate::model::ago(now_ms, f.created_at_ms), f.reason)}
                </p>
            }
        })
        .collect_view()
}
