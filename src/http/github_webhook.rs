//! `POST /api/v1/github/webhook`: GitHub's webhooks (a repository's or an organisation's).
//! Verified with `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with
//! `RELEASE_GITHUB_WEBHOOK_SECRET`, compared in constant time) before anything is read,
//! replay-safe by `X-GitHub-Delivery`. `workflow_job` with action `waiting` (repository
//! and organisation hooks), or a GitHub App's `deployment_review` `requested`, tells
//! Release that a run it dispatched waits for a reviewer of a GitHub environment;
//! `deployment_review` `approved` or `rejected` that someone decided on GitHub.

use super::error::ApiError;
use super::state::ServerState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};

/// The route, and the largest body it takes (GitHub's payloads go up to 25 MB; the events
/// Release reads are a few KB).
pub const PATH: &str = "/api/v1/github/webhook";
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Deserialize)]
struct WorkflowJobEvent {
    action: String,
    workflow_job: WorkflowJob,
    repository: Repository,
    deployment: Option<Deployment>,
}

#[derive(Deserialize)]
struct WorkflowJob {
    run_id: i64,
}

/// A GitHub App's `deployment_review` event (`requested`, `approved`, `rejected`).
#[derive(Deserialize)]
struct DeploymentReviewEvent {
    action: String,
    environment: Option<String>,
    workflow_run: Option<RunRef>,
    repository: Repository,
    approver: Option<Login>,
    comment: Option<String>,
}

#[derive(Deserialize)]
struct RunRef {
    id: i64,
}

#[derive(Deserialize)]
struct Login {
    login: String,
}

/// What an event asks Release to do.
enum Act {
    Waiting {
        run_id: i64,
        environment: Option<String>,
    },
    Decided {
        run_id: i64,
        environment: String,
        approved: bool,
        approver: String,
        comment: String,
    },
}

impl Act {
    async fn apply(
        self,
        state: &app::state::AppState,
        repo: &app::domain::RepoName,
    ) -> app::store::Result<app::actions::approvals::Learned> {
        match self {
            Act::Waiting {
                run_id,
                environment,
            } => {
                app::actions::approvals::on_waiting(state, repo, run_id, environment.as_deref())
                    .await
            }
            Act::Decided {
                run_id,
                environment,
                approved,
                approver,
                comment,
            } => {
                app::actions::approvals::on_decided(
                    state,
                    repo,
                    run_id,
                    &environment,
                    approved,
                    &approver,
                    &comment,
                )
                .await
            }
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::Invalid(app::domain::InvalidInput::new(
            "body",
            format!("not a {what} event: {e}"),
        ))
    })
}

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct Deployment {
    environment: Option<String>,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `signature` (`sha256=<64 hex>`) is the HMAC-SHA256 of `body` with `secret`,
/// compared in constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
    let Some(given) = signature
        .and_then(|s| s.strip_prefix("sha256="))
        .filter(|s| s.len() == 64)
        .and_then(|s| hex::decode(s).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Answers 200 when the event was taken, 202 when it was ignored (another event, another
/// action, a repository or run Release does not know), 401 for a missing or wrong
/// signature (nothing is read or changed), 404 when no secret is configured, 413 over
/// 1 MiB, 422 for a signed payload that does not parse.
pub async fn receive(
    State(state): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(secret) = state.github_webhook_secret.as_deref() else {
        return Err(ApiError::NotFound(
            "GitHub webhooks are not configured here (RELEASE_GITHUB_WEBHOOK_SECRET)".into(),
        ));
    };
    if !signature_ok(
        secret.as_bytes(),
        &body,
        header(&headers, "x-hub-signature-256"),
    ) {
        tracing::warn!("a GitHub webhook with a missing or wrong signature was refused");
        return Err(ApiError::Unauthorized(
            "missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the body with the webhook's secret)",
        ));
    }
    let delivery = header(&headers, "x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 100 && d.chars().all(|c| c.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::Invalid(app::domain::InvalidInput::new(
                "X-GitHub-Delivery",
                "missing or not a delivery id",
            ))
        })?;
    let ignored = |why: &str| {
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"status": "ignored", "reason": why})),
        ))
    };
    let (repository, act) = match header(&headers, "x-github-event") {
        Some("ping") => return Ok((StatusCode::OK, Json(json!({"status": "pong"})))),
        Some("workflow_job") => {
            let event: WorkflowJobEvent = parse(&body, "workflow_job")?;
            if event.action != "waiting" {
                return ignored("only a job waiting for a review matters to Release");
            }
            (
                event.repository,
                Act::Waiting {
                    run_id: event.workflow_job.run_id,
                    environment: event.deployment.and_then(|d| d.environment),
                },
            )
        }
        // A GitHub App's webhook (repository and organisation hooks do not get it).
        Some("deployment_review") => {
            let event: DeploymentReviewEvent = parse(&body, "deployment_review")?;
            let (Some(run), Some(environment)) = (event.workflow_run, event.environment) else {
                return ignored("a review with no run or environment");
            };
            let act = match event.action.as_str() {
                "requested" => Act::Waiting {
                    run_id: run.id,
                    environment: Some(environment),
                },
                "approved" | "rejected" => Act::Decided {
                    run_id: run.id,
                    environment,
                    approved: event.action == "approved",
                    approver: event.approver.map_or_else(|| "someone".into(), |a| a.login),
                    comment: event.comment.unwrap_or_default(),
                },
                _ => return ignored("an action of deployment_review Release does not read"),
            };
            (event.repository, act)
        }
        _ => return ignored("Release reads workflow_job and deployment_review events only"),
    };
    let Ok(repo) = app::domain::RepoName::parse(&repository.full_name) else {
        return ignored("not a repository name");
    };
    if state
        .app
        .store
        .applications()
        .await?
        .iter()
        .all(|a| a.repo != repo.as_str())
    {
        return ignored("no application of this repository");
    }
    // Claimed only for an event Release acts on, after every check: a replay of it is
    // answered without acting again.
    if !state.app.store.claim_github_delivery(delivery).await? {
        return Ok((StatusCode::OK, Json(json!({"status": "already processed"}))));
    }
    // Claimed: the work (a read from GitHub, then the record) runs in a task the request
    // does not own, so GitHub giving up on its 10 s or a dropped connection cannot leave
    // a claimed delivery half done. If it fails, the claim is released: GitHub's
    // redelivery is then acted on, not answered "already processed".
    let app_state = state.app.clone();
    let delivery = delivery.to_owned();
    let task = tokio::spawn(async move {
        let done = act.apply(&app_state, &repo).await;
        if done.is_err() {
            if let Err(e) = app_state.store.release_github_delivery(&delivery).await {
                tracing::warn!(error = %e, %delivery, "a failed GitHub delivery's claim could not be released");
            }
        }
        done
    });
    let learned = task.await.map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("the webhook's task ended abnormally: {e}"))
    })??;
    match learned {
        app::actions::approvals::Learned::Recorded => {
            Ok((StatusCode::OK, Json(json!({"status": "recorded"}))))
        }
        app::actions::approvals::Learned::NotOurs => ignored("not a run Release dispatched"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signatures() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(super::signature_ok(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            Some(sig)
        ));
        assert!(!super::signature_ok(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            Some(sig)
        ));
        assert!(!super::signature_ok(
            b"another secret",
            b"Hello, World!",
            Some(sig)
        ));
        assert!(!super::signature_ok(b"x", b"y", None));
        assert!(!super::signature_ok(b"x", b"y", Some("sha1=00")));
        assert!(!super::signature_ok(b"x", b"y", Some("sha256=zz")));
    }
}
