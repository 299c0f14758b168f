//! The daily digest's facts: every app with a team, what the grid flags (manual
//! deployments waiting, failed cells, drift), how many commits a waiting version is ahead
//! (GitHub's compare, with a token that needs no person, at most [`MAX_LOOKUPS`] a
//! digest), and the gates holding a promotion (checks read with that token; soak from the
//! store). The words are `domain::digest`'s; the day and the sending are the server's
//! (`src/digest.rs`).

use crate::domain::digest::{items_of, DigestApp, DigestItem};
use crate::domain::gates::Hold;
use crate::domain::{Environment, Flag, GitRef, RepoName};
use crate::state::AppState;

/// GitHub reads one digest may make (compares and checks), so a site with hundreds of
/// waiting apps does not spend its rate limit at 09:30.
pub const MAX_LOOKUPS: usize = 60;

/// Every app with a team and something to say, with its items.
pub async fn gather(state: &AppState, token: Option<&str>) -> crate::store::Result<Vec<DigestApp>> {
    // The grid as stored (flags, drift); what holds a promotion is read below, for the
    // waiting ones only. The applications in one query.
    let grid = state.store.grid().await?;
    let rows: std::collections::HashMap<String, crate::store::ApplicationRow> = state
        .store
        .applications()
        .await?
        .into_iter()
        .map(|a| (a.shortname.to_string(), a))
        .collect();
    let envs = grid.environments.clone();
    let mut lookups = 0;
    let mut out = Vec::new();
    for app in grid.apps.iter().filter(|a| !a.team.is_empty()) {
        let mut items = items_of(app, &envs);
        let row = rows.get(&app.shortname);
        let repo = RepoName::parse(&app.repo).ok();
        for item in items.iter_mut() {
            let DigestItem::Manual {
                version,
                running,
                commits_behind,
                ..
            } = item
            else {
                continue;
            };
            if let (Some(token), Some(repo), Some(base), Ok(head)) =
                (token, &repo, running.as_deref(), GitRef::parse(version))
            {
                if lookups < MAX_LOOKUPS {
                    lookups += 1;
                    *commits_behind = state
                        .pipeline
                        .compare(token, repo, base, &head)
                        .await
                        .ok()
                        .and_then(|c| c.get("ahead_by").and_then(|n| n.as_i64()));
                }
            }
        }
        // What holds each waiting promotion: the gates of the version that waits.
        let waiting: Vec<(String, String)> = app
            .flags
            .iter()
            .filter_map(|f| match f {
                Flag::ManualDeployment {
                    environment,
                    behind,
                }
                | Flag::NotInSync {
                    environment,
                    behind,
                } => {
                    let i = envs.iter().position(|e| e == behind)?;
                    let cell = app.cells.get(i)?.as_ref()?;
                    Some((environment.clone(), cell.version.clone()))
                }
                _ => None,
            })
            .collect();
        if let Some(row) = row {
            for (environment, version) in waiting {
                if lookups >= MAX_LOOKUPS {
                    break;
                }
                let (Ok(env), Ok(git_ref)) = (
                    Environment::parse_name(&environment),
                    GitRef::parse(&version),
                ) else {
                    continue;
                };
                lookups += 1;
                let found = super::gates::holds(state, row, &env, &git_ref, token).await?;
                for hold in found.holds {
                    // Without a token the checks are not known: the digest says nothing
                    // of them rather than "held".
                    if token.is_none() && matches!(hold, Hold::ChecksUnknown(_)) {
                        continue;
                    }
                    items.push(DigestItem::Held {
                        environment: environment.clone(),
                        version: version.clone(),
                        why: hold.describe(),
                    });
                }
            }
        }
        if !items.is_empty() {
            out.push(DigestApp {
                name: app.name.clone(),
                shortname: app.shortname.clone(),
                team: app.team.clone(),
                items,
            });
        }
    }
    Ok(out)
}
