//! Deploys told back to GitHub: every deployment Release knows (the pipeline's
//! notifications, deploys from the dashboard, what Argo CD was seen running) becomes a
//! GitHub deployment (`POST /repos/{owner}/{repo}/deployments`, `ref` the commit) with a
//! status each time it moves (`queued`, `in_progress`, `success`, `failure`, `error`), so
//! pull requests and commits show "deployed to production".
//!
//! The token needs no person: a GitHub App's installation token (a JWT signed with the
//! App's private key buys it, `POST /app/installations/{id}/access_tokens`; refreshed five
//! minutes before it expires) or a configured token. The work comes from the outbox
//! (`store::github_reports`), written with each change: a slow or absent GitHub never
//! slows the pipeline's request, and a restart loses nothing. GitHub's 202 (it merged the
//! default branch instead of deploying), 409 and 422 are recorded for admins and not
//! retried; its trouble and rate limits are retried with backoff.

use crate::configuration::ReportSettings;
use app::domain::{github_deployment_state, DeploymentStatus, RepoName};
use app::pipeline::endpoint;
use app::store::{ReportJob, ReportResult, Store};
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How the reporter signs its calls.
pub enum Credentials {
    App(AppCredentials),
    /// A configured token (`RELEASE_GITHUB_REPORT_TOKEN`), e.g. a fine-grained one with
    /// Deployments: write.
    Token(String),
}

/// A GitHub App: its id, its private key, and the installation tokens it bought.
pub struct AppCredentials {
    pub id: i64,
    /// The configured installation; otherwise each repository's is looked up.
    pub installation_id: Option<i64>,
    key: rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>,
    /// Installation id -> (token, when to buy a new one, in ms).
    tokens: Mutex<HashMap<i64, (String, i64)>>,
    /// `owner/repo` -> installation id.
    installations: Mutex<HashMap<String, i64>>,
}

impl AppCredentials {
    /// The App's private key as GitHub gives it (PKCS#1 PEM), or PKCS#8 PEM.
    pub fn parse(id: i64, installation_id: Option<i64>, pem: &str) -> anyhow::Result<Self> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let pem = pem.trim();
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|_| {
                anyhow::anyhow!(
                    "RELEASE_GITHUB_APP_KEY is not an RSA private key in PEM (the .pem file GitHub gives for the App)"
                )
            })?;
        Ok(Self {
            id,
            installation_id,
            key: rsa::pkcs1v15::SigningKey::new(key),
            tokens: Mutex::default(),
            installations: Mutex::default(),
        })
    }

    /// The App's JWT (RS256): issued a minute ago (clocks drift), valid nine minutes
    /// (GitHub takes at most ten), issued by the App's id.
    pub fn jwt(&self, now_s: i64) -> String {
        use rsa::signature::{SignatureEncoding, Signer};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64.encode(
            json!({"iat": now_s - 60, "exp": now_s + 540, "iss": self.id.to_string()}).to_string(),
        );
        let input = format!("{header}.{claims}");
        let signature = self.key.sign(input.as_bytes()).to_bytes();
        format!("{input}.{}", b64.encode(signature))
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::App(a) => write!(f, "GitHub App {}", a.id),
            Self::Token(_) => f.write_str("a configured token"),
        }
    }
}

/// The reporter's settings.
pub struct Reporter {
    pub store: Store,
    /// GitHub's client (its API URL, timeout and headers), as deploys use it.
    pub pipeline: std::sync::Arc<app::pipeline::Pipeline>,
    /// Where Release is, for each deployment's `log_url`.
    pub public_url: String,
    pub credentials: Credentials,
    /// Per environment as configured; an environment not named here is reported.
    pub environments: HashMap<String, ReportSettings>,
    /// The last environment of the pipeline: GitHub's `production_environment`.
    pub production: String,
    /// The first retry's wait (doubling, at most an hour).
    pub retry_first: Duration,
    /// How often the outbox is looked at.
    pub every: Duration,
}

/// A failed attempt: tried again later, or never.
enum Failure {
    Retry(String, Option<Duration>),
    Final(String),
    /// The claim's lease ran out: the report is another server's now.
    LeaseLost,
}

/// After this many failed attempts (about a day with the default backoff) a report is
/// given up and shown to admins.
const MAX_ATTEMPTS: i64 = 30;
/// A claimed report is someone else's after this (twice the calls' timeouts).
const LEASE: Duration = Duration::from_secs(60);

impl Reporter {
    /// The environments Release reports: all but those with `report_to_github = false`.
    pub fn reported(&self, all: &[&str]) -> Vec<String> {
        all.iter()
            .filter(|e| {
                self.environments
                    .get(**e)
                    .is_none_or(|s| s.report_to_github)
            })
            .map(|e| (*e).to_owned())
            .collect()
    }

    /// Starts the worker.
    pub fn spawn(self) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // One claim per report, just before it is sent: a lease never runs out
                // while the report waits behind others (GitHub's create is not idempotent).
                for _ in 0..20 {
                    let job = match self
                        .store
                        .claim_due_reports(1, LEASE.as_millis() as i64)
                        .await
                    {
                        Ok(j) => j.into_iter().next(),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not read the GitHub deployments outbox");
                            None
                        }
                    };
                    let Some(job) = job else { break };
                    self.report(&job).await;
                }
            }
        });
    }

    /// One claimed report: the GitHub deployment created if it is not yet, then its status
    /// told if it moved. Each step's result is recorded at once.
    async fn report(&self, job: &ReportJob) {
        let result = match self.attempt(job).await {
            Ok(r) => r,
            Err(Failure::LeaseLost) => {
                tracing::warn!(
                    deployment = job.deployment_id,
                    "a GitHub report's lease ran out: left to the server that holds it"
                );
                return;
            }
            Err(Failure::Final(why)) => ReportResult::Final(why),
            Err(Failure::Retry(error, _)) if job.attempts + 1 >= MAX_ATTEMPTS => {
                ReportResult::Final(format!("gave up after {MAX_ATTEMPTS} attempts: {error}"))
            }
            Err(Failure::Retry(error, after)) => ReportResult::Retry {
                retry_at: app::store::now_ms()
                    + after
                        .unwrap_or_else(|| {
                            crate::alerts::backoff(self.retry_first, job.attempts + 1)
                        })
                        .as_millis() as i64,
                error,
            },
        };
        if let (ReportResult::Retry { error, .. }, Credentials::App(app)) =
            (&result, &self.credentials)
        {
            // A token GitHub no longer takes is bought again on the next attempt.
            if error.contains("answered 401") {
                lock(&app.tokens).clear();
            }
        }
        if let ReportResult::Final(why) = &result {
            tracing::warn!(deployment = job.deployment_id, why = %why, "a deployment was not told to GitHub");
        }
        if let Err(e) = self.store.record_report(job, &result).await {
            tracing::warn!(deployment = job.deployment_id, error = %e, "could not record a GitHub report");
        }
    }

    async fn attempt(&self, job: &ReportJob) -> Result<ReportResult, Failure> {
        let repo = RepoName::parse(&job.repo)
            .map_err(|e| Failure::Final(format!("the repository {:?}: {e}", job.repo)))?;
        let token = self.token(&repo).await?;
        let github_id = match job.github_id {
            Some(id) => id,
            None => {
                let id = self.create(&repo, &token, job).await?;
                let recorded = self
                    .store
                    .record_report(job, &ReportResult::Created(id))
                    .await
                    .map_err(|e| {
                        Failure::Retry(format!("recording GitHub's deployment {id}: {e}"), None)
                    })?;
                if !recorded {
                    return Err(Failure::LeaseLost);
                }
                id
            }
        };
        let status = DeploymentStatus::parse(&job.status).unwrap_or(DeploymentStatus::Requested);
        let state = github_deployment_state(status, job.dispatch_state.as_deref());
        if job.reported_state.as_deref() != Some(state) {
            self.post_status(&repo, &token, github_id, state, job)
                .await?;
        }
        Ok(ReportResult::Reported(state.to_owned()))
    }

    fn log_url(&self, job: &ReportJob) -> String {
        format!(
            "{}/applications/{}#deployment-{}",
            self.public_url.trim_end_matches('/'),
            job.application,
            job.deployment_id
        )
    }

    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, Failure> {
        let api = self
            .pipeline
            .github_api
            .as_deref()
            .ok_or_else(|| Failure::Final("GitHub is not configured on this Release".into()))?;
        endpoint(api, segments).map_err(|e| Failure::Final(e.to_string()))
    }

    /// Sends through GitHub's client as `token`: the status and the JSON answer, or a
    /// failure (a rate limit, a 401 or GitHub's trouble: tried again; the network: tried
    /// again).
    async fn send(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        token: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), Failure> {
        let resp = self
            .pipeline
            .github_send(method, url, token, body)
            .await
            .map_err(|e| Failure::Retry(e.to_string(), None))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let answer = read_json(resp).await;
        match status {
            401 | 403 | 429 | 500..=599 => {
                Err(refusal_with(status, &answer, &headers, "calling GitHub"))
            }
            _ => Ok((status, answer)),
        }
    }

    /// `POST /repos/{owner}/{repo}/deployments`: GitHub's id of the new deployment.
    async fn create(&self, repo: &RepoName, token: &str, job: &ReportJob) -> Result<i64, Failure> {
        let url = self.url(&["repos", repo.owner(), repo.name(), "deployments"])?;
        let body = json!({
            // The commit that was deployed; without one, the version (a tag, in the
            // pipeline Release follows).
            "ref": job.sha.as_deref().unwrap_or(&job.version),
            "task": "deploy",
            // GitHub would otherwise merge the default branch into the ref, or refuse
            // while any check is not green: Release reports what ran, it asks nothing.
            "auto_merge": false,
            "required_contexts": [],
            "environment": job.environment,
            "production_environment": job.environment == self.production,
            "transient_environment": false,
            "description": description(&format!("{} {}", job.application, job.version)),
            "payload": {"release": {
                "deployment_id": job.deployment_id,
                "application": job.application,
                "version": job.version,
                "deployed_by": job.deployed_by,
                "url": self.log_url(job),
            }},
        });
        let (status, answer) = self
            .send(reqwest::Method::POST, url, token, Some(&body))
            .await?;
        match status {
            201 => answer
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| Failure::Retry("GitHub's 201 had no deployment id".into(), None)),
            202 => Err(Failure::Final(format!(
                "GitHub answered 202 and created no deployment: {}",
                message(&answer)
            ))),
            409 => Err(Failure::Final(format!(
                "GitHub answered 409 Conflict: {}",
                message(&answer)
            ))),
            422 => Err(Failure::Final(format!(
                "GitHub refused the deployment (422): {}",
                message(&answer)
            ))),
            s => Err(refusal(s, &answer, "creating the deployment")),
        }
    }

    /// `POST /repos/{owner}/{repo}/deployments/{id}/statuses`.
    async fn post_status(
        &self,
        repo: &RepoName,
        token: &str,
        github_id: i64,
        state: &str,
        job: &ReportJob,
    ) -> Result<(), Failure> {
        let id = github_id.to_string();
        let url = self.url(&[
            "repos",
            repo.owner(),
            repo.name(),
            "deployments",
            &id,
            "statuses",
        ])?;
        let mut body = json!({
            "state": state,
            "log_url": self.log_url(job),
            "description": description(&format!(
                "{} {}: {}",
                job.application,
                job.version,
                DeploymentStatus::parse(&job.status).map_or("unknown", |s| s.label())
            )),
            "environment": job.environment,
            // Only the current deployment retires earlier ones: a late notification of
            // an older version must not mark the newer one inactive.
            "auto_inactive": job.is_current > 0,
        });
        if let Some(u) = self
            .environments
            .get(&job.environment)
            .and_then(|s| s.environment_url.as_deref())
        {
            body["environment_url"] = Value::String(u.replace("{app}", &job.application));
        }
        let (status, answer) = self
            .send(reqwest::Method::POST, url, token, Some(&body))
            .await?;
        match status {
            201 => Ok(()),
            404 | 422 => Err(Failure::Final(format!(
                "GitHub refused the status {state} ({status}): {}",
                message(&answer)
            ))),
            s => Err(refusal(s, &answer, "posting a status")),
        }
    }

    /// The token for `repo`'s calls.
    async fn token(&self, repo: &RepoName) -> Result<String, Failure> {
        let app = match &self.credentials {
            Credentials::Token(t) => return Ok(t.clone()),
            Credentials::App(a) => a,
        };
        let now_ms = app::store::now_ms();
        let installation = match app.installation_id {
            Some(i) => i,
            None => self.installation(app, repo, now_ms).await?,
        };
        if let Some((token, renew_at)) = lock(&app.tokens).get(&installation) {
            if *renew_at > now_ms {
                return Ok(token.clone());
            }
        }
        let url = self.url(&[
            "app",
            "installations",
            &installation.to_string(),
            "access_tokens",
        ])?;
        // A token GitHub will not sell (the App uninstalled or installed again, its id
        // changed): the installation is looked up again on the next attempt.
        let forget = || {
            lock(&app.installations).remove(&repo.to_string());
            lock(&app.tokens).remove(&installation);
        };
        let (status, answer) = match self
            .send(
                reqwest::Method::POST,
                url,
                &app.jwt(now_ms / 1000),
                Some(&json!({})),
            )
            .await
        {
            Ok(a) => a,
            Err(f) => {
                forget();
                return Err(f);
            }
        };
        if status != 201 {
            forget();
            return Err(match status {
                404 => Failure::Retry(
                    format!(
                        "buying the App's installation token: GitHub answered 404 for installation {installation}: {}",
                        message(&answer)
                    ),
                    None,
                ),
                s => refusal(s, &answer, "buying the App's installation token"),
            });
        }
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty() && t.len() <= 255)
            .ok_or_else(|| {
                Failure::Retry(
                    "GitHub's installation token answer had no token".into(),
                    None,
                )
            })?
            .to_owned();
        // Renewed five minutes before it expires (an hour after it was bought).
        let expires = answer
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(now_ms + 3_600_000, |t| t.timestamp_millis());
        lock(&app.tokens).insert(installation, (token.clone(), expires - 300_000));
        Ok(token)
    }

    /// `GET /repos/{owner}/{repo}/installation` as the App: its installation on `repo`.
    async fn installation(
        &self,
        app: &AppCredentials,
        repo: &RepoName,
        now_ms: i64,
    ) -> Result<i64, Failure> {
        let key = repo.to_string();
        if let Some(i) = lock(&app.installations).get(&key) {
            return Ok(*i);
        }
        let url = self.url(&["repos", repo.owner(), repo.name(), "installation"])?;
        let (status, answer) = self
            .send(reqwest::Method::GET, url, &app.jwt(now_ms / 1000), None)
            .await?;
        match status {
            200 => {
                let id = answer.get("id").and_then(Value::as_i64).ok_or_else(|| {
                    Failure::Retry("GitHub's installation answer had no id".into(), None)
                })?;
                lock(&app.installations).insert(key, id);
                Ok(id)
            }
            404 => Err(Failure::Final(format!(
                "the GitHub App {} is not installed on {repo}",
                app.id
            ))),
            s => Err(refusal(s, &answer, "finding the App's installation")),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// At most 140 characters, as GitHub takes.
fn description(s: &str) -> String {
    s.chars().take(140).collect()
}

/// GitHub's `message`, bounded.
fn message(answer: &Value) -> String {
    let m = answer.get("message").and_then(Value::as_str);
    app::domain::outside_text::printable(m.unwrap_or("no message"), 300)
}

async fn read_json(resp: reqwest::Response) -> Value {
    // GitHub's answers here are small; a large or broken body is read as no body.
    match resp.bytes().await {
        Ok(b) if b.len() <= 1 << 20 => serde_json::from_slice(&b).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn refusal(status: u16, answer: &Value, doing: &str) -> Failure {
    refusal_with(status, answer, &reqwest::header::HeaderMap::new(), doing)
}

/// An answer that is not what was asked: a rate limit waits until GitHub says (at most an
/// hour), a 401 or GitHub's trouble is tried again, anything else is final.
fn refusal_with(
    status: u16,
    answer: &Value,
    headers: &reqwest::header::HeaderMap,
    doing: &str,
) -> Failure {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let text = format!("{doing}: GitHub answered {status}: {}", message(answer));
    let limited = status == 429
        || (status == 403
            && (header("retry-after").is_some() || header("x-ratelimit-remaining") == Some(0)));
    if limited {
        let wait_s = header("retry-after").or_else(|| {
            header("x-ratelimit-reset").map(|reset| reset - app::store::now_ms() / 1000)
        });
        let wait = Duration::from_secs(wait_s.unwrap_or(60).clamp(1, 3600) as u64);
        return Failure::Retry(format!("{text} (rate limited)"), Some(wait));
    }
    match status {
        401 | 500..=599 => Failure::Retry(text, None),
        _ => Failure::Final(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_waits_for_github_and_a_403_is_final() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "120".parse().unwrap());
        assert!(matches!(
            refusal_with(403, &json!({"message": "slow down"}), &h, "x"),
            Failure::Retry(_, Some(d)) if d == Duration::from_secs(120)
        ));
        assert!(matches!(
            refusal_with(403, &json!({"message": "Resource not accessible by integration"}), &Default::default(), "x"),
            Failure::Final(m) if m.contains("Resource not accessible by integration")
        ));
        assert!(matches!(
            refusal(502, &Value::Null, "x"),
            Failure::Retry(_, None)
        ));
    }

    #[test]
    fn a_description_is_at_most_140_characters() {
        assert_eq!(description(&"é".repeat(200)).chars().count(), 140);
    }
}
