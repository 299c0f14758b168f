//! What the pages show: plain data that crosses from the server to the browser.
//! Built on the server from the store (see `store`), rendered by `pages`.

use crate::domain::{DeploymentStatus, Flag, Stage};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    pub environment: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub url: Option<String>,
}

/// One environment of one app in the grid: the current deployment there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub deployment_id: i64,
    pub version: String,
    pub sha: Option<String>,
    pub deployed_by: Option<String>,
    pub trigger: String,
    pub status: DeploymentStatus,
    pub failed_stage: Option<Stage>,
    pub created_at_ms: i64,
    /// Requested from the dashboard and nothing heard from the pipeline for the stall time.
    #[serde(default)]
    pub stalled: bool,
    /// Deployed through a closed gate: "checks overridden", "soak overridden".
    pub gate_note: Option<String>,
    /// This version has not run here long enough to go on: "soaking 12/30 min".
    pub soaking: Option<String>,
    /// The run waits for a reviewer: "waiting for approval in production: 12 min".
    pub approval: Option<String>,
}

impl From<&DeploymentView> for Cell {
    /// The cell of an environment whose current deployment is `d`; the soak and the
    /// approval are said later, where they are known.
    fn from(d: &DeploymentView) -> Self {
        Cell {
            deployment_id: d.id,
            version: d.version.clone(),
            sha: d.sha.clone(),
            deployed_by: d.deployed_by.clone(),
            trigger: d.trigger.clone(),
            status: d.status,
            failed_stage: d.failed_stage,
            created_at_ms: d.created_at_ms,
            stalled: d.stalled,
            gate_note: d.gate_note.clone(),
            soaking: None,
            approval: None,
        }
    }
}

impl Cell {
    /// What the flags and the promotion rules read of it.
    pub fn state(&self) -> crate::domain::CellState {
        crate::domain::CellState {
            version: self.version.clone(),
            sha: self.sha.clone(),
            status: self.status,
            failed_stage: self.failed_stage,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSummary {
    pub name: String,
    pub shortname: String,
    pub repo: String,
    pub team: String,
    /// One per environment, in pipeline order.
    pub cells: Vec<Option<Cell>>,
    /// One per environment: whether deployments arrive there by themselves.
    pub continuous: Vec<bool>,
    pub flags: Vec<Flag>,
    /// The Release app's one-line status ("all environments match"...).
    pub release_status: String,
    /// One per environment: what Argo CD says runs there (none without `[argocd]`).
    #[serde(default)]
    pub live: Vec<Option<LiveCell>>,
}

impl AppSummary {
    /// Each environment's cell state (`Cell::state`), in pipeline order.
    pub fn cell_states(&self) -> Vec<Option<crate::domain::CellState>> {
        self.cells
            .iter()
            .map(|c| c.as_ref().map(Cell::state))
            .collect()
    }
}

/// What runs in one cell, as Argo CD last said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveCell {
    pub version: Option<String>,
    pub health: String,
    pub version_since_ms: i64,
    /// Argo CD could not be read since then.
    pub unknown_since_ms: Option<i64>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub application: Option<String>,
    pub environment: Option<String>,
    pub outcome: String,
    pub detail: String,
}

pub use crate::domain::Freeze;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    pub environments: Vec<String>,
    pub apps: Vec<AppSummary>,
    /// Each app's id, in the order of `apps` (the grid's order is by name, then id).
    #[serde(default)]
    pub ids: Vec<i64>,
    /// Server time when the grid was read: "how long ago" is computed against it, so the
    /// server's HTML and the hydrated page agree.
    pub now_ms: i64,
    /// Freezes in force, site-wide and per app.
    pub freezes: Vec<Freeze>,
    /// Deploys go to the demo's simulated pipeline.
    #[serde(default)]
    pub simulated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub stage: Stage,
    pub status: String,
    pub message: Option<String>,
    pub workflow: Option<Workflow>,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentView {
    pub id: i64,
    pub application: String,
    pub shortname: String,
    pub repo: String,
    pub environment: String,
    pub version: String,
    pub sha: Option<String>,
    pub trigger: String,
    pub deployed_by: Option<String>,
    pub status: DeploymentStatus,
    pub failed_stage: Option<Stage>,
    pub workflow: Option<Workflow>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub events: Vec<EventView>,
    /// The GitHub Actions run, for a deploy started from Release.
    pub run_url: Option<String>,
    /// Requested from the dashboard and nothing heard from the pipeline for the stall time.
    #[serde(default)]
    pub stalled: bool,
    /// Deployed through a closed gate: "checks overridden", "soak overridden".
    pub gate_note: Option<String>,
}

pub use crate::domain::is_stalled;

/// What a deploy would ship: GitHub's comparison of what runs now with the chosen ref.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployPreview {
    pub environment: String,
    /// What runs there now (none: nothing deployed yet).
    pub current: Option<String>,
    pub target: String,
    /// `ahead`, `behind`, `identical` or `diverged`, as GitHub says.
    pub status: Option<String>,
    pub total_commits: i64,
    /// The ref is behind what runs there: deploying it rolls back.
    pub rollback: bool,
    pub commits: Vec<PreviewCommit>,
    pub html_url: Option<String>,
    /// Why there is no comparison, when there is none.
    pub note: Option<String>,
    /// The required checks of the commit, when the checks gate is on there.
    #[serde(default)]
    pub checks: Vec<crate::domain::gates::CheckResult>,
    /// Why the checks could not be read (a deploy is then refused unless overridden).
    pub checks_note: Option<String>,
    /// A soak time not yet served ("soaking: v5 has run in staging for 12 of 30 minutes").
    pub soak: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewCommit {
    pub sha: String,
    pub message: String,
    pub author: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentHistory {
    pub environment: String,
    pub continuous: bool,
    pub deployments: Vec<DeploymentView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppDetail {
    /// Deploys go to the demo's simulated pipeline.
    #[serde(default)]
    pub simulated: bool,
    /// The environments the person reading may deploy to (the forms show only these).
    #[serde(default)]
    pub may_deploy: Vec<String>,
    /// Who may deploy where (teams and `@people` per environment, and the admins), for
    /// those who may not.
    #[serde(default)]
    pub who_may_deploy: Vec<(String, Vec<String>)>,
    pub summary: AppSummary,
    pub freezes: Vec<Freeze>,
    pub default_branch: String,
    pub workflow_file: String,
    pub notes: String,
    pub history: Vec<EnvironmentHistory>,
    pub now_ms: i64,
    /// Per environment with a soak time, what runs before it and has not soaked yet:
    /// (environment, "soaking 12/30 min", the whole reason).
    #[serde(default)]
    pub soaking: Vec<(String, String, String)>,
    /// The approvals of this app's runs (waiting ones first to matter).
    #[serde(default)]
    pub approvals: Vec<crate::domain::approval::ApprovalView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub environments: Vec<String>,
    pub filter: Option<String>,
    pub deployments: Vec<DeploymentView>,
    pub now_ms: i64,
}

/// "3 minutes ago", from two times in milliseconds.
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    let (n, unit) = match s {
        0..=59 => return "just now".to_string(),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        86_400..=2_591_999 => (s / 86_400, "day"),
        2_592_000..=31_535_999 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// "now", "5m ago", "3h ago", "2d ago", "4mo ago", "1y ago": short, since a grid has
/// thousands of them. The browser keeps them current with the same words (`pages/grid.rs`).
pub fn ago_short(now_ms: i64, then_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    let (n, unit) = match s {
        0..=59 => return "now".to_string(),
        60..=3599 => (s / 60, "m"),
        3600..=86_399 => (s / 3600, "h"),
        86_400..=2_591_999 => (s / 86_400, "d"),
        2_592_000..=31_535_999 => (s / 2_592_000, "mo"),
        _ => (s / 31_536_000, "y"),
    };
    format!("{n}{unit} ago")
}

/// The exact time, in UTC, for a tooltip.
pub fn exact_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

pub fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn ago_words() {
        assert_eq!(ago(10_000, 5_000), "just now");
        assert_eq!(ago(120_000, 0), "2 minutes ago");
        assert_eq!(ago(3_600_000, 0), "1 hour ago");
        assert_eq!(ago(0, 10), "just now");
    }

    #[test]
    fn short_ages() {
        assert_eq!(ago_short(59_000, 0), "now");
        assert_eq!(ago_short(120_000, 0), "2m ago");
        assert_eq!(ago_short(7_200_000, 0), "2h ago");
        assert_eq!(ago_short(0, 5_000), "now");
    }
}

/// One stage of a deployment's pipeline run: how it went and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRow {
    pub stage: Stage,
    /// `running`, `succeeded` or `failed`.
    pub outcome: &'static str,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The failure's (or the last) message.
    pub message: Option<String>,
    /// The workflow's link, on the first row of each workflow only.
    pub workflow_url: Option<String>,
    /// 1 for the first run of this stage, 2 after a resubmit...
    pub attempt: u32,
}

impl StageRow {
    pub fn duration_ms(&self) -> Option<i64> {
        Some(self.finished_ms? - self.started_ms?).filter(|d| *d >= 0)
    }
}

/// The events of one deployment (oldest first) as one row per stage run: a `started`
/// opens a row, the `succeeded` or `failed` after it closes it. A stage started again
/// after it finished (a resubmit) is a new row, its next attempt.
pub fn stage_rows(events: &[EventView]) -> Vec<StageRow> {
    let mut rows: Vec<StageRow> = Vec::new();
    let mut seen_workflows: Vec<String> = Vec::new();
    for e in events {
        let open = rows
            .iter()
            .rposition(|r| r.stage == e.stage && r.finished_ms.is_none());
        let i = match (e.status.as_str(), open) {
            ("started", Some(i)) => i,
            (_, Some(i)) => i,
            (_, None) => {
                let attempt = rows.iter().filter(|r| r.stage == e.stage).count() as u32 + 1;
                rows.push(StageRow {
                    stage: e.stage,
                    outcome: "running",
                    started_ms: None,
                    finished_ms: None,
                    message: None,
                    workflow_url: None,
                    attempt,
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[i];
        match e.status.as_str() {
            "started" => {
                row.started_ms.get_or_insert(e.at_ms);
            }
            "succeeded" => {
                row.outcome = "succeeded";
                row.finished_ms = Some(e.at_ms);
            }
            "failed" => {
                row.outcome = "failed";
                row.finished_ms = Some(e.at_ms);
            }
            _ => {}
        }
        if e.message.is_some() {
            row.message = e.message.clone();
        }
        if let Some(url) = e.workflow.as_ref().and_then(|w| w.url.clone()) {
            if !seen_workflows.contains(&url) {
                seen_workflows.push(url.clone());
                row.workflow_url = Some(url);
            }
        }
    }
    rows
}

#[cfg(test)]
mod stage_tests {
    use super::*;

    fn ev(stage: Stage, status: &str, at: i64, url: Option<&str>) -> EventView {
        EventView {
            stage,
            status: status.into(),
            message: (status == "failed").then(|| "boom".to_string()),
            workflow: url.map(|u| Workflow {
                environment: None,
                namespace: None,
                name: None,
                url: Some(u.into()),
            }),
            at_ms: at,
        }
    }

    #[test]
    fn one_row_per_stage_run_with_durations() {
        let w = Some("https://argo/wf/1");
        let rows = stage_rows(&[
            ev(Stage::Build, "started", 0, None),
            ev(Stage::Build, "succeeded", 65_000, None),
            ev(Stage::SmokeTests, "started", 70_000, w),
            ev(Stage::SmokeTests, "failed", 100_000, w),
            ev(
                Stage::SmokeTests,
                "started",
                200_000,
                Some("https://argo/wf/2"),
            ),
            ev(
                Stage::SmokeTests,
                "succeeded",
                230_000,
                Some("https://argo/wf/2"),
            ),
            ev(Stage::Rollout, "succeeded", 240_000, w),
        ]);
        assert_eq!(rows.len(), 4);
        assert_eq!(
            (rows[0].outcome, rows[0].duration_ms()),
            ("succeeded", Some(65_000))
        );
        assert_eq!(
            (rows[1].outcome, rows[1].message.as_deref(), rows[1].attempt),
            ("failed", Some("boom"), 1)
        );
        assert_eq!(rows[1].workflow_url.as_deref(), Some("https://argo/wf/1"));
        assert_eq!((rows[2].attempt, rows[2].duration_ms()), (2, Some(30_000)));
        assert_eq!(rows[2].workflow_url.as_deref(), Some("https://argo/wf/2"));
        // Finished without a start: no duration; its workflow was linked already.
        assert_eq!(
            (rows[3].duration_ms(), rows[3].workflow_url.clone()),
            (None, None)
        );
        assert_eq!(crate::domain::stats::human_duration(65), "1 min 5 s");
    }
}
