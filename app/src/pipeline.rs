//! The outside systems a deploy or a resubmit talks to: GitHub Actions (dispatching the
//! app's Deploy workflow with the person's own token, so GitHub records the real actor)
//! and the Argo Workflows server of each environment. Every call has a timeout, and every
//! failure becomes a message that says what went wrong and what to do.

use crate::domain::{Environment, GitRef, K8sName, RepoName};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// Every call to GitHub or Argo gives up after this long (unless configured otherwise).
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// `base` followed by `segments`, each percent-encoded as exactly one path segment (a `/`,
/// `%`, `?` or `#` inside a segment is encoded, never interpreted). Every outbound URL is
/// built with this, so no value from the pipeline or a browser can choose the path.
pub fn endpoint(base: &str, segments: &[&str]) -> Result<reqwest::Url, OutsideError> {
    let bad_base = || {
        OutsideError::NotConfigured(format!("the configured URL {base:?} is not an http(s) URL"))
    };
    let mut url = reqwest::Url::parse(base).map_err(|_| bad_base())?;
    if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
        return Err(bad_base());
    }
    if let Some(s) = segments
        .iter()
        .find(|s| s.is_empty() || **s == "." || **s == "..")
    {
        // The url crate drops "." and ".." segments; refuse rather than change the path.
        return Err(OutsideError::Invalid {
            who: "Release",
            detail: format!("{s:?} cannot be a path segment"),
        });
    }
    url.path_segments_mut()
        .map_err(|_| bad_base())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// An HTTP client for an outside service (GitHub, Argo, Argo CD, alert receivers): it
/// follows no redirect (one could carry a token or a sign-in code elsewhere), connects
/// within 5 s, and names itself `user_agent`. `timeout` bounds a whole call; none for a
/// stream (Argo CD's watch), which bounds its reads itself.
pub fn outside_client(
    user_agent: &'static str,
    timeout: Option<Duration>,
) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent);
    match timeout {
        Some(t) => builder.timeout(t),
        None => builder,
    }
    .build()
}

/// `{api}/repos/{owner}/{repo}/actions/workflows/{workflow}/{what}` (`dispatches`, `runs`).
fn workflow_endpoint(
    api: &str,
    repo: &RepoName,
    workflow: &str,
    what: &str,
) -> Result<reqwest::Url, OutsideError> {
    endpoint(
        api,
        &[
            "repos",
            repo.owner(),
            repo.name(),
            "actions",
            "workflows",
            workflow,
            what,
        ],
    )
}

#[derive(Clone, Debug)]
pub struct ArgoServer {
    /// e.g. `https://argo.integration.example.org`
    pub url: String,
    /// Bearer token for the Argo server API (from `RELEASE_ARGO_TOKEN_<ENV>`).
    pub token: crate::crypto::Secret,
}

#[derive(Clone, Debug)]
pub struct Pipeline {
    http: reqwest::Client,
    timeout: Duration,
    /// `https://api.github.com` or `https://HOST/api/v3`; `None` when GitHub is not configured.
    pub github_api: Option<String>,
    /// The Argo Workflows server per environment name.
    pub argo: HashMap<String, ArgoServer>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutsideError {
    #[error("{0}")]
    NotConfigured(String),
    #[error("{who} refused the credentials (401): {hint}")]
    Unauthorized {
        who: &'static str,
        hint: &'static str,
    },
    #[error("{who} answered 403 Forbidden: {hint}")]
    Forbidden {
        who: &'static str,
        hint: &'static str,
    },
    #[error("{who} answered 404 Not Found: {hint}")]
    NotFound {
        who: &'static str,
        hint: &'static str,
    },
    #[error("{who} refused the request (422): {detail}")]
    Invalid { who: &'static str, detail: String },
    #[error("{who} answered {status}: it may be having trouble; try again in a few minutes")]
    Server { who: &'static str, status: u16 },
    #[error("{who} did not answer within {secs} seconds; try again, and check its status page if it keeps happening")]
    Timeout { who: &'static str, secs: u64 },
    #[error("{who} could not be reached; check the network or the configured URL")]
    Unreachable { who: &'static str },
    /// The request went out and the connection broke before the answer: it may or may not
    /// have acted.
    #[error("the connection to {who} broke before it answered")]
    Interrupted { who: &'static str },
}

impl OutsideError {
    /// True when the outside system certainly did nothing (it refused, or the request never
    /// left); false when it may have acted (a timeout, a 5xx, a broken connection), so what
    /// it did must be looked up.
    pub fn certainly_did_nothing(&self) -> bool {
        !matches!(
            self,
            Self::Timeout { .. } | Self::Server { .. } | Self::Interrupted { .. }
        )
    }

    /// The status to answer a person with when this stopped their action.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthorized { .. } => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } | Self::Invalid { .. } => 422,
            Self::NotConfigured(_) => 503,
            Self::Timeout { .. } => 504,
            _ => 502,
        }
    }
}

/// A read from GitHub's REST API answered `status`: fine when 200, else the refusal with
/// the hints for 401, 403 and 404 (in that order), or GitHub's trouble.
fn github_read_ok(status: u16, hints: [&'static str; 3]) -> Result<(), OutsideError> {
    const WHO: &str = "GitHub";
    match status {
        200 => Ok(()),
        401 => Err(OutsideError::Unauthorized {
            who: WHO,
            hint: hints[0],
        }),
        403 => Err(OutsideError::Forbidden {
            who: WHO,
            hint: hints[1],
        }),
        404 => Err(OutsideError::NotFound {
            who: WHO,
            hint: hints[2],
        }),
        s => Err(OutsideError::Server {
            who: WHO,
            status: s,
        }),
    }
}

/// An http(s) link, the only kind a page may render from what GitHub relays (a status's
/// `target_url` is whatever its poster wrote: never a `javascript:` link).
fn is_web_link(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && !u.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// A run's pending deployments, or "not modified" (a conditional request's 304).
#[derive(Debug, Clone, PartialEq)]
pub enum Pending {
    NotModified,
    Fresh {
        etag: Option<String>,
        waiting: Vec<crate::domain::approval::Waiting>,
    },
}

#[derive(Deserialize)]
struct PendingDeployment {
    environment: PendingEnvironment,
    wait_timer: Option<i64>,
    #[serde(default)]
    current_user_can_approve: bool,
    #[serde(default)]
    reviewers: Vec<PendingReviewer>,
}

#[derive(Deserialize)]
struct PendingEnvironment {
    id: i64,
    name: String,
}

#[derive(Deserialize)]
struct PendingReviewer {
    #[serde(rename = "type")]
    kind: String,
    reviewer: serde_json::Value,
}

impl PendingDeployment {
    fn into_waiting(self) -> crate::domain::approval::Waiting {
        use crate::domain::approval::Reviewer;
        let text = |v: &serde_json::Value| {
            v.as_str()
                .map(|s| crate::domain::outside_text::printable(s, 100))
                .filter(|s| !s.is_empty())
        };
        crate::domain::approval::Waiting {
            environment: crate::domain::outside_text::printable(&self.environment.name, 255),
            environment_id: self.environment.id,
            wait_timer_minutes: self.wait_timer,
            current_user_can_approve: self.current_user_can_approve,
            reviewers: self
                .reviewers
                .into_iter()
                .take(20)
                .filter_map(|r| match r.kind.as_str() {
                    "User" => text(&r.reviewer["login"]).map(Reviewer::User),
                    "Team" => text(&r.reviewer["slug"]).map(Reviewer::Team),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// `GET .../environments/{name}`: its protection rules.
#[derive(Deserialize)]
struct GitHubEnvironment {
    #[serde(default)]
    protection_rules: Vec<ProtectionRule>,
}

#[derive(Deserialize)]
struct ProtectionRule {
    #[serde(rename = "type")]
    kind: String,
    prevent_self_review: Option<bool>,
}

/// A commit's checks as GitHub reports them, and those its default branch requires.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitChecks {
    /// The SHA the ref resolved to.
    pub sha: Option<String>,
    /// Marked required by the branch's protection or rulesets.
    pub required: Vec<crate::domain::gates::RequiredCheck>,
    /// Check runs (latest per name) and commit statuses.
    pub reported: Vec<crate::domain::gates::Reported>,
}

/// `GET .../branches/{branch}`: the part of its protection a member can read.
#[derive(Deserialize)]
struct BranchInfo {
    protection: Option<BranchProtection>,
}

#[derive(Deserialize)]
struct BranchProtection {
    required_status_checks: Option<RequiredStatusChecks>,
}

#[derive(Deserialize)]
struct RequiredStatusChecks {
    #[serde(default)]
    contexts: Vec<String>,
    #[serde(default)]
    checks: Vec<ProtectionCheck>,
}

#[derive(Deserialize)]
struct ProtectionCheck {
    context: String,
    app_id: Option<i64>,
}

/// `GET .../rules/branches/{branch}`: one rule of the rulesets that apply.
#[derive(Deserialize)]
struct BranchRule {
    #[serde(rename = "type")]
    kind: String,
    parameters: Option<RuleParameters>,
}

#[derive(Deserialize)]
struct RuleParameters {
    #[serde(default)]
    required_status_checks: Vec<RulesetCheck>,
}

#[derive(Deserialize)]
struct RulesetCheck {
    context: String,
    integration_id: Option<i64>,
}

/// `GET .../commits/{ref}/status`.
#[derive(Deserialize)]
struct CombinedStatus {
    sha: Option<String>,
    #[serde(default)]
    statuses: Vec<CommitStatus>,
}

#[derive(Deserialize)]
struct CommitStatus {
    context: String,
    state: String,
    target_url: Option<String>,
}

/// `GET .../commits/{ref}/check-runs`.
#[derive(Deserialize)]
struct CheckRuns {
    total_count: i64,
    #[serde(default)]
    check_runs: Vec<CheckRun>,
}

#[derive(Deserialize)]
struct CheckRun {
    name: String,
    status: String,
    conclusion: Option<String>,
    html_url: Option<String>,
    details_url: Option<String>,
    app: Option<CheckApp>,
}

#[derive(Deserialize)]
struct CheckApp {
    id: i64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DispatchResult {
    pub run_id: Option<i64>,
    pub run_api_url: Option<String>,
    pub html_url: Option<String>,
}

/// `GET .../actions/workflows/{workflow}/runs`: the fields a lost dispatch is matched on.
#[derive(Deserialize)]
struct WorkflowRuns {
    #[serde(default)]
    workflow_runs: Vec<WorkflowRun>,
}

#[derive(Deserialize)]
struct WorkflowRun {
    html_url: Option<String>,
    head_branch: Option<String>,
    event: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
    actor: Option<RunActor>,
}

#[derive(Deserialize)]
struct RunActor {
    login: String,
}

#[derive(Deserialize)]
struct RunDetails {
    workflow_run_id: Option<i64>,
    run_url: Option<String>,
    html_url: Option<String>,
}

impl Pipeline {
    pub fn new(github_api: Option<String>, argo: HashMap<String, ArgoServer>) -> Self {
        Self::with_timeout(github_api, argo, TIMEOUT)
    }

    /// The same, giving up on a call after `timeout`.
    /// How long any one call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn with_timeout(
        github_api: Option<String>,
        argo: HashMap<String, ArgoServer>,
        timeout: Duration,
    ) -> Self {
        let http =
            outside_client("release-dashboard", Some(timeout)).expect("a plain HTTP client builds");
        Self {
            http,
            timeout,
            github_api: github_api.map(|u| u.trim_end_matches('/').to_owned()),
            argo,
        }
    }

    fn transport(&self, who: &'static str, e: reqwest::Error) -> OutsideError {
        if e.is_timeout() {
            OutsideError::Timeout {
                who,
                secs: self.timeout.as_secs().max(1),
            }
        } else if e.is_connect() || e.is_builder() {
            OutsideError::Unreachable { who }
        } else {
            OutsideError::Interrupted { who }
        }
    }

    /// GitHub's API base URL, or why there is none.
    fn github(&self) -> Result<&str, OutsideError> {
        self.github_api.as_deref().ok_or_else(|| {
            OutsideError::NotConfigured("GitHub is not configured on this Release".into())
        })
    }

    /// Sends a request to GitHub's REST API as `token`, with the headers GitHub asks for.
    /// The answer comes back whatever its status (each call words its own refusals); a
    /// transport failure is a timeout or "unreachable".
    pub async fn github_send(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<reqwest::Response, OutsideError> {
        let mut rb = self
            .http
            .request(method, url)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(b) = body {
            rb = rb.json(b);
        }
        rb.send().await.map_err(|e| self.transport("GitHub", e))
    }

    /// A 200's JSON body; one that does not parse is GitHub's trouble, not the caller's.
    async fn github_json<T: serde::de::DeserializeOwned>(
        resp: reqwest::Response,
    ) -> Result<T, OutsideError> {
        resp.json().await.map_err(|_| OutsideError::Server {
            who: "GitHub",
            status: 200,
        })
    }

    /// `POST {api}/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches`, as the
    /// person whose token this is.
    pub async fn dispatch(
        &self,
        token: &str,
        repo: &RepoName,
        workflow: &str,
        default_branch: &str,
        environment: &Environment,
        git_ref: &GitRef,
    ) -> Result<DispatchResult, OutsideError> {
        const WHO: &str = "GitHub";
        let api = self.github().map_err(|_| {
            OutsideError::NotConfigured(
                "GitHub is not configured on this Release, so it cannot start deploys".into(),
            )
        })?;
        let url = workflow_endpoint(api, repo, workflow, "dispatches")?;
        let body = serde_json::json!({
            "ref": default_branch,
            "inputs": {"environment": environment.as_str(), "gitRef": git_ref.as_str()},
            "return_run_details": true,
        });
        let resp = self
            .github_send(reqwest::Method::POST, url, token, Some(&body))
            .await?;
        match resp.status().as_u16() {
            204 => Ok(DispatchResult::default()),
            200 | 201 => {
                let details: Option<RunDetails> = resp.json().await.ok();
                Ok(details
                    .map(|d| DispatchResult { run_id: d.workflow_run_id, run_api_url: d.run_url, html_url: d.html_url })
                    .unwrap_or_default())
            }
            401 => Err(OutsideError::Unauthorized { who: WHO, hint: "your GitHub sign-in has expired or was revoked; sign out and sign in again" }),
            403 => Err(OutsideError::Forbidden { who: WHO, hint: "your GitHub account may not run workflows in this repository; ask for write access" }),
            404 => Err(OutsideError::NotFound { who: WHO, hint: "the repository or its Deploy workflow file does not exist (check the app's workflow setting)" }),
            422 => {
                let text = resp.text().await.unwrap_or_default();
                let detail = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "the branch, the ref or the workflow's inputs were not accepted".into());
                Err(OutsideError::Invalid { who: WHO, detail: crate::domain::outside_text::printable(&detail, 300) })
            }
            s => Err(OutsideError::Server { who: WHO, status: s }),
        }
    }

    /// The run a lost dispatch started: `GET {api}/repos/{owner}/{repo}/actions/workflows/
    /// {workflow}/runs?event=workflow_dispatch&created=SINCE..UNTIL` (three minutes), as
    /// the person: the run that `actor` started on `branch` in that window and that is not
    /// in `taken` (runs already linked to other dispatches). `None` when there is none; an
    /// error when several could be it (a guess could link someone else's deploy).
    #[allow(clippy::too_many_arguments)]
    pub async fn find_dispatched_run(
        &self,
        token: &str,
        repo: &RepoName,
        workflow: &str,
        branch: &str,
        since: chrono::DateTime<chrono::Utc>,
        actor: &str,
        taken: &[String],
    ) -> Result<Option<String>, OutsideError> {
        let until = since + chrono::Duration::minutes(3);
        let api = self.github()?;
        let mut url = workflow_endpoint(api, repo, workflow, "runs")?;
        url.query_pairs_mut()
            .append_pair("event", "workflow_dispatch")
            .append_pair(
                "created",
                &format!(
                    "{}..{}",
                    since.format("%Y-%m-%dT%H:%M:%SZ"),
                    until.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            )
            .append_pair("per_page", "100");
        let runs: WorkflowRuns = self
            .github_get(
                url,
                token,
                [
                    "the person's GitHub sign-in has expired",
                    "the person's GitHub account may not read this repository's runs",
                    "the repository or its Deploy workflow does not exist",
                ],
            )
            .await?;
        let mine: Vec<&WorkflowRun> = runs
            .workflow_runs
            .iter()
            .filter(|r| {
                r.event.as_deref() == Some("workflow_dispatch")
                    && r.actor
                        .as_ref()
                        .is_some_and(|a| a.login.eq_ignore_ascii_case(actor))
                    && r.head_branch.as_deref() == Some(branch)
                    && r.created_at >= since
                    && r.created_at <= until
                    && r.html_url.as_ref().is_some_and(|u| !taken.contains(u))
            })
            .collect();
        match mine.as_slice() {
            [] => Ok(None),
            [one] => Ok(one.html_url.clone()),
            more => Err(OutsideError::Invalid {
                who: "Release",
                detail: format!(
                    "{} runs of {workflow} started by {actor} then could each be this dispatch's",
                    more.len()
                ),
            }),
        }
    }

    /// A GitHub read as `token`: the JSON of a 200, else the refusal (hints for 401, 403,
    /// 404) or GitHub's trouble.
    async fn github_get<T: serde::de::DeserializeOwned>(
        &self,
        url: reqwest::Url,
        token: &str,
        hints: [&'static str; 3],
    ) -> Result<T, OutsideError> {
        let resp = self
            .github_send(reqwest::Method::GET, url, token, None)
            .await?;
        github_read_ok(resp.status().as_u16(), hints)?;
        Self::github_json(resp).await
    }

    /// What the checks gate needs of GitHub, read as the person (`token`): the checks the
    /// default branch's protection and rulesets mark required (as a member can read them:
    /// `GET .../branches/{branch}` and `GET .../rules/branches/{branch}`; the protection
    /// endpoint itself needs admin rights), the SHA `git_ref` resolves to and its combined
    /// status (`GET .../commits/{ref}/status`), and its latest check runs
    /// (`GET .../commits/{sha}/check-runs?filter=latest`, 100 a page, at most 10 pages).
    pub async fn commit_checks(
        &self,
        token: &str,
        repo: &RepoName,
        branch: &str,
        git_ref: &GitRef,
    ) -> Result<CommitChecks, OutsideError> {
        use crate::domain::gates::{CheckState, Reported, RequiredCheck};
        const HINTS: [&str; 3] = [
            "the person's GitHub sign-in has expired; sign out and sign in again",
            "the person's GitHub account may not read this repository's checks",
            "GitHub does not know this repository, branch or ref",
        ];
        let api = self.github()?;
        let (owner, name) = (repo.owner(), repo.name());
        let mut required = Vec::new();
        let b: BranchInfo = self
            .github_get(
                endpoint(api, &["repos", owner, name, "branches", branch])?,
                token,
                HINTS,
            )
            .await?;
        if let Some(rsc) = b.protection.and_then(|p| p.required_status_checks) {
            for c in rsc.checks {
                required.push(RequiredCheck {
                    context: c.context,
                    app_id: c.app_id,
                });
            }
            for c in rsc.contexts {
                if !required.iter().any(|r: &RequiredCheck| r.context == c) {
                    required.push(RequiredCheck {
                        context: c,
                        app_id: None,
                    });
                }
            }
        }
        // The rules of every ruleset that applies, 100 a page, at most 5 pages.
        let mut rules: Vec<BranchRule> = Vec::new();
        for page in 1..=5 {
            let mut url = endpoint(api, &["repos", owner, name, "rules", "branches", branch])?;
            url.query_pairs_mut()
                .append_pair("per_page", "100")
                .append_pair("page", &page.to_string());
            let got: Vec<BranchRule> = self.github_get(url, token, HINTS).await?;
            let n = got.len();
            rules.extend(got);
            if n < 100 {
                break;
            }
        }
        for r in rules
            .into_iter()
            .filter(|r| r.kind == "required_status_checks")
        {
            for c in r
                .parameters
                .map(|p| p.required_status_checks)
                .unwrap_or_default()
            {
                if !required
                    .iter()
                    .any(|x| x.context == c.context && x.app_id == c.integration_id)
                {
                    required.push(RequiredCheck {
                        context: c.context,
                        app_id: c.integration_id,
                    });
                }
            }
        }
        let mut status_url = endpoint(
            api,
            &["repos", owner, name, "commits", git_ref.as_str(), "status"],
        )?;
        status_url.query_pairs_mut().append_pair("per_page", "100");
        let combined: CombinedStatus = self.github_get(status_url, token, HINTS).await?;
        let sha = combined.sha.clone();
        let mut reported: Vec<Reported> = combined
            .statuses
            .into_iter()
            .map(|s| Reported {
                name: s.context,
                app_id: None,
                state: CheckState::of_status(&s.state),
                url: s.target_url.filter(|u| is_web_link(u)),
            })
            .collect();
        // The SHA GitHub resolved, so the check runs are those of the same commit.
        let commit = sha.clone().unwrap_or_else(|| git_ref.as_str().to_owned());
        let mut seen = 0usize;
        for page in 1..=10 {
            let mut url = endpoint(
                api,
                &["repos", owner, name, "commits", &commit, "check-runs"],
            )?;
            url.query_pairs_mut()
                .append_pair("filter", "latest")
                .append_pair("per_page", "100")
                .append_pair("page", &page.to_string());
            let runs: CheckRuns = self.github_get(url, token, HINTS).await?;
            let n = runs.check_runs.len();
            seen += n;
            reported.extend(runs.check_runs.into_iter().map(|r| Reported {
                state: CheckState::of_check_run(&r.status, r.conclusion.as_deref()),
                name: r.name,
                app_id: r.app.map(|a| a.id),
                url: r.html_url.or(r.details_url).filter(|u| is_web_link(u)),
            }));
            if n < 100 || seen as i64 >= runs.total_count {
                break;
            }
        }
        Ok(CommitChecks {
            sha,
            required,
            reported,
        })
    }

    /// `{api}/repos/{owner}/{repo}/actions/runs/{run_id}/pending_deployments`.
    fn pending_url(&self, repo: &RepoName, run_id: i64) -> Result<reqwest::Url, OutsideError> {
        endpoint(
            self.github()?,
            &[
                "repos",
                repo.owner(),
                repo.name(),
                "actions",
                "runs",
                &run_id.to_string(),
                "pending_deployments",
            ],
        )
    }

    /// `GET {api}/repos/{owner}/{repo}/actions/runs/{run_id}/pending_deployments` as
    /// `token`, conditionally (`If-None-Match: etag`): a 304 costs no rate limit.
    pub async fn pending_deployments(
        &self,
        token: &str,
        repo: &RepoName,
        run_id: i64,
        etag: Option<&str>,
    ) -> Result<Pending, OutsideError> {
        let url = self.pending_url(repo, run_id)?;
        let mut rb = self
            .http
            .get(url)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(e) = etag {
            rb = rb.header("If-None-Match", e);
        }
        let resp = rb.send().await.map_err(|e| self.transport("GitHub", e))?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(Pending::NotModified);
        }
        github_read_ok(
            resp.status().as_u16(),
            [
                "the stored GitHub sign-in has expired",
                "the account may not read this repository's runs",
                "GitHub does not know this run",
            ],
        )?;
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 200)
            .map(str::to_owned);
        let items: Vec<PendingDeployment> = Self::github_json(resp).await?;
        Ok(Pending::Fresh {
            etag,
            waiting: items
                .into_iter()
                .take(20)
                .map(PendingDeployment::into_waiting)
                .collect(),
        })
    }

    /// `POST .../actions/runs/{run_id}/pending_deployments` as the person (`token`):
    /// approves or rejects the run's wait in the environments `environment_ids`.
    pub async fn review_pending(
        &self,
        token: &str,
        repo: &RepoName,
        run_id: i64,
        environment_ids: &[i64],
        approve: bool,
        comment: &str,
    ) -> Result<(), OutsideError> {
        let url = self.pending_url(repo, run_id)?;
        let body = serde_json::json!({
            "environment_ids": environment_ids,
            "state": if approve { "approved" } else { "rejected" },
            "comment": comment,
        });
        let resp = self
            .github_send(reqwest::Method::POST, url, token, Some(&body))
            .await?;
        match resp.status().as_u16() {
            200 | 201 => Ok(()),
            422 => Err(OutsideError::Invalid {
                who: "GitHub",
                detail: "it did not take the review (the run may no longer wait, or you may not review it)".into(),
            }),
            s => github_read_ok(
                s,
                [
                    "your GitHub sign-in has expired; sign out and sign in again",
                    "GitHub does not let your account review deployments to this environment",
                    "GitHub does not know this run or environment",
                ],
            ),
        }
    }

    /// `GET .../environments/{name}`: whether the environment prevents self-review.
    pub async fn prevents_self_review(
        &self,
        token: &str,
        repo: &RepoName,
        environment: &str,
    ) -> Result<bool, OutsideError> {
        let api = self.github()?;
        let url = endpoint(
            api,
            &[
                "repos",
                repo.owner(),
                repo.name(),
                "environments",
                environment,
            ],
        )?;
        let env: GitHubEnvironment = self
            .github_get(
                url,
                token,
                [
                    "your GitHub sign-in has expired; sign out and sign in again",
                    "your GitHub account may not read this repository's environments",
                    "GitHub does not know this environment",
                ],
            )
            .await?;
        Ok(env
            .protection_rules
            .iter()
            .any(|r| r.kind == "required_reviewers" && r.prevent_self_review == Some(true)))
    }

    /// `GET {api}/repos/{owner}/{repo}/tags` and `.../commits?sha={branch}`: recent refs to
    /// suggest in the deploy form, as (ref, description) pairs, tags first.
    pub async fn recent_refs(
        &self,
        token: &str,
        repo: &RepoName,
        branch: &str,
    ) -> Result<Vec<(String, String)>, OutsideError> {
        let api = self.github()?;
        let mut tags = endpoint(api, &["repos", repo.owner(), repo.name(), "tags"])?;
        tags.query_pairs_mut().append_pair("per_page", "15");
        let mut commits = endpoint(api, &["repos", repo.owner(), repo.name(), "commits"])?;
        commits
            .query_pairs_mut()
            .append_pair("sha", branch)
            .append_pair("per_page", "10");
        let mut out = Vec::new();
        for url in [tags, commits] {
            let items: Vec<serde_json::Value> = self
                .github_get(
                    url,
                    token,
                    [
                        "your GitHub sign-in has expired; sign out and sign in again",
                        "your GitHub account may not read this repository",
                        "the repository or its default branch does not exist",
                    ],
                )
                .await?;
            for v in items {
                if let Some(tag) = v["name"].as_str() {
                    out.push((tag.to_owned(), "tag".to_owned()));
                } else if let Some(sha) = v["sha"].as_str() {
                    let msg = v["commit"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned();
                    out.push((sha.chars().take(12).collect(), msg));
                }
            }
        }
        Ok(out)
    }

    /// `GET {api}/repos/{owner}/{repo}/commits/{sha}`: when the commit was made (its
    /// committer's date), for the lead time of a change. `Ok(None)`: GitHub does not know
    /// that commit (404, or 422 for a SHA it cannot read).
    pub async fn commit_time(
        &self,
        token: &str,
        repo: &RepoName,
        sha: &crate::domain::Sha,
    ) -> Result<Option<i64>, OutsideError> {
        let api = self.github()?;
        let url = endpoint(
            api,
            &["repos", repo.owner(), repo.name(), "commits", sha.as_str()],
        )?;
        let resp = self
            .github_send(reqwest::Method::GET, url, token, None)
            .await?;
        #[derive(Deserialize)]
        struct Committer {
            date: chrono::DateTime<chrono::Utc>,
        }
        #[derive(Deserialize)]
        struct Inner {
            committer: Committer,
        }
        #[derive(Deserialize)]
        struct Commit {
            commit: Inner,
        }
        // No such commit (404, or 422 for a SHA GitHub cannot read): no commit time.
        if matches!(resp.status().as_u16(), 404 | 422) {
            return Ok(None);
        }
        github_read_ok(
            resp.status().as_u16(),
            [
                "RELEASE_GITHUB_STATS_TOKEN is wrong or expired",
                "RELEASE_GITHUB_STATS_TOKEN may not read this repository, or its rate limit is spent",
                "the commit does not exist",
            ],
        )?;
        let c: Commit = Self::github_json(resp).await?;
        Ok(Some(c.commit.committer.date.timestamp_millis()))
    }

    /// `GET {api}/repos/{owner}/{repo}/compare/{base}...{head}`: what deploying `head`
    /// where `base` runs would ship.
    pub async fn compare(
        &self,
        token: &str,
        repo: &RepoName,
        base: &str,
        head: &GitRef,
    ) -> Result<serde_json::Value, OutsideError> {
        let api = self.github()?;
        // One segment, `BASE...HEAD`: each side is encoded by `endpoint` (a `%`, `#` or `/`
        // in a ref cannot leave the compare endpoint).
        let range = format!("{base}...{}", head.as_str());
        let url = endpoint(
            api,
            &["repos", repo.owner(), repo.name(), "compare", &range],
        )?;
        self.github_get(
            url,
            token,
            [
                "your GitHub sign-in has expired; sign out and sign in again",
                "your GitHub account may not read this repository",
                "one of the two refs does not exist in the repository",
            ],
        )
        .await
    }

    /// `PUT {argo}/api/v1/workflows/{namespace}/{name}/resubmit` on `environment`'s Argo
    /// server with that environment's token: returns the new workflow's name. Callers pass
    /// the deployment's own environment (see `domain::deploy_rules::check_resubmit`).
    pub async fn resubmit(
        &self,
        environment: &Environment,
        namespace: &K8sName,
        name: &K8sName,
    ) -> Result<String, OutsideError> {
        const WHO: &str = "Argo Workflows";
        let server = self.argo.get(environment.as_str()).ok_or_else(|| {
            OutsideError::NotConfigured(format!("no Argo Workflows server is configured for {environment}, so Release cannot resubmit there"))
        })?;
        let url = endpoint(
            &server.url,
            &[
                "api",
                "v1",
                "workflows",
                namespace.as_str(),
                name.as_str(),
                "resubmit",
            ],
        )?;
        let resp = self
            .http
            .put(url)
            .bearer_auth(server.token.expose())
            .json(&serde_json::json!({"memoized": false}))
            .send()
            .await
            .map_err(|e| self.transport(WHO, e))?;
        match resp.status().as_u16() {
            200 | 201 => {
                let v: serde_json::Value = resp.json().await.map_err(|_| OutsideError::Server { who: WHO, status: 200 })?;
                v["metadata"]["name"].as_str().map(str::to_owned).ok_or(OutsideError::Server { who: WHO, status: 200 })
            }
            401 => Err(OutsideError::Unauthorized { who: WHO, hint: "the Argo token configured for this environment is wrong or expired; ask an admin" }),
            403 => Err(OutsideError::Forbidden { who: WHO, hint: "the Argo token may not resubmit workflows in this namespace; ask an admin" }),
            404 => Err(OutsideError::NotFound { who: WHO, hint: "the workflow no longer exists (it may have been garbage-collected); deploy again instead" }),
            422 | 400 => Err(OutsideError::Invalid { who: WHO, detail: "the workflow cannot be resubmitted".into() }),
            s => Err(OutsideError::Server { who: WHO, status: s }),
        }
    }

    /// The Argo UI link for a workflow.
    pub fn workflow_url(
        &self,
        environment: &Environment,
        namespace: &K8sName,
        name: &K8sName,
    ) -> Option<String> {
        let server = self.argo.get(environment.as_str())?;
        endpoint(
            &server.url,
            &["workflows", namespace.as_str(), name.as_str()],
        )
        .ok()
        .map(String::from)
    }
}
