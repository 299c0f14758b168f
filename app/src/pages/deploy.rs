//! Deploy, Resubmit and freezes: the server functions that change things, with every rule
//! enforced here on the server, and the forms that call them.

use crate::model::Freeze;
use leptos::prelude::*;

pub use crate::actions::ActionDone;
#[cfg(feature = "ssr")]
use crate::actions::Audit;

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
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let (shortname, env, git_ref) = parse_target(&state.store, &shortname, &environment, &git_ref)?;
    let app = state
        .store
        .application(shortname.as_str())
        .await
        .map_err(AppError::store)?
        .ok_or_else(|| AppError::new(404, format!("no application {shortname}")))?;
    use crate::actions::deploy::{answer_wait, perform_deploy, DeployCommand};
    let dispatching = perform_deploy(
        &state,
        &user,
        DeployCommand {
            app: &app,
            environment: env,
            git_ref,
            confirmed: confirm.as_deref() == Some("yes"),
            override_reason: override_reason.as_deref(),
            why: None,
            rollback: None,
            train_id: None,
        },
    )
    .await?;
    dispatching
        .answer(answer_wait(state.pipeline.timeout()))
        .await
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
    let detail = store
        .app_detail(shortname.as_str())
        .await
        .map_err(crate::error::AppError::store)?
        .ok_or_else(|| AppError::new(404, format!("no application {shortname}")))?;
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
    };
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
    let detail = store
        .app_detail(shortname.as_str())
        .await
        .map_err(crate::error::AppError::store)?
        .ok_or_else(|| AppError::new(404, format!("no application {shortname}")))?;
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
/// records the new workflow on the deployment's timeline, and puts it back in progress.
#[server(endpoint = "resubmit")]
pub async fn resubmit(deployment_id: i64) -> Result<ActionDone, crate::error::AppError> {
    use crate::domain::{deploy_rules as rules, EventStatus, GitRef, K8sName, RepoName, Stage};
    use crate::error::AppError;
    let user = crate::auth::require_user()?;
    let state = crate::state::app_state()?;
    let store = &state.store;
    let target = store
        .deployment_for_resubmit(deployment_id)
        .await
        .map_err(crate::error::AppError::store)?
        .ok_or_else(|| AppError::new(404, format!("no deployment {deployment_id}")))?;
    // Server-side facts only: the deployment's own environment, from the database.
    let stored = |e: crate::domain::InvalidInput| {
        AppError::new(
            409,
            format!("the stored deployment cannot be resubmitted: {e}"),
        )
    };
    let env = store
        .environments()
        .parse(&target.environment)
        .map_err(stored)?;
    let audit = Audit::new(
        store,
        &user.login,
        "resubmit",
        Some(&target.shortname),
        Some(&target.environment),
    );
    let freezes = store
        .active_freezes(Some(target.application_id))
        .await
        .map_err(crate::error::AppError::store)?;
    let checked = rules::check_resubmit(
        &user,
        &rules::ResubmitFacts {
            application: &target.shortname,
            environment: &env,
            failed: target.status == "failed",
            has_workflow: target.workflow_namespace.is_some() && target.workflow_name.is_some(),
            freezes: &freezes,
        },
    );
    let argo_env = match checked {
        Ok(e) => e.clone(),
        Err(refusal) => {
            audit.record("refused", &refusal.to_string()).await;
            return Err(AppError::new(refusal.status(), refusal.to_string()));
        }
    };
    // Parsed again: rows written before names were checked on arrival must not reach a URL.
    let namespace = K8sName::namespace(
        target.workflow_namespace.as_deref().unwrap_or_default(),
        "workflow.namespace",
    )
    .map_err(stored)?;
    let name = K8sName::object(
        target.workflow_name.as_deref().unwrap_or_default(),
        "workflow.name",
    )
    .map_err(stored)?;
    let repo = RepoName::parse(&target.repo).map_err(stored)?;
    let version = store
        .deployment_version(deployment_id)
        .await
        .map_err(crate::error::AppError::store)?
        .unwrap_or_default();
    let version = GitRef::parse(&version).map_err(stored)?;
    let stage = target
        .failed_stage
        .as_deref()
        .and_then(|s| Stage::parse(s).ok())
        .unwrap_or(Stage::SmokeTests);
    // The demo's simulated pipeline, or the deployment's own environment's Argo server.
    let (new_name, url) = match &state.simulator {
        Some(sim) => (sim.resubmitted_name(name.as_str()), None),
        None => match state.pipeline.resubmit(&argo_env, &namespace, &name).await {
            Ok(n) => {
                let url = K8sName::object(&n, "name")
                    .ok()
                    .and_then(|n| state.pipeline.workflow_url(&argo_env, &namespace, &n));
                (n, url)
            }
            Err(e) => {
                audit
                    .record("failed", &format!("{namespace}/{name}: {e}"))
                    .await;
                return Err(AppError::new(502, format!("Nothing was resubmitted. {e}")));
            }
        },
    };
    let workflow = crate::model::Workflow {
        environment: Some(argo_env.to_string()),
        namespace: Some(namespace.to_string()),
        name: Some(new_name.clone()),
        url: url.clone(),
    };
    let event = crate::store::NewEvent {
        repo: repo.clone(),
        environment: env.clone(),
        version: version.clone(),
        stage,
        status: EventStatus::Started,
        message: Some(format!("resubmitted by {} as {new_name}", user.login)),
        workflow: Some(workflow.clone()),
        delivery_id: None,
        at_ms: None,
    };
    // The new workflow on the timeline and the audit entry: one transaction. Argo has
    // already resubmitted, so a failure here is said in the audit log too.
    let detail = format!("{namespace}/{name} resubmitted as {new_name}");
    if let Err(e) = store
        .record_event_with(&event, Some(&audit.entry("requested", &detail)))
        .await
    {
        audit
            .record("failed", &format!("{detail}, but not recorded: {e}"))
            .await;
        return Err(crate::error::AppError::store(e));
    }
    if let Some(sim) = &state.simulator {
        sim.resume(store.clone(), repo, env, version, stage, workflow);
    }
    Ok(ActionDone {
        message: format!("Resubmitted as {new_name}."),
        link: url,
    })
}

/// Freezes deploys to one app (deployers) or the whole site (admins), with a reason. The
/// freeze carries its setter's authority: only someone with as much may lift it.
#[server(endpoint = "freeze")]
pub async fn set_freeze(
    shortname: Option<String>,
    reason: String,
) -> Result<ActionDone, crate::error::AppError> {
    use crate::domain::deploy_rules as rules;
    use crate::error::AppError;
    let (state, user, app) = freeze_target(shortname).await?;
    let authority = rules::check_freeze(&user, app.is_none()).map_err(AppError::from)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::new(422, "say why, in 1 to 500 characters"));
    }
    let (id, name) = match &app {
        Some(a) => (Some(a.id), a.shortname.clone()),
        None => (None, "the whole site".to_string()),
    };
    let audit = Audit::new(
        &state.store,
        &user.login,
        "freeze",
        app.as_ref().map(|a| a.shortname.as_str()),
        None,
    );
    state
        .store
        .freeze(
            id,
            reason,
            &user.login,
            authority,
            &audit.entry("done", reason),
        )
        .await
        .map_err(crate::error::AppError::store)?;
    Ok(ActionDone {
        message: format!("Deploys to {name} are frozen."),
        link: None,
    })
}

/// Lifts the freezes on one app (or the site): refused, and audited, when any of them was
/// set with more authority than the person has.
#[server(endpoint = "unfreeze")]
pub async fn lift_freeze(shortname: Option<String>) -> Result<ActionDone, crate::error::AppError> {
    use crate::domain::deploy_rules as rules;
    use crate::error::AppError;
    let (state, user, app) = freeze_target(shortname).await?;
    let site_wide = app.is_none();
    let app_name = app.as_ref().map(|a| a.shortname.as_str());
    let in_force: Vec<_> = state
        .store
        .active_freezes(app.as_ref().map(|a| a.id))
        .await
        .map_err(crate::error::AppError::store)?
        .into_iter()
        // Lifting an app's freezes lifts only that app's; the site's needs the site.
        .filter(|f| f.application.is_some() != site_wide)
        .collect();
    let audit = Audit::new(&state.store, &user.login, "unfreeze", app_name, None);
    if let Err(r) = rules::check_lift(
        &user,
        site_wide,
        &in_force,
        state.store.environments().as_slice(),
    ) {
        audit.record("refused", &r.to_string()).await;
        return Err(AppError::new(r.status(), r.to_string()));
    }
    let ids: Vec<i64> = in_force.iter().map(|f| f.id).collect();
    let lifted: Vec<String> = in_force
        .iter()
        .map(|f| format!("{} ({})", f.reason, f.frozen_by))
        .collect();
    let detail = format!("{} freeze(s) lifted: {}", ids.len(), lifted.join("; "));
    let n = state
        .store
        .lift_freezes(&ids, &user.login, &audit.entry("done", &detail))
        .await
        .map_err(crate::error::AppError::store)?;
    Ok(ActionDone {
        message: if n == 0 {
            "Nothing was frozen.".into()
        } else {
            "Freeze lifted.".into()
        },
        link: None,
    })
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
                .await
                .map_err(crate::error::AppError::store)?
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
            let what = match (&f.application, &f.from_environment) {
                (Some(a), Some(e)) => {
                    format!("Promotion of {a} into and out of {e} is frozen (rollback)")
                }
                (Some(a), None) => format!("Deploys to {a} are frozen"),
                (None, _) => "Deploys are frozen site-wide".to_string(),
            };
            view! {
                <p class="banner frozen" role="status">
                    <strong>{what}</strong>
                    {format!(" by {} {}: {}", f.frozen_by, crate::model::ago(now_ms, f.created_at_ms), f.reason)}
                </p>
            }
        })
        .collect_view()
}
