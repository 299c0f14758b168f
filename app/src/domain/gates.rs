//! Gates before a deploy: the commit's required CI checks, and the time a version has run
//! ("soaked") in the environment before. Pure: GitHub's answers and the stints a version
//! ran are read elsewhere (`pipeline`, `store`); here is only what they mean, and who may
//! deploy anyway with a written reason. Every way a deploy starts (Deploy, Promote, a
//! train, a rollback) and the pipeline's promotion gate ask the same functions.

use super::deploy_rules::{written_reason, Refusal};
use super::CurrentUser;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest soak time configuration may ask for: a week.
pub const MAX_SOAK_MINUTES: u32 = 10_080;

/// Who may deploy through a closed gate, per environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideBy {
    /// Anyone who may deploy there (the default).
    #[default]
    Deployers,
    Admins,
}

impl OverrideBy {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "deployers" => Ok(Self::Deployers),
            "admins" => Ok(Self::Admins),
            other => Err(format!(
                "override must be \"deployers\" or \"admins\", not {other:?}"
            )),
        }
    }
}

/// `[gates.<environment>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentGates {
    /// Checks every deploy there needs, besides those GitHub marks required. `Some` (even
    /// empty) turns the checks gate on for the environment.
    pub required_checks: Option<Vec<String>>,
    /// Minutes a version must have run in the environment before (0: no soak).
    pub soak_minutes: u32,
    pub override_by: OverrideBy,
}

/// An application's own gates (`[[applications]] required_checks`, `soak_minutes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplicationGates {
    /// The checks used when GitHub marks none as required; `Some` turns the checks gate on
    /// for the application in every environment.
    pub required_checks: Option<Vec<String>>,
    /// Environment -> minutes, over the environment's own.
    pub soak_minutes: BTreeMap<String, u32>,
}

/// Every gate of the configuration, checked at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateConfig {
    pub environments: BTreeMap<String, EnvironmentGates>,
    /// Shortname -> its gates.
    pub applications: BTreeMap<String, ApplicationGates>,
    /// The environments Argo CD watches (`[argocd.*]`): there a soak counts from when Argo
    /// CD first showed the version settled, not from the pipeline's word.
    pub argocd_environments: Vec<String>,
}

impl GateConfig {
    /// Is the checks gate on for this application in this environment?
    pub fn checks_on(&self, application: &str, environment: &str) -> bool {
        self.environments
            .get(environment)
            .is_some_and(|g| g.required_checks.is_some())
            || self
                .applications
                .get(application)
                .is_some_and(|a| a.required_checks.is_some())
    }

    /// The configured required checks: the environment's, and the application's when
    /// GitHub marks none as required.
    pub fn configured_checks(
        &self,
        application: &str,
        environment: &str,
        github_marks_some: bool,
    ) -> Vec<String> {
        let mut out: Vec<String> = self
            .environments
            .get(environment)
            .and_then(|g| g.required_checks.clone())
            .unwrap_or_default();
        if !github_marks_some {
            if let Some(a) = self
                .applications
                .get(application)
                .and_then(|a| a.required_checks.as_ref())
            {
                out.extend(a.iter().cloned());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Minutes `application` must have run in the environment before `environment`.
    pub fn soak_minutes(&self, application: &str, environment: &str) -> u32 {
        self.applications
            .get(application)
            .and_then(|a| a.soak_minutes.get(environment).copied())
            .or_else(|| self.environments.get(environment).map(|g| g.soak_minutes))
            .unwrap_or(0)
    }

    pub fn override_by(&self, environment: &str) -> OverrideBy {
        self.environments
            .get(environment)
            .map(|g| g.override_by)
            .unwrap_or_default()
    }
}

/// A check name as configuration or GitHub's protection gives it: 1 to 255 printable
/// characters.
pub fn parse_check_name(name: &str) -> Result<String, String> {
    if name.trim().is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(format!(
            "{name:?} is not a check name (1 to 255 printable characters)"
        ));
    }
    Ok(name.to_owned())
}

/// A soak time from configuration: 0 to [`MAX_SOAK_MINUTES`].
pub fn parse_soak_minutes(minutes: i64) -> Result<u32, String> {
    u32::try_from(minutes)
        .ok()
        .filter(|m| *m <= MAX_SOAK_MINUTES)
        .ok_or_else(|| {
            format!("soak_minutes must be 0 to {MAX_SOAK_MINUTES} (a week), not {minutes}")
        })
}

/// Where one required check stands on the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    Success,
    Pending,
    Failing,
    Missing,
}

impl CheckState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckState::Success => "success",
            CheckState::Pending => "pending",
            CheckState::Failing => "failing",
            CheckState::Missing => "missing",
        }
    }

    /// A check run's state, as Shipit reads it: `success`, `neutral` and `skipped` pass;
    /// `failure`, `cancelled`, `timed_out` and `stale` fail; not completed, no conclusion
    /// yet, or `action_required` is pending.
    pub fn of_check_run(status: &str, conclusion: Option<&str>) -> Self {
        if status != "completed" {
            return CheckState::Pending;
        }
        match conclusion {
            Some("success" | "neutral" | "skipped") => CheckState::Success,
            Some("failure" | "cancelled" | "timed_out" | "stale") => CheckState::Failing,
            _ => CheckState::Pending,
        }
    }

    /// A commit status's state: `success`; `pending`; `failure` and `error` fail.
    pub fn of_status(state: &str) -> Self {
        match state {
            "success" => CheckState::Success,
            "failure" | "error" => CheckState::Failing,
            _ => CheckState::Pending,
        }
    }
}

/// A check that must pass: its name (a check run's `name` or a status's `context`) and,
/// when the protection names one, the GitHub App that must report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredCheck {
    pub context: String,
    pub app_id: Option<i64>,
}

/// What GitHub reports on the commit: check runs and statuses, each as a state and link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub name: String,
    pub app_id: Option<i64>,
    pub state: CheckState,
    pub url: Option<String>,
}

/// One required check's result, shown in the preview and named in a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub name: String,
    pub state: CheckState,
    pub url: Option<String>,
}

/// Each required check against what GitHub reports: the worst report of that name (and
/// app) wins, none is `missing`. Sorted by name.
pub fn evaluate_checks(required: &[RequiredCheck], reported: &[Reported]) -> Vec<CheckResult> {
    let rank = |s: CheckState| match s {
        CheckState::Failing => 3,
        CheckState::Pending => 2,
        CheckState::Success => 1,
        CheckState::Missing => 0,
    };
    let mut out: Vec<CheckResult> = required
        .iter()
        .map(|r| {
            let best = reported
                .iter()
                .filter(|c| c.name == r.context && (r.app_id.is_none() || c.app_id == r.app_id))
                .max_by_key(|c| rank(c.state));
            match best {
                Some(c) => CheckResult {
                    name: r.context.clone(),
                    state: c.state,
                    url: c.url.clone(),
                },
                None => CheckResult {
                    name: r.context.clone(),
                    state: CheckState::Missing,
                    url: None,
                },
            }
        })
        .collect();
    // One result per name, the worst of them (a name required from two apps).
    out.sort_by(|a, b| a.name.cmp(&b.name).then(rank(b.state).cmp(&rank(a.state))));
    out.dedup_by(|later, first| later.name == first.name);
    out
}

/// The required checks GitHub marks plus the configured ones, without repeats (a
/// configured name GitHub also marks keeps GitHub's app).
pub fn required_checks(
    from_github: Vec<RequiredCheck>,
    configured: &[String],
) -> Vec<RequiredCheck> {
    let mut out = from_github;
    for c in configured {
        if !out.iter().any(|r| &r.context == c) {
            out.push(RequiredCheck {
                context: c.clone(),
                app_id: None,
            });
        }
    }
    out.sort_by(|a, b| a.context.cmp(&b.context));
    out.dedup();
    out
}

/// A time a version ran in an environment: from `start_ms` to `end_ms` (`None`: it runs
/// there still).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stint {
    pub start_ms: i64,
    pub end_ms: Option<i64>,
}

/// Where a version stands against a soak time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Soak {
    pub version: String,
    /// The environment it must have run in.
    pub environment: String,
    pub required_minutes: u32,
    /// Its longest stint there, whole minutes.
    pub minutes: i64,
    /// Its stint there now, whole minutes (0 when it does not run there now).
    pub current_minutes: i64,
    /// `None` when it has soaked long enough.
    pub hold: Option<String>,
    /// When the current stint will have lasted long enough (none when it does not run
    /// there now).
    pub retry_after_seconds: Option<i64>,
}

/// Has `version` run in `environment` for `required_minutes`, in one unbroken stint (the
/// longest, like Kargo's `requiredSoakTime`)? An interruption (another version, or not
/// healthy) ended a stint; a new one counts from its own start.
pub fn soak(
    version: &str,
    environment: &str,
    required_minutes: u32,
    stints: &[Stint],
    now_ms: i64,
) -> Soak {
    let need_ms = i64::from(required_minutes) * 60_000;
    let len = |s: &Stint| (s.end_ms.unwrap_or(now_ms) - s.start_ms).max(0);
    let longest = stints.iter().map(len).max().unwrap_or(0);
    let current = stints.iter().find(|s| s.end_ms.is_none());
    let minutes = longest / 60_000;
    let (hold, retry) = if longest >= need_ms {
        (None, None)
    } else if let Some(c) = current {
        let left_s = (need_ms - len(c) + 999) / 1000;
        (
            Some(format!(
                "soaking: {version} has run in {environment} for {} of {required_minutes} minutes",
                len(c) / 60_000
            )),
            Some(left_s.max(1)),
        )
    } else {
        (
            Some(format!(
                "soaking: {version} does not run in {environment} now and never ran there for {required_minutes} minutes"
            )),
            None,
        )
    };
    Soak {
        version: version.to_owned(),
        environment: environment.to_owned(),
        required_minutes,
        minutes,
        current_minutes: current.map_or(0, |c| len(c) / 60_000),
        hold,
        retry_after_seconds: retry,
    }
}

/// A closed gate, as a refusal and the audit names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// Required checks not passing: which, and how.
    Checks(Vec<CheckResult>),
    /// GitHub did not say (unreachable, or refused to show the checks): fail closed.
    ChecksUnknown(String),
    Soak(Soak),
}

impl Hold {
    /// The alert and the deployment's note when this hold is overridden.
    pub fn overridden(&self) -> &'static str {
        match self {
            Hold::Checks(_) | Hold::ChecksUnknown(_) => "checks overridden",
            Hold::Soak(_) => "soak overridden",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Hold::Checks(c) => format!(
                "required checks not passing: {}",
                c.iter()
                    .map(|c| format!("{} {}", c.name, c.state.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Hold::ChecksUnknown(why) => format!("the required checks could not be read: {why}"),
            Hold::Soak(s) => s.hold.clone().unwrap_or_default(),
        }
    }
}

/// What the gates let through: nothing held, or held and overridden with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatePermit {
    Open,
    Overridden { holds: Vec<Hold>, reason: String },
}

impl GatePermit {
    /// "checks overridden", "soak overridden", or both: what the deployment shows.
    pub fn note(&self) -> Option<String> {
        match self {
            GatePermit::Open => None,
            GatePermit::Overridden { holds, .. } => {
                let mut notes: Vec<&str> = holds.iter().map(Hold::overridden).collect();
                notes.dedup();
                Some(notes.join(", "))
            }
        }
    }

    /// The audit's words: every hold and the reason.
    pub fn detail(&self) -> Option<String> {
        match self {
            GatePermit::Open => None,
            GatePermit::Overridden { holds, reason } => Some(format!(
                "{}; overridden: {reason}",
                holds
                    .iter()
                    .map(Hold::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
}

/// The gates' decision for `user` deploying to `environment`: open when nothing holds;
/// with holds, refused (409, naming them) unless the person may override there and wrote
/// a reason (1 to 500 printable characters). The deploy role itself is checked before.
pub fn decide(
    user: &CurrentUser,
    environment: &str,
    override_by: OverrideBy,
    holds: Vec<Hold>,
    override_reason: Option<&str>,
) -> Result<GatePermit, Refusal> {
    if holds.is_empty() {
        return Ok(GatePermit::Open);
    }
    let may_override = match override_by {
        OverrideBy::Deployers => user.can_deploy(environment),
        OverrideBy::Admins => user.roles.admin,
    };
    let what = holds
        .iter()
        .map(Hold::describe)
        .collect::<Vec<_>>()
        .join("; ");
    let given = override_reason.map(str::trim).filter(|r| !r.is_empty());
    match (may_override, given) {
        (true, Some(_)) => {
            let reason = written_reason(override_reason, "deploying through a gate")?;
            Ok(GatePermit::Overridden { holds, reason })
        }
        (true, None) => Err(Refusal::Conflict(format!(
            "{what}. You may deploy anyway with a written reason (it is audited and alerted)."
        ))),
        (false, _) => Err(Refusal::Conflict(format!(
            "{what}. Only {} may deploy through this gate in {environment}.",
            match override_by {
                OverrideBy::Admins => "admins",
                OverrideBy::Deployers => "its deployers",
            }
        ))),
    }
}

/// The retry hint of a soak hold among `holds` (the promotion gate's `retry_after_seconds`).
pub fn retry_after(holds: &[Hold]) -> Option<i64> {
    holds.iter().find_map(|h| match h {
        Hold::Soak(s) => s.retry_after_seconds,
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(admin: bool, envs: &[&str]) -> CurrentUser {
        CurrentUser {
            login: "li".into(),
            ..CurrentUser::for_test(admin, envs)
        }
    }

    #[test]
    fn check_runs_and_statuses_map_as_shipit_reads_them() {
        use CheckState::*;
        for (status, conclusion, want) in [
            ("completed", Some("success"), Success),
            ("completed", Some("neutral"), Success),
            ("completed", Some("skipped"), Success),
            ("completed", Some("failure"), Failing),
            ("completed", Some("cancelled"), Failing),
            ("completed", Some("timed_out"), Failing),
            ("completed", Some("stale"), Failing),
            ("completed", Some("action_required"), Pending),
            ("completed", None, Pending),
            ("in_progress", None, Pending),
            ("queued", None, Pending),
            ("waiting", None, Pending),
        ] {
            assert_eq!(
                CheckState::of_check_run(status, conclusion),
                want,
                "{status} {conclusion:?}"
            );
        }
        assert_eq!(CheckState::of_status("success"), Success);
        assert_eq!(CheckState::of_status("error"), Failing);
        assert_eq!(CheckState::of_status("failure"), Failing);
        assert_eq!(CheckState::of_status("pending"), Pending);
    }

    #[test]
    fn a_required_check_is_its_worst_report_or_missing() {
        let req = |c: &str, app: Option<i64>| RequiredCheck {
            context: c.into(),
            app_id: app,
        };
        let rep = |n: &str, app: Option<i64>, s: CheckState| Reported {
            name: n.into(),
            app_id: app,
            state: s,
            url: None,
        };
        let got = evaluate_checks(
            &[
                req("test", None),
                req("lint", Some(15368)),
                req("build", None),
            ],
            &[
                rep("test", Some(1), CheckState::Success),
                rep("test", None, CheckState::Failing),
                // The right name from the wrong app does not count.
                rep("lint", Some(99), CheckState::Success),
            ],
        );
        let states: Vec<_> = got.iter().map(|c| (c.name.as_str(), c.state)).collect();
        assert_eq!(
            states,
            vec![
                ("build", CheckState::Missing),
                ("lint", CheckState::Missing),
                ("test", CheckState::Failing)
            ]
        );
    }

    fn stint(start_ms: i64, end_ms: Option<i64>) -> Stint {
        Stint { start_ms, end_ms }
    }

    #[test]
    fn soak_counts_the_longest_unbroken_stint() {
        let min = 60_000;
        let soak30 = |stints: &[Stint], now_ms| soak("v5", "staging", 30, stints, now_ms);
        // Ran 12 minutes so far of 30.
        let s = soak30(&[stint(0, None)], 12 * min);
        assert_eq!(
            s.hold.as_deref(),
            Some("soaking: v5 has run in staging for 12 of 30 minutes")
        );
        assert_eq!(s.retry_after_seconds, Some(18 * 60));
        // An earlier stint of 40 minutes counts, whatever runs now.
        let s = soak30(&[stint(0, Some(40 * min)), stint(50 * min, None)], 51 * min);
        assert_eq!(s.hold, None);
        // Interrupted: two stints of 20 minutes are not 30.
        let s = soak30(&[stint(0, Some(20 * min))], 60 * min);
        assert!(s.hold.unwrap().contains("does not run in staging now"));
        assert_eq!(s.retry_after_seconds, None);
        // Never ran there.
        assert!(soak("v5", "staging", 1, &[], 0).hold.is_some());
        // Exactly the time: open.
        assert_eq!(soak30(&[stint(0, None)], 30 * min).hold, None);
    }

    #[test]
    fn configuration_bounds() {
        assert_eq!(parse_soak_minutes(0), Ok(0));
        assert_eq!(parse_soak_minutes(10_080), Ok(10_080));
        assert!(parse_soak_minutes(10_081).is_err());
        assert!(parse_soak_minutes(-1).is_err());
        assert!(parse_check_name("").is_err());
        assert!(parse_check_name("a\nb").is_err());
        assert_eq!(
            parse_check_name("ci/test (3.12)"),
            Ok("ci/test (3.12)".into())
        );
    }

    /// Over every person x environment x hold x reason: open without holds; a hold passes
    /// only for someone allowed to override there, with a reason; the refusal names the
    /// hold; an override's audit detail names the hold and the reason.
    #[test]
    fn the_gate_decision_over_people_environments_and_holds() {
        let soaking = Hold::Soak(soak("v5", "staging", 30, &[stint(0, None)], 60_000));
        let failing = Hold::Checks(vec![CheckResult {
            name: "test".into(),
            state: CheckState::Failing,
            url: None,
        }]);
        let unknown = Hold::ChecksUnknown("GitHub answered 404".into());
        let people = [
            ("viewer", person(false, &[])),
            ("integration deployer", person(false, &["integration"])),
            (
                "deployer",
                person(false, &["integration", "staging", "production"]),
            ),
            ("admin", person(true, &[])),
        ];
        for (who, user) in &people {
            for env in ["integration", "staging", "production"] {
                for by in [OverrideBy::Deployers, OverrideBy::Admins] {
                    assert_eq!(decide(user, env, by, vec![], None), Ok(GatePermit::Open));
                    for hold in [&soaking, &failing, &unknown] {
                        for reason in [None, Some(""), Some("  "), Some("hotfix for the outage")] {
                            let got = decide(user, env, by, vec![hold.clone()], reason);
                            let allowed = match by {
                                OverrideBy::Deployers => user.can_deploy(env),
                                OverrideBy::Admins => user.roles.admin,
                            };
                            let has_reason = reason.is_some_and(|r| !r.trim().is_empty());
                            match got {
                                Ok(p) => {
                                    assert!(allowed && has_reason, "{who} {env} {by:?} {reason:?}");
                                    let d = p.detail().unwrap();
                                    assert!(
                                        d.contains(&hold.describe()) && d.contains("hotfix"),
                                        "{d}"
                                    );
                                    assert_eq!(p.note().as_deref(), Some(hold.overridden()));
                                }
                                Err(r) => {
                                    assert!(
                                        !(allowed && has_reason),
                                        "{who} {env} {by:?} {reason:?}"
                                    );
                                    assert_eq!(r.status(), 409);
                                    assert!(r.message().contains(&hold.describe()), "{r}");
                                }
                            }
                        }
                    }
                }
            }
        }
        // A reason with control characters is no reason.
        let r = decide(
            &people[3].1,
            "production",
            OverrideBy::Admins,
            vec![failing],
            Some("a\u{7}b"),
        );
        assert_eq!(r.unwrap_err().status(), 422);
    }
}
