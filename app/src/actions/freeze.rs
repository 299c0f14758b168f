//! Freeze and lift. An app's freeze by a deployer holds only the environments that person
//! may deploy to (`deploy_rules::freeze_scope`); the whole site needs an admin. A freeze
//! carries its setter's authority; anyone who may deploy to every environment it holds
//! may lift it (`deploy_rules::check_lift`). Each is one transaction with its audit entry
//! and alert: there is no outside call.

use super::{ActionDone, Audit};
use crate::auth::CurrentUser;
use crate::domain::deploy_rules as rules;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::{ApplicationRow, NewFreeze};

/// Freezes deploys to `app` (none: the whole site), with a written reason.
pub async fn set(
    state: &AppState,
    user: &CurrentUser,
    app: Option<&ApplicationRow>,
    reason: &str,
) -> Result<ActionDone, AppError> {
    let authority = rules::check_freeze(user, app.is_none())?;
    let reason = rules::written_reason(Some(reason), "a freeze")?;
    let environments = match app {
        Some(_) => rules::freeze_scope(user, state.store.environments().as_slice()),
        // The site: admins only, every environment.
        None => None,
    };
    let name = match app {
        Some(a) => a.shortname.clone(),
        None => "the whole site".to_string(),
    };
    let audit =
        Audit::new(&state.store, &user.login, "freeze").on(app.map(|a| a.shortname.as_str()), None);
    let message = match &environments {
        Some(e) => format!("Deploys of {name} to {} are frozen.", e.join(" and ")),
        None => format!("Deploys to {name} are frozen."),
    };
    let detail = match &environments {
        Some(e) => format!("{reason} (holds {})", e.join(", ")),
        None => reason.clone(),
    };
    state
        .store
        .set_freeze(
            &NewFreeze {
                application_id: app.map(|a| a.id),
                from_environment: None,
                environments,
                reason: &reason,
                by: &user.login,
                authority,
            },
            &audit.entry("done", &detail),
        )
        .await?;
    Ok(ActionDone {
        message,
        link: None,
    })
}

/// Lifts the freezes on `app` (or the site's): refused, and audited, when any of them
/// was set with more authority than the person has, or holds an environment they may not
/// deploy to.
pub async fn lift(
    state: &AppState,
    user: &CurrentUser,
    app: Option<&ApplicationRow>,
) -> Result<ActionDone, AppError> {
    let site_wide = app.is_none();
    let in_force: Vec<_> = state
        .store
        .active_freezes(app.map(|a| a.id))
        .await?
        .into_iter()
        // Lifting an app's freezes lifts only that app's; the site's needs the site.
        .filter(|f| f.application.is_some() != site_wide)
        .collect();
    let audit = Audit::new(&state.store, &user.login, "unfreeze")
        .on(app.map(|a| a.shortname.as_str()), None);
    if let Err(r) = rules::check_lift(
        user,
        site_wide,
        &in_force,
        state.store.environments().as_slice(),
    ) {
        audit.record("refused", &r.to_string()).await;
        return Err(r.into());
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
        .await?;
    Ok(ActionDone {
        message: if n == 0 {
            "Nothing was frozen.".into()
        } else {
            "Freeze lifted.".into()
        },
        link: None,
    })
}
