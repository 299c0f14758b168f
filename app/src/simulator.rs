//! The demo pipeline: in `--demo` mode without GitHub, Deploy and Resubmit drive this
//! instead of GitHub Actions and Argo. It sends the real sequence of events (build,
//! deploy_image, image_tag_update, sync, rollout, smoke_tests, then promotion to the next
//! environment when the app is continuously deployed there) through the same code that
//! takes the pipeline's events, a stage every `stage_ms`. Every third smoke-test run fails
//! (the first one included) so Resubmit can be tried; a resubmitted run passes.

use crate::domain::{DeploymentStatus, Environment, EventStatus, GitRef, RepoName, Stage, Trigger};
use crate::model::Workflow;
use crate::store::{NewDeployment, NewEvent, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One simulated run of the pipeline: which version of which repository, where it is
/// now, and whether it came through the pipeline (then it is promoted onwards where the
/// app takes deployments by itself; a person's deploy never is).
#[derive(Debug, Clone)]
pub struct SimulatedRun {
    pub repo: RepoName,
    pub env: Environment,
    pub version: GitRef,
    pub promote: bool,
}

impl SimulatedRun {
    /// Its event: `stage` reached `status` in `workflow`.
    fn event(
        &self,
        stage: Stage,
        status: EventStatus,
        message: Option<String>,
        workflow: Workflow,
    ) -> NewEvent {
        NewEvent {
            repo: self.repo.clone(),
            environment: self.env.clone(),
            version: self.version.clone(),
            stage,
            status,
            message,
            workflow: Some(workflow),
            delivery_id: None,
            at_ms: None,
        }
    }

    /// The deployment the pipeline records when it takes this version to `environment`.
    fn deployment_to(&self, environment: Environment, trigger: Trigger) -> NewDeployment {
        NewDeployment {
            repo: self.repo.clone(),
            environment,
            version: self.version.clone(),
            sha: None,
            deployed_by: Some("pipeline".into()),
            trigger,
            created_at_ms: None,
            base_status: DeploymentStatus::InProgress,
        }
    }
}

#[derive(Debug)]
pub struct Simulator {
    pub stage_ms: u64,
    smoke_runs: AtomicU64,
    workflows: AtomicU64,
}

impl Simulator {
    pub fn new(stage_ms: u64) -> Self {
        Self {
            stage_ms,
            smoke_runs: AtomicU64::new(0),
            workflows: AtomicU64::new(1),
        }
    }

    fn workflow(&self, kind: &str, app: &str, env: &Environment) -> Workflow {
        let n = self.workflows.fetch_add(1, Ordering::SeqCst);
        Workflow {
            environment: Some(env.to_string()),
            namespace: Some("apps".into()),
            name: Some(format!("{kind}-{app}-{n}")),
            url: None,
        }
    }

    /// A new name for a resubmitted workflow.
    pub fn resubmitted_name(&self, name: &str) -> String {
        format!("{name}-r{}", self.workflows.fetch_add(1, Ordering::SeqCst))
    }

    /// Runs a whole deployment in the background.
    /// A person's deploy: as the pipeline our users run says, a manual deployment is never
    /// promoted to other environments.
    pub fn start(
        self: &Arc<Self>,
        store: Store,
        repo: RepoName,
        env: Environment,
        version: GitRef,
    ) {
        let run = SimulatedRun {
            repo,
            env,
            version,
            promote: false,
        };
        self.spawn_run(store, run, Stage::Build);
    }

    /// Runs the pipeline from `from` in a task of its own (`run`); a stop is logged.
    fn spawn_run(self: &Arc<Self>, store: Store, run: SimulatedRun, from: Stage) {
        let sim = self.clone();
        tokio::spawn(async move {
            if let Err(e) = sim.run(&store, run, from).await {
                tracing::warn!(error = %e, "the simulated pipeline stopped");
            }
        });
    }

    /// "A merge to main": the continuous pipeline from the first environment onwards, as
    /// for a commit merged to the default branch. It is promoted to each next environment
    /// where the app's continuous deployment is on, and stops before one where it is off.
    /// Returns the version it made (the first environment's newest, plus one).
    pub async fn merge(
        self: &Arc<Self>,
        store: Store,
        repo: RepoName,
    ) -> Result<GitRef, crate::store::StoreError> {
        let Some(first) = store.environments().as_slice().first().cloned() else {
            return Err(crate::store::StoreError::Conflict(
                "there are no environments".into(),
            ));
        };
        let current = store
            .grid()
            .await?
            .apps
            .into_iter()
            .find(|a| a.repo == repo.as_str())
            .and_then(|a| a.cells.first().cloned().flatten())
            .map(|c| c.version);
        let version = GitRef::parse(&next_version(current.as_deref())).map_err(|e| {
            crate::store::StoreError::Conflict(format!("no next version: {}", e.message))
        })?;
        let run = SimulatedRun {
            repo,
            env: first.clone(),
            version: version.clone(),
            promote: true,
        };
        store
            .record_deployment(&run.deployment_to(first, Trigger::Continuous))
            .await?;
        self.spawn_run(store, run, Stage::Build);
        Ok(version)
    }

    /// Finishes a resubmitted stage of `run` (it passes) and carries on from there.
    pub fn resume(
        self: &Arc<Self>,
        store: Store,
        run: SimulatedRun,
        stage: Stage,
        workflow: Workflow,
    ) {
        let sim = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(sim.stage_ms)).await;
            let passed = Some("passed on resubmit".into());
            let ev = run.event(stage, EventStatus::Succeeded, passed, workflow);
            match store.record_event(&ev).await {
                Ok(_) => {
                    if let Some(next) = Stage::ALL.iter().copied().find(|s| *s > stage) {
                        sim.spawn_run(store, run, next);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the simulated pipeline stopped"),
            }
        });
    }

    async fn run(
        &self,
        store: &Store,
        mut run: SimulatedRun,
        mut from: Stage,
    ) -> Result<(), crate::store::StoreError> {
        loop {
            let app = run.repo.name().to_owned();
            let deploy_wf = self.workflow("deploy-image", &app, &run.env);
            let post_sync_wf = self.workflow("post-sync", &app, &run.env);
            for stage in Stage::ALL
                .into_iter()
                .filter(|s| *s >= from && *s != Stage::Promotion)
            {
                let wf = if stage == Stage::SmokeTests {
                    post_sync_wf.clone()
                } else {
                    deploy_wf.clone()
                };
                store
                    .record_event(&run.event(stage, EventStatus::Started, None, wf.clone()))
                    .await?;
                tokio::time::sleep(Duration::from_millis(self.stage_ms)).await;
                let fail = stage == Stage::SmokeTests
                    && self.smoke_runs.fetch_add(1, Ordering::SeqCst) % 3 == 0;
                if fail {
                    let msg =
                        "2 of 48 smoke tests failed (simulated flake): try Resubmit".to_string();
                    store
                        .record_event(&run.event(stage, EventStatus::Failed, Some(msg), wf))
                        .await?;
                    return Ok(());
                }
                store
                    .record_event(&run.event(stage, EventStatus::Succeeded, None, wf))
                    .await?;
                // The rollout done, the (simulated) Argo CD runs the new version.
                if stage == Stage::Rollout {
                    observe(store, &run.repo, &run.env, run.version.as_str(), None).await?;
                }
            }
            // Promote when the deployment came through the pipeline and the next
            // environment takes deployments by itself.
            let Some(next) = store.environments().next(&run.env).cloned() else {
                return Ok(());
            };
            if !run.promote {
                return Ok(());
            }
            let manual = store
                .applications()
                .await?
                .into_iter()
                .find(|a| a.repo == run.repo.as_str())
                .is_some_and(|a| a.manual_environments.iter().any(|m| m == next.as_str()));
            if manual {
                return Ok(());
            }
            let promoting = Some(format!("promoting to {next}"));
            store
                .record_event(&run.event(
                    Stage::Promotion,
                    EventStatus::Started,
                    promoting,
                    post_sync_wf,
                ))
                .await?;
            store
                .record_deployment(&run.deployment_to(next.clone(), Trigger::Promotion))
                .await?;
            tokio::time::sleep(Duration::from_millis(self.stage_ms)).await;
            run.env = next;
            from = Stage::Build;
        }
    }
}

/// The version after `current`: its last number plus one, its prefix kept ("v210" ->
/// "v211", "release-45" -> "release-46"); "v1" when there is none.
pub fn next_version(current: Option<&str>) -> String {
    let Some(c) = current else {
        return "v1".into();
    };
    let digits = c.chars().rev().take_while(char::is_ascii_digit).count();
    let (prefix, number) = c.split_at(c.len() - digits);
    match number.parse::<u64>() {
        Ok(n) => format!("{prefix}{}", n + 1),
        Err(_) => format!("{c}.1"),
    }
}

/// What the demo's simulated Argo CD says runs: `version` in `env`, healthy.
pub async fn observe(
    store: &Store,
    repo: &RepoName,
    env: &Environment,
    version: &str,
    since_ms: Option<i64>,
) -> Result<(), crate::store::StoreError> {
    let Some(app) = store
        .applications()
        .await?
        .into_iter()
        .find(|a| a.repo == repo.as_str())
    else {
        return Ok(());
    };
    store
        .record_observation(
            &app.shortname,
            env.as_str(),
            &crate::store::Observation {
                argocd_app: app.shortname.clone(),
                version: Some(version.to_owned()),
                health: "Healthy".into(),
                sync_status: "Synced".into(),
                operation_phase: Some("Succeeded".into()),
                note: None,
            },
            since_ms,
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_next_version_keeps_the_prefix() {
        assert_eq!(super::next_version(Some("v210")), "v211");
        assert_eq!(super::next_version(Some("release-45")), "release-46");
        assert_eq!(super::next_version(Some("main")), "main.1");
        assert_eq!(super::next_version(None), "v1");
    }
}
