use serde::{Deserialize, Serialize};

/// How a deployment came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Merged to main, passed CI, deployed to the first environment by the pipeline.
    Continuous,
    /// A person ran the Deploy workflow (here or on GitHub). Never promoted.
    Manual,
    /// The pipeline promoted a successful deployment from the previous environment.
    Promotion,
    /// Release's Argo CD observer saw a version running that nobody reported. Only the
    /// observer records it: the pipeline API does not accept it.
    Observed,
}

impl Trigger {
    pub fn parse(s: &str) -> Result<Self, super::InvalidInput> {
        match s {
            "continuous" => Ok(Self::Continuous),
            "manual" => Ok(Self::Manual),
            "promotion" => Ok(Self::Promotion),
            _ => Err(super::InvalidInput::new(
                "trigger",
                format!("unknown trigger {s:?}; expected continuous, manual or promotion"),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continuous => "continuous",
            Self::Manual => "manual",
            Self::Promotion => "promotion",
            Self::Observed => "observed",
        }
    }
}

/// The steps of the pipeline, in the order they run (see shared/seed/deployments.txt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Build,
    DeployImage,
    ImageTagUpdate,
    Sync,
    Rollout,
    SmokeTests,
    Promotion,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Build,
        Stage::DeployImage,
        Stage::ImageTagUpdate,
        Stage::Sync,
        Stage::Rollout,
        Stage::SmokeTests,
        Stage::Promotion,
    ];

    pub fn parse(s: &str) -> Result<Self, super::InvalidInput> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            super::InvalidInput::new(
                "stage",
                format!("unknown stage {s:?}; expected one of: build, deploy_image, image_tag_update, sync, rollout, smoke_tests, promotion"),
            )
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::DeployImage => "deploy_image",
            Stage::ImageTagUpdate => "image_tag_update",
            Stage::Sync => "sync",
            Stage::Rollout => "rollout",
            Stage::SmokeTests => "smoke_tests",
            Stage::Promotion => "promotion",
        }
    }

    /// Words for people: "smoke tests", "image tag update".
    pub fn label(self) -> &'static str {
        match self {
            Stage::Build => "build",
            Stage::DeployImage => "deploy image",
            Stage::ImageTagUpdate => "image tag update",
            Stage::Sync => "sync",
            Stage::Rollout => "rollout",
            Stage::SmokeTests => "smoke tests",
            Stage::Promotion => "promotion",
        }
    }
}

/// What a pipeline event says about its stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Started,
    Succeeded,
    Failed,
}

impl EventStatus {
    pub fn parse(s: &str) -> Result<Self, super::InvalidInput> {
        match s {
            "started" => Ok(Self::Started),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            _ => Err(super::InvalidInput::new(
                "status",
                format!("unknown status {s:?}; expected started, succeeded or failed"),
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// Where a deployment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    /// Asked for (the Deploy button), nothing heard from the pipeline yet.
    Requested,
    InProgress,
    Succeeded,
    Failed,
}

impl DeploymentStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "requested" => Some(Self::Requested),
            "in_progress" => Some(Self::InProgress),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::InProgress => "in_progress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::InProgress => "in progress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// The state of a GitHub deployment status (`POST .../deployments/{id}/statuses`) that
/// tells GitHub where a Release deployment stands: requested is `queued`, a deploy GitHub
/// refused to dispatch is `error` (nothing ran), a failed one `failure`.
pub fn github_deployment_state(
    status: DeploymentStatus,
    dispatch_state: Option<&str>,
) -> &'static str {
    match status {
        DeploymentStatus::Requested => "queued",
        DeploymentStatus::InProgress => "in_progress",
        DeploymentStatus::Succeeded => "success",
        DeploymentStatus::Failed if dispatch_state == Some("refused") => "error",
        DeploymentStatus::Failed => "failure",
    }
}

#[cfg(test)]
mod github_state_tests {
    use super::*;

    #[test]
    fn each_status_has_its_github_state() {
        use DeploymentStatus::*;
        assert_eq!(github_deployment_state(Requested, None), "queued");
        assert_eq!(
            github_deployment_state(Requested, Some("dispatching")),
            "queued"
        );
        assert_eq!(github_deployment_state(InProgress, None), "in_progress");
        assert_eq!(github_deployment_state(Succeeded, None), "success");
        assert_eq!(github_deployment_state(Failed, None), "failure");
        assert_eq!(github_deployment_state(Failed, Some("refused")), "error");
    }
}

/// The part of an event the status rule needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSummary {
    pub stage: Stage,
    pub status: EventStatus,
    /// Event time in milliseconds since the epoch; ties are broken by arrival order.
    pub at_ms: i64,
}

/// The status rule. A deployment's status follows from its events:
///
/// 1. No events: the status it was recorded with (`requested` for a request made from the
///    dashboard; `succeeded` for a notification on `POST /deployments`, which the pipeline
///    sends once the new image tag is committed, as the Release app always assumed).
/// 2. Otherwise take, for each stage, its latest event (by time, then by arrival).
///    If any stage's latest event failed, the deployment failed (and that stage is named).
/// 3. Else, if smoke tests (or a promotion, which only follows passing smoke tests)
///    succeeded, it succeeded.
/// 4. Else it is in progress.
///
/// Judging by each stage's *latest* event means a resubmitted workflow whose smoke tests
/// pass turns a failed deployment back into a successful one, and events that arrive out of
/// order give the same answer as in order.
pub fn status_from_events(
    base: DeploymentStatus,
    events: &[EventSummary],
) -> (DeploymentStatus, Option<Stage>) {
    if events.is_empty() {
        return (base, None);
    }
    // Latest event per stage, by (time, arrival index).
    let mut latest: [Option<(i64, usize, EventStatus)>; 7] = [None; 7];
    for (i, e) in events.iter().enumerate() {
        let slot = &mut latest[e.stage as usize];
        if slot.is_none_or(|(t, j, _)| (e.at_ms, i) >= (t, j)) {
            *slot = Some((e.at_ms, i, e.status));
        }
    }
    if let Some(stage) = Stage::ALL
        .into_iter()
        .find(|s| matches!(latest[*s as usize], Some((_, _, EventStatus::Failed))))
    {
        return (DeploymentStatus::Failed, Some(stage));
    }
    let done = |s: Stage| {
        matches!(
            latest[s as usize],
            Some((_, _, EventStatus::Succeeded | EventStatus::Started))
        )
    };
    if matches!(
        latest[Stage::SmokeTests as usize],
        Some((_, _, EventStatus::Succeeded))
    ) || done(Stage::Promotion)
    {
        return (DeploymentStatus::Succeeded, None);
    }
    (DeploymentStatus::InProgress, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(stage: Stage, status: EventStatus, at_ms: i64) -> EventSummary {
        EventSummary {
            stage,
            status,
            at_ms,
        }
    }

    #[test]
    fn no_events_keeps_base() {
        assert_eq!(
            status_from_events(DeploymentStatus::Requested, &[]).0,
            DeploymentStatus::Requested
        );
        assert_eq!(
            status_from_events(DeploymentStatus::Succeeded, &[]).0,
            DeploymentStatus::Succeeded
        );
    }

    #[test]
    fn the_rule() {
        use EventStatus::*;
        use Stage::*;
        let base = DeploymentStatus::Requested;
        assert_eq!(
            status_from_events(base, &[ev(Build, Started, 1)]).0,
            DeploymentStatus::InProgress
        );
        assert_eq!(
            status_from_events(base, &[ev(Rollout, Succeeded, 1)]).0,
            DeploymentStatus::InProgress
        );
        assert_eq!(
            status_from_events(
                base,
                &[ev(Rollout, Succeeded, 1), ev(SmokeTests, Failed, 2)]
            ),
            (DeploymentStatus::Failed, Some(SmokeTests))
        );
        // Resubmitted, smoke tests pass the second time.
        assert_eq!(
            status_from_events(
                base,
                &[
                    ev(SmokeTests, Failed, 2),
                    ev(SmokeTests, Started, 3),
                    ev(SmokeTests, Succeeded, 4)
                ]
            )
            .0,
            DeploymentStatus::Succeeded
        );
        // Out of order: the later failure still wins whatever order they arrive in.
        assert_eq!(
            status_from_events(
                base,
                &[ev(SmokeTests, Failed, 5), ev(SmokeTests, Started, 3)]
            )
            .0,
            DeploymentStatus::Failed
        );
        assert_eq!(
            status_from_events(base, &[ev(Promotion, Started, 9)]).0,
            DeploymentStatus::Succeeded
        );
    }

    fn any_stage() -> impl Strategy<Value = Stage> {
        proptest::sample::select(Stage::ALL.to_vec())
    }
    fn any_status() -> impl Strategy<Value = EventStatus> {
        proptest::sample::select(vec![
            EventStatus::Started,
            EventStatus::Succeeded,
            EventStatus::Failed,
        ])
    }

    proptest! {
        /// Events with distinct times give the same status in any arrival order.
        #[test]
        fn order_of_arrival_does_not_matter(
            evs in proptest::collection::vec((any_stage(), any_status()), 0..12),
            seed in any::<u64>(),
        ) {
            let events: Vec<EventSummary> = evs.iter().enumerate().map(|(i, (s, st))| ev(*s, *st, i as i64 * 10)).collect();
            let mut shuffled = events.clone();
            let n = shuffled.len();
            let mut x = seed;
            for i in (1..n).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (x >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(
                status_from_events(DeploymentStatus::Requested, &events),
                status_from_events(DeploymentStatus::Requested, &shuffled)
            );
        }
    }
}
