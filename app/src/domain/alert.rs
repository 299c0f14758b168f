//! What a deploy alert says. Written to the outbox as JSON with the change that causes
//! it (`store::alerts`), rendered for Slack or a webhook when it is sent (`src/alerts.rs`).

use serde::{Deserialize, Serialize};

/// The events people are alerted about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A deployment's pipeline failed (the first failed event; not again while it stays
    /// failed).
    DeploymentFailed,
    /// A manual deploy heard nothing from the pipeline for the stall time.
    DeploymentStalled,
    /// A new version reached an environment whose next one is deployed by hand.
    NeedsManualDeployment,
    FreezeSet,
    FreezeLifted,
    DeployRequested,
    ResubmitRequested,
    /// Someone deployed although required checks did not pass (with their reason).
    ChecksOverridden,
    /// Someone deployed a version that had not soaked long enough (with their reason).
    SoakOverridden,
    /// A run Release dispatched waits for a reviewer of a GitHub environment.
    ApprovalRequested,
    Approved,
    Rejected,
    /// An admin's test message for one receiver.
    Test,
    /// The daily digest of one receiver's teams (`[alerts] digest_at`).
    Digest,
}

impl AlertKind {
    pub const ALL: [AlertKind; 14] = [
        AlertKind::DeploymentFailed,
        AlertKind::DeploymentStalled,
        AlertKind::NeedsManualDeployment,
        AlertKind::FreezeSet,
        AlertKind::FreezeLifted,
        AlertKind::DeployRequested,
        AlertKind::ResubmitRequested,
        AlertKind::ChecksOverridden,
        AlertKind::SoakOverridden,
        AlertKind::ApprovalRequested,
        AlertKind::Approved,
        AlertKind::Rejected,
        AlertKind::Test,
        AlertKind::Digest,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::DeploymentFailed => "deployment_failed",
            AlertKind::DeploymentStalled => "deployment_stalled",
            AlertKind::NeedsManualDeployment => "needs_manual_deployment",
            AlertKind::FreezeSet => "freeze_set",
            AlertKind::FreezeLifted => "freeze_lifted",
            AlertKind::DeployRequested => "deploy_requested",
            AlertKind::ResubmitRequested => "resubmit_requested",
            AlertKind::ChecksOverridden => "checks_overridden",
            AlertKind::SoakOverridden => "soak_overridden",
            AlertKind::ApprovalRequested => "approval_requested",
            AlertKind::Approved => "approved",
            AlertKind::Rejected => "rejected",
            AlertKind::Test => "test",
            AlertKind::Digest => "digest",
        }
    }

    pub fn parse(s: &str) -> Result<Self, super::InvalidInput> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                super::InvalidInput::new(
                    "events",
                    format!(
                        "{s:?} is not an alert event ({})",
                        Self::ALL.map(|k| k.as_str()).join(", ")
                    ),
                )
            })
    }
}

/// One alert's facts. Every field but `kind` and `at_ms` is optional: each kind fills
/// what it knows (stored in the outbox as JSON, the missing ones as `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub kind: Option<AlertKind>,
    /// The application's shortname (none for a site-wide freeze or a test).
    pub application: Option<String>,
    pub environment: Option<String>,
    pub version: Option<String>,
    pub deployment_id: Option<i64>,
    /// The failed stage (`deployment_failed`).
    pub stage: Option<String>,
    /// The pipeline's message, a freeze's reason, a request's detail.
    pub message: Option<String>,
    /// The Argo workflow or GitHub run.
    pub workflow_url: Option<String>,
    /// Who acted (requests, freezes).
    pub actor: Option<String>,
    /// `needs_manual_deployment`: the environment whose version waits.
    pub behind: Option<String>,
    pub at_ms: i64,
}

impl AlertEvent {
    pub fn new(kind: AlertKind, at_ms: i64) -> Self {
        Self {
            kind: Some(kind),
            at_ms,
            ..Self::default()
        }
    }

    /// One line for people (Slack's fallback text, the webhook's `text`).
    pub fn summary(&self) -> String {
        let app = self.application.as_deref().unwrap_or("every application");
        let env = self.environment.as_deref().unwrap_or("?");
        let version = self.version.as_deref().unwrap_or("?");
        let by = self.actor.as_deref().unwrap_or("someone");
        match self.kind {
            Some(AlertKind::DeploymentFailed) => match &self.stage {
                Some(stage) => format!("{app} {version} failed in {env} at {stage}"),
                None => format!("{app} {version} failed in {env}"),
            },
            Some(AlertKind::DeploymentStalled) => {
                format!("{app} {version} to {env} has heard nothing from the pipeline: stalled")
            }
            Some(AlertKind::NeedsManualDeployment) => format!(
                "{app} {version} runs in {} and needs a manual deployment to {env}",
                self.behind.as_deref().unwrap_or("the environment before")
            ),
            Some(AlertKind::FreezeSet) => match &self.application {
                Some(a) => format!("{by} froze deploys to {a}"),
                None => format!("{by} froze deploys site-wide"),
            },
            Some(AlertKind::FreezeLifted) => match &self.application {
                Some(a) => format!("{by} lifted the freeze on {a}"),
                None => format!("{by} lifted the site-wide freeze"),
            },
            Some(AlertKind::DeployRequested) => {
                format!("{by} requested a deploy of {app} {version} to {env}")
            }
            Some(AlertKind::ResubmitRequested) => {
                format!("{by} resubmitted the failed workflow of {app} {version} in {env}")
            }
            Some(AlertKind::ChecksOverridden) => format!(
                "{by} deployed {app} {version} to {env} through failing or missing required checks: {}",
                self.message.as_deref().unwrap_or("no reason given")
            ),
            Some(AlertKind::SoakOverridden) => format!(
                "{by} deployed {app} {version} to {env} before its soak time: {}",
                self.message.as_deref().unwrap_or("no reason given")
            ),
            Some(AlertKind::ApprovalRequested) => format!(
                "{app} {version} to {env} waits for approval{}",
                self.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            ),
            Some(AlertKind::Approved) => {
                format!("{by} approved {app} {version} to {env}")
            }
            Some(AlertKind::Rejected) => {
                format!("{by} rejected {app} {version} to {env}")
            }
            Some(AlertKind::Test) => format!("Test message from Release, sent by {by}"),
            // The digest's first line ("Release digest for #team, Monday 7 December").
            Some(AlertKind::Digest) => self
                .message
                .as_deref()
                .and_then(|m| m.lines().next())
                .unwrap_or("Release digest")
                .to_string(),
            None => "Release alert".to_string(),
        }
    }
}

/// A configured receiver, as admins see it (never its URL or secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertReceiverInfo {
    pub name: String,
    /// `slack` or `webhook`.
    pub kind: String,
    /// Empty: every application.
    pub teams: Vec<String>,
    /// Empty: every event.
    pub events: Vec<String>,
}

/// A delivery as admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct DeliveryRow {
    pub id: i64,
    pub receiver: String,
    pub kind: String,
    pub summary: String,
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub next_attempt_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}
