//! Every rule about who may change what: deploy, preview, resubmit, freeze, unfreeze, and
//! the pipeline's promotion gate. Plain functions over parsed inputs and server-side facts
//! (the session's roles, the deployment's own environment, the freezes in force), so they
//! are tested without HTTP and no caller-supplied field can steer them.
//!
//! The server functions and the API only parse their input, fetch the facts, call a
//! function here, and act on its answer. Nothing else decides.

use super::Environment;
use super::{CurrentUser, Freeze};

/// Why an action is refused, with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 403: the person lacks the role.
    Forbidden(String),
    /// 409: the state of things forbids it now (frozen, in flight, not failed).
    Conflict(String),
    /// 422: a required confirmation or reason is missing.
    Unconfirmed(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Forbidden(_) => 403,
            Refusal::Conflict(_) => 409,
            Refusal::Unconfirmed(_) => 422,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::Forbidden(m) | Refusal::Conflict(m) | Refusal::Unconfirmed(m) => m,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

pub use super::freeze::Authority;

/// May this person deploy to (or otherwise act on) `environment`? Admins everywhere;
/// others where their teams allow. This is the only place that answers it.
pub fn may_act_on(user: &CurrentUser, environment: &str) -> bool {
    user.can_deploy(environment)
}

/// The deploy role for `environment`, checked first by everything that deploys there
/// (promote, a train, a rollback), so someone without it learns nothing more.
pub fn check_deploy_role(user: &CurrentUser, environment: &str) -> Result<(), Refusal> {
    if may_act_on(user, environment) {
        Ok(())
    } else {
        Err(forbidden_env(environment))
    }
}

fn forbidden_env(environment: &str) -> Refusal {
    Refusal::Forbidden(format!(
        "you may not deploy to {environment}; ask an admin to add you to a team that may"
    ))
}

fn frozen_what(app: &str, f: &Freeze) -> String {
    match (&f.application, f.scope_words()) {
        (Some(_), Some(to)) => format!("deploys of {app} {to} are frozen"),
        (Some(_), None) => format!("{app} is frozen"),
        (None, _) => "deploys are frozen site-wide".into(),
    }
}

/// The environments a person's freeze holds: every one (`None`) for an admin or someone
/// who may deploy to every environment; otherwise only those they may deploy to, in
/// pipeline order. Nobody can hold an environment they could not deploy to themselves.
pub fn freeze_scope(user: &CurrentUser, environments: &[Environment]) -> Option<Vec<String>> {
    if environments.iter().all(|e| may_act_on(user, e.as_str())) {
        return None;
    }
    Some(
        environments
            .iter()
            .filter(|e| may_act_on(user, e.as_str()))
            .map(|e| e.as_str().to_owned())
            .collect(),
    )
}

/// A rollback's freeze in `environment`: promotion into it, and out of it (into the next
/// one) only when the person may deploy there too. `None`: into and out of it, whoever
/// may deploy everywhere rolled back.
pub fn rollback_freeze_scope(
    user: &CurrentUser,
    environments: &[Environment],
    environment: &Environment,
) -> Option<Vec<String>> {
    if environments.iter().all(|e| may_act_on(user, e.as_str())) {
        return None;
    }
    let next = environments.iter().skip_while(|e| *e != environment).nth(1);
    // Never an environment the person may not deploy to (a rollback needs the role for
    // its own, so that one is always theirs).
    Some(
        std::iter::once(environment)
            .chain(next)
            .filter(|e| may_act_on(user, e.as_str()))
            .map(|e| e.as_str().to_owned())
            .collect(),
    )
}

/// A deploy as asked for, with the facts the server found.
pub struct DeployAsk<'a> {
    pub user: &'a CurrentUser,
    pub application: &'a str,
    pub environment: &'a Environment,
    /// The last environment of the pipeline (production): it needs a confirmation.
    pub is_last_environment: bool,
    pub confirmed: bool,
    /// The freezes in force on the app and the site.
    pub freezes: &'a [Freeze],
    pub override_reason: Option<&'a str>,
}

/// What a permitted deploy must record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployPermit {
    Plain,
    /// An admin deploys through a freeze: the audit entry says which and why.
    Override {
        freeze: String,
        reason: String,
    },
}

/// Deploy: the role for that environment; production confirmed; not frozen (an admin may
/// override with a written reason). The one-in-flight rule is enforced atomically by the
/// store; [`in_flight`] words its refusal.
pub fn check_deploy(ask: &DeployAsk<'_>) -> Result<DeployPermit, Refusal> {
    let env = ask.environment.as_str();
    if !may_act_on(ask.user, env) {
        return Err(forbidden_env(env));
    }
    if ask.is_last_environment && !ask.confirmed {
        return Err(Refusal::Unconfirmed(format!(
            "deploying to {env} needs an explicit confirmation: tick the box"
        )));
    }
    // A rollback's freeze stops promotion, not deploys; a deployer's freeze holds only
    // the environments they may deploy to.
    let Some(f) = ask
        .freezes
        .iter()
        .find(|f| f.from_environment.is_none() && f.holds(env))
    else {
        return Ok(DeployPermit::Plain);
    };
    let what = frozen_what(ask.application, f);
    let reason = ask.override_reason.map(str::trim).filter(|r| !r.is_empty());
    match (ask.user.roles.admin, reason) {
        (true, Some(reason)) => Ok(DeployPermit::Override {
            freeze: format!("{what} ({})", f.reason),
            reason: reason.to_owned(),
        }),
        (admin, _) => Err(Refusal::Conflict(format!(
            "{what} by {}: {}. {}",
            f.frozen_by,
            f.reason,
            if admin {
                "As an admin you may override it with a written reason."
            } else {
                "Ask an admin."
            }
        ))),
    }
}

/// What a promotion deploys: exactly what runs in the environment before the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub from: String,
    pub to: String,
    pub version: String,
}

/// "Deploy v301 to staging": the version is never the caller's, it is what the environment
/// before `target` runs now, and only once it succeeded there. `names` and `cells` are in
/// pipeline order. The deploy itself then goes through [`check_deploy`] like any other.
pub fn promotion(
    names: &[&str],
    cells: &[Option<super::CellState>],
    target: &str,
) -> Result<Promotion, Refusal> {
    use super::DeploymentStatus as S;
    let Some(i) = names.iter().position(|n| *n == target) else {
        return Err(Refusal::Unconfirmed(format!(
            "there is no environment {target}"
        )));
    };
    let Some(j) = i.checked_sub(1) else {
        return Err(Refusal::Unconfirmed(format!(
            "{target} is the first environment: there is nothing before it to promote"
        )));
    };
    let from = names[j];
    let Some(Some(prev)) = cells.get(j) else {
        return Err(Refusal::Conflict(format!(
            "nothing runs in {from} to promote"
        )));
    };
    if prev.status != S::Succeeded {
        return Err(Refusal::Conflict(format!(
            "{} in {from} has not succeeded ({}): promote it once it has",
            prev.version,
            prev.status.as_str().replace('_', " ")
        )));
    }
    if let Some(Some(there)) = cells.get(i) {
        if there.same_release_as(prev) && there.status != S::Failed {
            return Err(Refusal::Conflict(format!(
                "{target} already runs {}",
                there.version
            )));
        }
    }
    Ok(Promotion {
        from: from.to_owned(),
        to: target.to_owned(),
        version: prev.version.clone(),
    })
}

/// "Roll back to v299": the newest earlier deployment in that environment that
/// succeeded with another version than what is current there. `history` is newest first.
pub fn rollback_target(
    environment: &str,
    current: Option<&str>,
    history: &[(String, super::DeploymentStatus)],
) -> Result<String, Refusal> {
    let Some(current) = current else {
        return Err(Refusal::Conflict(format!(
            "nothing runs in {environment} to roll back"
        )));
    };
    history
        .iter()
        .find(|(v, s)| v != current && *s == super::DeploymentStatus::Succeeded)
        .map(|(v, _)| v.clone())
        .ok_or_else(|| {
            Refusal::Conflict(format!(
                "no earlier version succeeded in {environment}: there is nothing to roll back to"
            ))
        })
}

/// A written reason (a rollback's, a freeze's): 1 to 500 printable characters, trimmed.
/// `what` says what needs it, in the refusal.
pub fn written_reason(reason: Option<&str>, what: &str) -> Result<String, Refusal> {
    let r = reason.map(str::trim).unwrap_or("");
    if r.is_empty() || r.chars().count() > 500 || r.chars().any(char::is_control) {
        return Err(Refusal::Unconfirmed(format!(
            "{what} needs a written reason (1 to 500 characters, no control characters): it is recorded and shown on the freeze"
        )));
    }
    Ok(r.to_owned())
}

/// A rollback's reason (see `written_reason`).
pub fn rollback_reason(reason: Option<&str>) -> Result<String, Refusal> {
    written_reason(reason, "a rollback")
}

/// The version a button showed against the one the server would deploy now: when what
/// runs moved on since the page was read, nothing is deployed and the person looks again.
/// `now` says what the server has ("integration now runs v302").
pub fn expected_version(
    expected: Option<&str>,
    actual: &str,
    now: impl FnOnce() -> String,
) -> Result<(), Refusal> {
    match expected {
        Some(e) if e != actual => Err(Refusal::Conflict(format!(
            "{}, not {e}: nothing was deployed; look again",
            now()
        ))),
        _ => Ok(()),
    }
}

/// A version recorded in `place` as a ref GitHub could deploy.
pub fn deployable_ref(version: &str, place: &str) -> Result<super::GitRef, Refusal> {
    super::GitRef::parse(version).map_err(|e| {
        Refusal::Unconfirmed(format!(
            "{version} in {place} is not a git ref GitHub could deploy: {}",
            e.message
        ))
    })
}

/// The most apps one release train takes (each is a GitHub call as the person; a train
/// is a job, four calls at a time, so a long one outlives its request).
pub const MAX_TRAIN: usize = 500;

/// Which applications a train takes: the ones asked for (each once, in order), or, when
/// none is, every one of `flagged` (shortname, flags) waiting for a manual deployment to
/// `environment`. Refused when there is none (409) or more than `MAX_TRAIN` (422).
pub fn train_choice(
    asked: Vec<String>,
    flagged: &[(String, Vec<super::Flag>)],
    environment: &str,
) -> Result<Vec<String>, Refusal> {
    let chosen: Vec<String> = if asked.is_empty() {
        flagged
            .iter()
            .filter(|(_, flags)| {
                flags.iter().any(|f| {
                    matches!(f, super::Flag::ManualDeployment { environment: e, .. } if e == environment)
                })
            })
            .map(|(s, _)| s.clone())
            .collect()
    } else {
        let mut asked = asked;
        asked.sort();
        asked.dedup();
        asked
    };
    if chosen.is_empty() {
        return Err(Refusal::Conflict(format!(
            "no application needs a manual deployment to {environment}"
        )));
    }
    if chosen.len() > MAX_TRAIN {
        return Err(Refusal::Unconfirmed(format!(
            "a train takes at most {MAX_TRAIN} applications ({} chosen): run it in parts",
            chosen.len()
        )));
    }
    Ok(chosen)
}

/// A train item refused with `status`: refused by the state of things (frozen, in
/// flight, nothing to promote: 409) or by a missing confirmation or a bad version (422)
/// it is skipped, with the reason; anything else failed.
pub fn train_item_outcome(status: u16) -> &'static str {
    if matches!(status, 409 | 422) {
        "skipped"
    } else {
        "failed"
    }
}

/// The refusal when someone else's deploy to the same app and environment is in flight.
pub fn in_flight(application: &str, environment: &str, holder: &str, ago: &str) -> Refusal {
    Refusal::Conflict(format!(
        "{holder} started a deploy of {application} to {environment} {ago}; wait for it to finish (or to stall) before starting another"
    ))
}

/// Preview ("what would this ship?") and ref suggestions read only; any signed-in person
/// may ask. Kept here so the rule is written down with the others.
pub fn check_preview(_user: &CurrentUser) -> Result<(), Refusal> {
    Ok(())
}

/// What the server knows of a deployment someone wants to resubmit.
pub struct ResubmitFacts<'a> {
    pub application: &'a str,
    /// The deployment's own environment, from the database: the only environment a
    /// resubmit may act on, whatever the pipeline reported about its workflow.
    pub environment: &'a Environment,
    pub failed: bool,
    pub has_workflow: bool,
    pub freezes: &'a [Freeze],
}

/// Resubmit: the role for the deployment's own environment; the deployment failed and has
/// a workflow; not frozen. On success, the environment whose Argo server (and token) must
/// be used: always the deployment's own.
pub fn check_resubmit<'a>(
    user: &CurrentUser,
    facts: &ResubmitFacts<'a>,
) -> Result<&'a Environment, Refusal> {
    let env = facts.environment.as_str();
    if !may_act_on(user, env) {
        return Err(forbidden_env(env));
    }
    if !facts.failed {
        return Err(Refusal::Conflict(
            "only a failed deployment can be resubmitted".into(),
        ));
    }
    if !facts.has_workflow {
        return Err(Refusal::Conflict("the pipeline did not report an Argo workflow for this deployment, so there is nothing to resubmit; deploy again instead".into()));
    }
    // A rollback's freeze stops promotion, not a resubmit.
    if let Some(f) = facts
        .freezes
        .iter()
        .find(|f| f.from_environment.is_none() && f.holds(env))
    {
        return Err(Refusal::Conflict(format!(
            "{} by {}: {}",
            frozen_what(facts.application, f),
            f.frozen_by,
            f.reason
        )));
    }
    Ok(facts.environment)
}

/// Setting a freeze: the whole site needs an admin, one app a deployer (of any
/// environment). Returns the authority the freeze carries.
pub fn check_freeze(user: &CurrentUser, site_wide: bool) -> Result<Authority, Refusal> {
    match (Authority::of(user), site_wide) {
        (Some(Authority::Admin), _) => Ok(Authority::Admin),
        (Some(Authority::Deployer), false) => Ok(Authority::Deployer),
        (_, true) => Err(Refusal::Forbidden(format!(
            "freezing the whole site needs the admin role; you are signed in as {}",
            user.role_label()
        ))),
        (None, false) => Err(Refusal::Forbidden(format!(
            "freezing an app needs the deployer role; you are signed in as {}",
            user.role_label()
        ))),
    }
}

/// Lifting freezes: the same role as setting one there, and at least the authority of
/// whoever set each freeze being lifted. An admin's freeze needs an admin. A deployer's
/// freeze may be lifted by whoever set it, an admin, or a deployer to every environment
/// (an integration-only deployer cannot lift a production deployer's incident freeze).
pub fn check_lift(
    user: &CurrentUser,
    site_wide: bool,
    freezes: &[Freeze],
    environments: &[super::Environment],
) -> Result<(), Refusal> {
    let mine = check_freeze(user, site_wide)?;
    if let Some(f) = freezes.iter().find(|f| f.authority > mine) {
        return Err(Refusal::Forbidden(format!(
            "{} froze this as an admin ({}): only an admin may lift it",
            f.frozen_by, f.reason
        )));
    }
    // Anyone who may deploy to every environment a freeze holds may lift it.
    let may_lift = |f: &Freeze| {
        user.roles.admin
            || f.frozen_by == user.login
            || environments
                .iter()
                .filter(|e| f.holds(e.as_str()))
                .all(|e| may_act_on(user, e.as_str()))
    };
    if let Some(f) = freezes.iter().find(|f| !may_lift(f)) {
        return Err(Refusal::Forbidden(format!(
            "{} froze this ({}){}: only they, an admin, or someone who may deploy to {} may lift it",
            f.frozen_by,
            f.reason,
            f.scope_words().map(|w| format!(" {w}")).unwrap_or_default(),
            f.environments
                .as_ref()
                .map(|e| e.join(" and "))
                .unwrap_or_else(|| "every environment".into())
        )));
    }
    Ok(())
}

/// The pipeline's question before an automatic promotion to `to`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gate {
    pub allowed: bool,
    pub reason: Option<String>,
}

/// No automatic promotion while the app or the site is frozen, nor to an environment where
/// the app's continuous deployment is off.
pub fn promotion_gate(
    application: &str,
    to: &Environment,
    from: Option<&str>,
    manual_environments: &[String],
    freezes: &[Freeze],
) -> Gate {
    // Any freeze of deploys, or a rollback's freeze of promotion into or out of its
    // environment (the rolled-back version stays; nothing moves on from it).
    let blocking = freezes
        .iter()
        .find(|f| match (&f.from_environment, &f.environments) {
            // A freeze of deploys holds promotion into its environments.
            (None, _) => f.holds(to.as_str()),
            // A rollback's: into and out of its environment, or, a deployer's, into the
            // environments it holds.
            (Some(e), None) => Some(e.as_str()) == from || e == to.as_str(),
            (Some(_), Some(_)) => f.holds(to.as_str()),
        });
    if let Some(f) = blocking {
        if let Some(e) = &f.from_environment {
            let what = match &f.environments {
                Some(held) if held.len() == 1 => format!("into {e}"),
                _ => format!("into and out of {e}"),
            };
            return Gate {
                allowed: false,
                reason: Some(format!(
                    "promotion of {application} {what} is frozen by {} after a rollback: {}",
                    f.frozen_by, f.reason
                )),
            };
        }
        return Gate {
            allowed: false,
            reason: Some(format!(
                "{} by {}: {}",
                frozen_what(application, f),
                f.frozen_by,
                f.reason
            )),
        };
    }
    if manual_environments.iter().any(|m| m == to.as_str()) {
        return Gate {
            allowed: false,
            reason: Some(format!(
                "continuous deployment to {to} is off for {application}"
            )),
        };
    }
    Gate {
        allowed: true,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Environments;

    fn user(admin: bool, envs: &[&str]) -> CurrentUser {
        CurrentUser::for_test(admin, envs)
    }

    fn env(name: &str) -> Environment {
        Environments::default().parse(name).unwrap()
    }

    fn freeze(app: Option<&str>, authority: Authority) -> Freeze {
        Freeze {
            from_environment: None,
            id: 1,
            application: app.map(str::to_owned),
            reason: "incident".into(),
            frozen_by: "boss".into(),
            created_at_ms: 0,
            authority,
            environments: None,
        }
    }

    /// Every kind of person, for the invariants below.
    fn people() -> Vec<CurrentUser> {
        vec![
            user(false, &[]),
            user(false, &["integration"]),
            user(false, &["integration", "staging"]),
            user(false, &["integration", "staging", "production"]),
            user(true, &[]),
        ]
    }

    #[test]
    fn nobody_acts_on_an_environment_they_may_not_deploy_to_by_any_action() {
        let envs = Environments::default();
        for u in people() {
            for e in envs.as_slice() {
                let allowed =
                    u.roles.admin || u.roles.deploy_environments.iter().any(|d| d == e.as_str());
                let deploy = check_deploy(&DeployAsk {
                    user: &u,
                    application: "a",
                    environment: e,
                    is_last_environment: false,
                    confirmed: true,
                    freezes: &[],
                    override_reason: None,
                });
                let facts = ResubmitFacts {
                    application: "a",
                    environment: e,
                    failed: true,
                    has_workflow: true,
                    freezes: &[],
                };
                let resubmit = check_resubmit(&u, &facts);
                assert_eq!(deploy.is_ok(), allowed, "deploy {e} as {u:?}");
                assert_eq!(resubmit.is_ok(), allowed, "resubmit {e} as {u:?}");
                if let Ok(target) = resubmit {
                    assert_eq!(
                        target, e,
                        "resubmit acts on the deployment's own environment"
                    );
                }
                for r in [deploy.err(), check_resubmit(&u, &facts).err()]
                    .into_iter()
                    .flatten()
                {
                    assert_eq!(r.status(), 403);
                }
            }
        }
    }

    #[test]
    fn the_last_environment_needs_confirmation() {
        let u = user(true, &[]);
        let e = env("production");
        let ask = |confirmed| DeployAsk {
            user: &u,
            application: "a",
            environment: &e,
            is_last_environment: true,
            confirmed,
            freezes: &[],
            override_reason: None,
        };
        assert_eq!(check_deploy(&ask(false)).unwrap_err().status(), 422);
        assert_eq!(check_deploy(&ask(true)), Ok(DeployPermit::Plain));
    }

    #[test]
    fn freezes_stop_deploys_unless_an_admin_overrides_with_a_reason() {
        let e = env("staging");
        let frozen = [freeze(Some("a"), Authority::Deployer)];
        for u in people() {
            for reason in [None, Some("  "), Some("hotfix for the incident")] {
                let r = check_deploy(&DeployAsk {
                    user: &u,
                    application: "a",
                    environment: &e,
                    is_last_environment: false,
                    confirmed: false,
                    freezes: &frozen,
                    override_reason: reason,
                });
                let may = may_act_on(&u, "staging");
                match r {
                    Ok(DeployPermit::Override { reason: why, .. }) => {
                        assert!(u.roles.admin && why == "hotfix for the incident")
                    }
                    Ok(DeployPermit::Plain) => panic!("a frozen app deployed plainly"),
                    Err(refusal) => assert!(
                        !may || !u.roles.admin || reason.map(str::trim).unwrap_or("").is_empty(),
                        "{refusal:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn resubmit_needs_a_failed_deployment_with_a_workflow_and_no_freeze() {
        let u = user(false, &["staging"]);
        let e = env("staging");
        let facts = |failed, has_workflow, freezes: &'static [Freeze]| ResubmitFacts {
            application: "a",
            environment: &e,
            failed,
            has_workflow,
            freezes,
        };
        assert!(check_resubmit(&u, &facts(true, true, &[])).is_ok());
        assert_eq!(
            check_resubmit(&u, &facts(false, true, &[]))
                .unwrap_err()
                .status(),
            409
        );
        assert_eq!(
            check_resubmit(&u, &facts(true, false, &[]))
                .unwrap_err()
                .status(),
            409
        );
        let frozen: &'static [Freeze] = Box::leak(Box::new([freeze(None, Authority::Admin)]));
        assert_eq!(
            check_resubmit(&u, &facts(true, true, frozen))
                .unwrap_err()
                .status(),
            409
        );
    }

    #[test]
    fn only_admins_freeze_the_site_and_a_freeze_is_lifted_only_with_its_authority() {
        let viewer = user(false, &[]);
        let deployer = user(false, &["integration"]);
        let admin = user(true, &[]);
        assert_eq!(check_freeze(&viewer, false).unwrap_err().status(), 403);
        assert_eq!(check_freeze(&deployer, false), Ok(Authority::Deployer));
        assert_eq!(check_freeze(&deployer, true).unwrap_err().status(), 403);
        assert_eq!(check_freeze(&admin, true), Ok(Authority::Admin));
        let envs = Environments::default();
        let envs = envs.as_slice();
        let everywhere = user(false, &["integration", "staging", "production"]);
        let admins = [freeze(Some("a"), Authority::Admin)];
        let deployers = [freeze(Some("a"), Authority::Deployer)]; // set by "boss"
        assert_eq!(
            check_lift(&everywhere, false, &admins, envs)
                .unwrap_err()
                .status(),
            403
        );
        assert!(check_lift(&everywhere, false, &deployers, envs).is_ok());
        assert!(check_lift(&admin, false, &admins, envs).is_ok());
        assert_eq!(
            check_lift(&viewer, false, &deployers, envs)
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            check_lift(&deployer, true, &[], envs).unwrap_err().status(),
            403
        );
        // An integration-only deployer may lift only their own deployer freeze.
        assert_eq!(
            check_lift(&deployer, false, &deployers, envs)
                .unwrap_err()
                .status(),
            403
        );
        let mut own = deployers[0].clone();
        own.frozen_by = deployer.login.clone();
        assert!(check_lift(&deployer, false, &[own], envs).is_ok());
        // A mix: one admin freeze among the app's freezes blocks a deployer.
        let mixed = [deployers[0].clone(), admins[0].clone()];
        assert!(check_lift(&everywhere, false, &mixed, envs).is_err());
    }

    #[test]
    fn the_promotion_gate() {
        let staging = env("staging");
        assert!(promotion_gate("a", &staging, Some("integration"), &[], &[]).allowed);
        let g = promotion_gate("a", &staging, Some("integration"), &["staging".into()], &[]);
        assert!(
            !g.allowed
                && g.reason
                    .unwrap()
                    .contains("continuous deployment to staging is off")
        );
        let g = promotion_gate(
            "a",
            &staging,
            Some("integration"),
            &[],
            &[freeze(None, Authority::Admin)],
        );
        assert!(!g.allowed && g.reason.unwrap().contains("frozen site-wide"));
    }

    #[test]
    fn a_promotion_deploys_what_runs_before_once_it_succeeded() {
        use crate::domain::{CellState, DeploymentStatus as S};
        let names = ["integration", "staging", "production"];
        let cell = |v: &str, status| {
            Some(CellState {
                version: v.into(),
                sha: None,
                status,
                failed_stage: None,
            })
        };
        let cells = [cell("v301", S::Succeeded), cell("v300", S::Succeeded), None];
        assert_eq!(
            promotion(&names, &cells, "staging").unwrap(),
            Promotion {
                from: "integration".into(),
                to: "staging".into(),
                version: "v301".into()
            }
        );
        assert_eq!(
            promotion(&names, &cells, "production").unwrap().version,
            "v300"
        );
        assert_eq!(
            promotion(&names, &cells, "integration")
                .unwrap_err()
                .status(),
            422
        );
        assert_eq!(promotion(&names, &cells, "moon").unwrap_err().status(), 422);
        let same = [cell("v301", S::Succeeded), cell("v301", S::Succeeded), None];
        assert!(promotion(&names, &same, "staging")
            .unwrap_err()
            .message()
            .contains("already runs v301"));
        // A failed target may be redeployed with the same version.
        let failed_there = [cell("v301", S::Succeeded), cell("v301", S::Failed), None];
        assert!(promotion(&names, &failed_there, "staging").is_ok());
        for status in [S::Failed, S::InProgress, S::Requested] {
            let not_yet = [cell("v302", status), cell("v301", S::Succeeded), None];
            assert_eq!(
                promotion(&names, &not_yet, "staging").unwrap_err().status(),
                409
            );
        }
        let nothing = [None, cell("v1", S::Succeeded), None];
        assert_eq!(
            promotion(&names, &nothing, "staging").unwrap_err().status(),
            409
        );
    }

    #[test]
    fn rollback_goes_to_the_newest_earlier_success_with_a_reason() {
        use crate::domain::DeploymentStatus as S;
        let h = |v: &[(&str, S)]| {
            v.iter()
                .map(|(v, s)| (v.to_string(), *s))
                .collect::<Vec<_>>()
        };
        let history = h(&[
            ("v301", S::Succeeded),
            ("v300", S::Failed),
            ("v301", S::Succeeded),
            ("v299", S::Succeeded),
        ]);
        assert_eq!(
            rollback_target("production", Some("v301"), &history).unwrap(),
            "v299"
        );
        assert_eq!(
            rollback_target("production", None, &history)
                .unwrap_err()
                .status(),
            409
        );
        assert_eq!(
            rollback_target("production", Some("v1"), &h(&[("v1", S::Succeeded)]))
                .unwrap_err()
                .status(),
            409
        );
        assert_eq!(
            rollback_reason(Some("  bad release  ")).unwrap(),
            "bad release"
        );
        assert_eq!(rollback_reason(Some(" ")).unwrap_err().status(), 422);
        assert_eq!(rollback_reason(None).unwrap_err().status(), 422);
        assert_eq!(
            rollback_reason(Some(&"x".repeat(501)))
                .unwrap_err()
                .status(),
            422
        );
    }

    #[test]
    fn a_rollback_freeze_stops_promotion_from_its_environment_only() {
        let mut f = freeze(Some("frontend"), Authority::Deployer);
        f.from_environment = Some("staging".into());
        let production = Environment::parse_name("production").unwrap();
        let staging = Environment::parse_name("staging").unwrap();
        let g = promotion_gate(
            "frontend",
            &production,
            Some("staging"),
            &[],
            std::slice::from_ref(&f),
        );
        assert!(!g.allowed);
        assert!(g
            .reason
            .unwrap()
            .contains("into and out of staging is frozen"));
        // Into the rolled-back environment too: the pipeline does not overwrite it.
        assert!(
            !promotion_gate(
                "frontend",
                &staging,
                Some("integration"),
                &[],
                std::slice::from_ref(&f)
            )
            .allowed
        );
        let integration = Environment::parse_name("integration").unwrap();
        assert!(
            promotion_gate(
                "frontend",
                &integration,
                None,
                &[],
                std::slice::from_ref(&f)
            )
            .allowed
        );
        // Deploys go on (the rollback itself among them).
        let u = user(false, &["staging"]);
        let ask = DeployAsk {
            user: &u,
            application: "frontend",
            environment: &staging,
            is_last_environment: false,
            confirmed: false,
            freezes: std::slice::from_ref(&f),
            override_reason: None,
        };
        assert_eq!(check_deploy(&ask), Ok(DeployPermit::Plain));
    }

    fn person(login: &str, envs: &[&str]) -> CurrentUser {
        CurrentUser {
            login: login.into(),
            ..user(false, envs)
        }
    }

    /// The third review's finding 3: an integration-only deployer's freeze and rollback
    /// freeze hold integration (and promotion into it) and nothing later; a production
    /// deployer lifts it; someone who may deploy everywhere freezes everything.
    #[test]
    fn a_deployers_freeze_holds_only_their_environments() {
        let envs = Environments::default();
        let all = envs.as_slice();
        let bob = person("bob", &["integration"]);
        let prod = person("pat", &["production"]);
        let everywhere = person("eve", &["integration", "staging", "production"]);
        assert_eq!(
            freeze_scope(&bob, all),
            Some(vec!["integration".to_string()])
        );
        assert_eq!(freeze_scope(&everywhere, all), None);
        let mut f = freeze(Some("signon"), Authority::Deployer);
        f.frozen_by = "bob".into();
        f.environments = freeze_scope(&bob, all);
        let ask = |u: &CurrentUser, e: &str| {
            let e = env(e);
            check_deploy(&DeployAsk {
                user: u,
                application: "signon",
                environment: &e,
                is_last_environment: e.as_str() == "production",
                confirmed: true,
                freezes: std::slice::from_ref(&f),
                override_reason: None,
            })
        };
        assert!(ask(&prod, "production").is_ok(), "production is not held");
        assert_eq!(ask(&bob, "integration").unwrap_err().status(), 409);
        let gate = |to: &str, from: Option<&str>| {
            promotion_gate("signon", &env(to), from, &[], std::slice::from_ref(&f)).allowed
        };
        assert!(
            !gate("integration", None),
            "promotion into integration is held"
        );
        assert!(gate("staging", Some("integration")));
        assert!(gate("production", Some("staging")));
        // Anyone who may deploy to integration may lift it; the production deployer too?
        // No: they may not deploy to integration. An admin may.
        let dev = person("dev", &["integration"]);
        assert!(check_lift(&dev, false, std::slice::from_ref(&f), all).is_ok());
        assert_eq!(
            check_lift(&prod, false, std::slice::from_ref(&f), all)
                .unwrap_err()
                .status(),
            403
        );

        // bob's rollback in integration: promotion into integration is held, staging's
        // gate stays open.
        let mut r = freeze(Some("signon"), Authority::Deployer);
        r.frozen_by = "bob".into();
        r.from_environment = Some("integration".into());
        r.environments = rollback_freeze_scope(&bob, all, &env("integration"));
        assert_eq!(r.environments, Some(vec!["integration".to_string()]));
        let gate = |to: &str, from: Option<&str>| {
            promotion_gate("signon", &env(to), from, &[], std::slice::from_ref(&r)).allowed
        };
        assert!(!gate("integration", None));
        assert!(
            gate("staging", Some("integration")),
            "staging's gate stays open"
        );
        // Someone who may deploy everywhere rolls back staging: into and out of it.
        r.environments = rollback_freeze_scope(&everywhere, all, &env("staging"));
        r.from_environment = Some("staging".into());
        assert_eq!(r.environments, None);
        let gate = |to: &str, from: Option<&str>| {
            promotion_gate("signon", &env(to), from, &[], std::slice::from_ref(&r)).allowed
        };
        assert!(!gate("staging", Some("integration")));
        assert!(!gate("production", Some("staging")));
    }

    /// The invariant across every path: an integration-only deployer can cause nothing in
    /// staging or production, whatever they freeze or roll back.
    #[test]
    fn an_integration_deployer_never_holds_a_later_environment() {
        let envs = Environments::default();
        let all = envs.as_slice();
        let bob = person("bob", &["integration"]);
        let mut freezes = vec![];
        let mut f = freeze(Some("signon"), Authority::Deployer);
        f.environments = freeze_scope(&bob, all);
        freezes.push(f);
        for e in all {
            let mut r = freeze(Some("signon"), Authority::Deployer);
            r.from_environment = Some(e.as_str().into());
            r.environments = rollback_freeze_scope(&bob, all, e);
            freezes.push(r);
        }
        for later in ["staging", "production"] {
            for from in [None, Some("integration"), Some("staging")] {
                assert!(
                    promotion_gate("signon", &env(later), from, &[], &freezes).allowed,
                    "{later} from {from:?}"
                );
            }
            assert!(freezes.iter().all(|f| !f.holds(later)), "{later}");
        }
    }
}
