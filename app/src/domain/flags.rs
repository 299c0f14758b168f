use super::{DeploymentStatus, Stage};
use serde::{Deserialize, Serialize};

/// What the grid knows about one environment of one app: its current deployment.
#[derive(Debug)]
pub struct CellState {
    pub version: String,
    pub sha: Option<String>,
    pub status: DeploymentStatus,
    pub failed_stage: Option<Stage>,
}

impl CellState {
    /// Two environments run the same thing: see [`same_release`].
    pub fn same_release_as(&self, other: &CellState) -> bool {
        same_release(
            (&self.version, self.sha.as_deref()),
            (&other.version, other.sha.as_deref()),
        )
    }
}

/// Whether a deployment requested from the dashboard has heard nothing for too long.
pub fn is_stalled(
    status: DeploymentStatus,
    created_at_ms: i64,
    now_ms: i64,
    stall_ms: i64,
) -> bool {
    status == DeploymentStatus::Requested && now_ms - created_at_ms > stall_ms
}

/// The one definition of "the same release", for the grid's flags and the alerts alike:
/// the SHAs agree when both are known (one may be abbreviated); lacking either, the
/// versions are the same. `(version, sha)` each.
pub fn same_release(a: (&str, Option<&str>), b: (&str, Option<&str>)) -> bool {
    match (a.1, b.1) {
        (Some(x), Some(y)) => x.starts_with(y) || y.starts_with(x),
        _ => a.0 == b.0,
    }
}

/// Whether a new deployment (`new`: version and SHA; `succeeded` as it arrives) makes the
/// next environment, deployed by hand (`next_is_manual`), newly need a manual deployment:
/// it does unless the next one already runs the same release (`there`). The alert's rule,
/// decided here so it cannot disagree with the grid's flag.
pub fn newly_needs_manual(
    succeeded: bool,
    next_is_manual: bool,
    new: (&str, Option<&str>),
    there: Option<(&str, Option<&str>)>,
) -> bool {
    succeeded && next_is_manual && !there.is_some_and(|t| same_release(new, t))
}

/// Why an app needs someone's attention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Flag {
    /// `environment` does not get deployments automatically and runs something other than
    /// `behind` (the environment before it): a person has to deploy it.
    ManualDeployment { environment: String, behind: String },
    /// `environment` is continuously deployed but runs something other than `behind`
    /// (a promotion in flight, or one that never happened).
    NotInSync { environment: String, behind: String },
    /// The current deployment in `environment` failed.
    LastDeploymentFailed {
        environment: String,
        stage: Option<Stage>,
    },
    /// Argo CD says `environment` runs `running`, not `expected` (Release's current
    /// deployment there), and has for longer than the grace period.
    Drift {
        environment: String,
        running: String,
        expected: String,
        since_ms: i64,
    },
}

impl Flag {
    /// The badge's words and its CSS class.
    fn badge(&self) -> (&'static str, &'static str) {
        match self {
            Flag::ManualDeployment { .. } => ("manual deployment", "flag flag-manual"),
            Flag::NotInSync { .. } => ("not in sync", "flag flag-sync"),
            Flag::LastDeploymentFailed { .. } => ("last deployment failed", "flag flag-failed"),
            Flag::Drift { .. } => ("drift", "flag flag-drift"),
        }
    }

    pub fn label(&self) -> &'static str {
        self.badge().0
    }

    pub fn css_class(&self) -> &'static str {
        self.badge().1
    }

    /// One sentence for people: why the app is flagged.
    pub fn explain(&self) -> String {
        match self {
            Flag::ManualDeployment { environment, behind } => format!(
                "{environment} is not continuously deployed and does not run what {behind} runs: someone needs to deploy it"
            ),
            Flag::NotInSync { environment, behind } => {
                format!("{environment} runs something other than {behind}: a promotion is in flight or did not happen")
            }
            Flag::LastDeploymentFailed { environment, stage: Some(s) } => {
                format!("the latest deployment to {environment} failed at {}", s.label())
            }
            Flag::LastDeploymentFailed { environment, stage: None } => {
                format!("the latest deployment to {environment} failed")
            }
            Flag::Drift { environment, running, expected, .. } => format!(
                "Argo CD says {environment} runs {running}, not {expected} as Release recorded: deployed outside the pipeline, rolled back by hand, or a notification lost"
            ),
        }
    }
}

/// The flag rules. `cells` and `continuous` are in pipeline order, one per environment.
///
/// - Each environment is compared with the one just before it, when that one has a
///   deployment that did not fail (a failed deployment is not promoted, and "last
///   deployment failed" already says so). If it runs something else, or nothing, it needs
///   a "manual deployment" when it is not continuously deployed; if it is continuously
///   deployed and runs something else, it is "not in sync". Only the first step of a gap
///   is flagged: staging needs deploying before production can follow.
/// - "last deployment failed" for each environment whose current deployment failed.
pub fn app_flags(names: &[&str], cells: &[Option<CellState>], continuous: &[bool]) -> Vec<Flag> {
    let mut flags = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        if let Some(Some(prev)) = i.checked_sub(1).map(|j| &cells[j]) {
            let differs = cell.as_ref().is_none_or(|c| !c.same_release_as(prev));
            if differs && prev.status != DeploymentStatus::Failed {
                let (environment, behind) = (names[i].to_owned(), names[i - 1].to_owned());
                if !continuous.get(i).copied().unwrap_or(true) {
                    flags.push(Flag::ManualDeployment {
                        environment,
                        behind,
                    });
                } else if cell.is_some() {
                    flags.push(Flag::NotInSync {
                        environment,
                        behind,
                    });
                }
            }
        }
        if let Some(c) = cell
            .as_ref()
            .filter(|c| c.status == DeploymentStatus::Failed)
        {
            flags.push(Flag::LastDeploymentFailed {
                environment: names[i].to_owned(),
                stage: c.failed_stage,
            });
        }
    }
    flags
}

/// How long what runs may differ from what Release recorded before it is drift (a
/// rollout takes minutes).
pub const DRIFT_GRACE_MS: i64 = 10 * 60_000;

/// Drift in one cell: Argo CD's running version (`live_version`, running since
/// `live_since_ms`) is not Release's current deployment (recorded at `current_at_ms`), and
/// has not been for longer than `grace_ms` (counted from the later of the two: a rollout of
/// a new version, or a new version running, is not drift yet). The time it started, if so.
pub fn drift_since(
    current: &CellState,
    current_at_ms: i64,
    live_version: &str,
    live_since_ms: i64,
    now_ms: i64,
    grace_ms: i64,
) -> Option<i64> {
    let same = live_version == current.version
        || current.sha.as_deref().is_some_and(|s| {
            s.len() >= 7
                && live_version.len() >= 7
                && (s.starts_with(live_version) || live_version.starts_with(s))
        });
    let since = live_since_ms.max(current_at_ms);
    (!same && now_ms - since > grace_ms).then_some(since)
}

/// The Release app's own one-line status, kept for compatibility (see the contracts,
/// section 6): production != staging, else any difference, else all match. Environments
/// with no deployment are left out.
pub fn release_app_status(names: &[&str], cells: &[Option<CellState>]) -> &'static str {
    let find = |n: &str| {
        names
            .iter()
            .position(|x| *x == n)
            .and_then(|i| cells.get(i))
            .and_then(|c| c.as_ref())
    };
    if let (Some(p), Some(s)) = (find("production"), find("staging")) {
        if !p.same_release_as(s) {
            return "production and staging not in sync";
        }
    }
    let present: Vec<&CellState> = cells.iter().flatten().collect();
    if present.windows(2).any(|w| !w[0].same_release_as(w[1])) {
        return "undeployed changes in integration";
    }
    "all environments match"
}

#[cfg(test)]
mod tests {

    /// One definition of "the same release" for the flag and the alert: a rebuilt version
    /// (same name, another SHA) is another release; another name on the same SHA is not.
    #[test]
    fn the_flag_and_the_alert_agree_on_the_same_release() {
        let v = |version: &'static str, sha: Option<&'static str>| (version, sha);
        assert!(same_release(
            v("v1", Some("abc1234")),
            v("v2", Some("abc1234def"))
        ));
        assert!(!same_release(
            v("v1", Some("abc1234")),
            v("v1", Some("fff0000"))
        ));
        assert!(same_release(v("v1", None), v("v1", Some("abc"))));
        assert!(!same_release(v("v1", None), v("v2", None)));
        // The alert: only a success, only towards a manual environment, only when the
        // next one runs something else. (succeeded, next manual, this, next, alert?)
        let v1 = Some(v("v1", None));
        let cases = [
            (true, true, v("v2", None), v1, true),
            (true, true, v("v2", None), None, true),
            (true, true, v("v2", None), Some(v("v2", None)), false),
            (false, true, v("v2", None), v1, false),
            (true, false, v("v2", None), v1, false),
            // A rebuild of the same commit under another name: the same release.
            (
                true,
                true,
                v("v1", Some("fff0000")),
                Some(v("v1-rebuilt", Some("fff0000aaa"))),
                false,
            ),
        ];
        for (succeeded, manual, this, next, alert) in cases {
            assert_eq!(
                newly_needs_manual(succeeded, manual, this, next),
                alert,
                "{succeeded} {manual} {this:?} {next:?}"
            );
        }
        // The grid's cells say the same.
        assert!(!state("v1", Some("abc1234")).same_release_as(&state("v1", Some("fff0000"))));
    }

    use super::*;

    const ENVS: [&str; 3] = ["integration", "staging", "production"];

    /// A succeeded deployment of `version` (at `sha`).
    fn state(version: &str, sha: Option<&str>) -> CellState {
        CellState {
            version: version.into(),
            sha: sha.map(str::to_owned),
            status: DeploymentStatus::Succeeded,
            failed_stage: None,
        }
    }

    fn cell(v: &str) -> Option<CellState> {
        Some(state(v, None))
    }

    /// The flags and the Release app's status line of some pipelines.
    #[test]
    fn flags_and_status_of_pipelines() {
        let manual = |environment: &str, behind: &str| Flag::ManualDeployment {
            environment: environment.into(),
            behind: behind.into(),
        };
        let not_in_sync = |environment: &str, behind: &str| Flag::NotInSync {
            environment: environment.into(),
            behind: behind.into(),
        };
        let cases = [
            // All in sync: no flags.
            (
                [cell("v2"), cell("v2"), cell("v2")],
                [true; 3],
                vec![],
                Some("all environments match"),
            ),
            // A manual production behind staging.
            (
                [cell("v3"), cell("v3"), cell("v2")],
                [true, true, false],
                vec![manual("production", "staging")],
                Some("production and staging not in sync"),
            ),
            // A manual environment never deployed.
            (
                [cell("v3"), None, None],
                [true, false, false],
                vec![manual("staging", "integration")],
                None,
            ),
            // Continuously deployed but behind: not in sync.
            (
                [cell("v4"), cell("v3"), cell("v3")],
                [true; 3],
                vec![not_in_sync("staging", "integration")],
                Some("undeployed changes in integration"),
            ),
        ];
        for (cells, continuous, flags, status) in cases {
            assert_eq!(app_flags(&ENVS, &cells, &continuous), flags, "{cells:?}");
            if let Some(status) = status {
                assert_eq!(release_app_status(&ENVS, &cells), status);
            }
        }
    }

    #[test]
    fn failure_is_flagged_and_not_double_counted() {
        let mut failed = cell("v5").unwrap();
        failed.status = DeploymentStatus::Failed;
        failed.failed_stage = Some(Stage::SmokeTests);
        let cells = [Some(failed), cell("v4"), cell("v4")];
        let flags = app_flags(&ENVS, &cells, &[true, true, true]);
        assert_eq!(
            flags,
            vec![Flag::LastDeploymentFailed {
                environment: "integration".into(),
                stage: Some(Stage::SmokeTests)
            }]
        );
        assert!(flags[0].explain().contains("smoke tests"));
    }

    #[test]
    fn shas_compare_by_prefix() {
        assert!(
            state("v1", Some("abcdef123456")).same_release_as(&state("abcdef1", Some("abcdef1")))
        );
    }

    #[test]
    fn drift_only_after_the_grace_period_and_only_when_different() {
        let cell = state;
        let g = 600_000;
        // Same version, or the same commit by SHA prefix: never drift.
        assert_eq!(drift_since(&cell("v9", None), 0, "v9", 0, 10 * g, g), None);
        let sha = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
        assert_eq!(
            drift_since(&cell("v9", Some(sha)), 0, "0a1b2c3", 0, 10 * g, g),
            None
        );
        // Different: not within the grace period from the later of the two times.
        assert_eq!(drift_since(&cell("v9", None), 1_000, "v5", 0, g, g), None);
        assert_eq!(
            drift_since(&cell("v9", None), 1_000, "v5", 0, g + 1_001, g),
            Some(1_000)
        );
        assert_eq!(
            drift_since(&cell("v9", None), 0, "v5", 5_000, g + 5_001, g),
            Some(5_000)
        );
    }
}
