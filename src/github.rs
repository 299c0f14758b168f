//! GitHub: the OAuth web flow (authorization code with PKCE) and the REST calls that tell
//! who someone is and which teams they are in. Base URLs are configuration, so GitHub
//! Enterprise Server works and tests can point at a local fake GitHub.

use crate::configuration::{Access, GitHubSettings};
use anyhow::Context;
use app::domain::Roles;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Every call to GitHub gives up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = "release-dashboard";

#[derive(Clone)]
pub struct GitHub {
    api_url: String,
    oauth: OAuthClient,
    scopes: Vec<String>,
    http: reqwest::Client,
}

/// What the authorization redirect needs to remember until the callback.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub verifier: String,
    pub return_to: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GitHubUser {
    pub id: i64,
    pub login: String,
    pub name: Option<String>,
    pub avatar_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub did not accept the sign-in code: {0}")]
    Exchange(String),
    #[error("GitHub answered {status} to {what}")]
    Status { status: u16, what: String },
    #[error("GitHub could not be reached ({0})")]
    Unreachable(String),
}

impl GitHub {
    pub fn new(
        settings: &GitHubSettings,
        client_secret: String,
        redirect_url: String,
    ) -> anyhow::Result<Self> {
        let web = settings.web_url.trim_end_matches('/');
        let oauth = BasicClient::new(ClientId::new(settings.client_id.clone()))
            .set_client_secret(ClientSecret::new(client_secret))
            .set_auth_uri(
                AuthUrl::new(format!("{web}/login/oauth/authorize")).context("github.web_url")?,
            )
            .set_token_uri(
                TokenUrl::new(format!("{web}/login/oauth/access_token"))
                    .context("github.web_url")?,
            )
            .set_redirect_uri(RedirectUrl::new(redirect_url).context("public_url")?)
            // GitHub reads client_id and client_secret from the form body.
            .set_auth_type(AuthType::RequestBody);
        // The token endpoint must not redirect (a redirect could leak the code).
        let http = app::pipeline::outside_client(USER_AGENT, Some(TIMEOUT))?;
        Ok(Self {
            api_url: settings.api_url.trim_end_matches('/').to_owned(),
            oauth,
            scopes: settings.scopes.clone(),
            http,
        })
    }

    /// Where to send the browser, and what to remember for the callback.
    pub fn authorize(&self, return_to: String) -> (String, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .oauth
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .url();
        (
            url.to_string(),
            PendingLogin {
                state: state.secret().clone(),
                verifier: verifier.secret().clone(),
                return_to,
            },
        )
    }

    /// Trades the callback's code (and the PKCE verifier) for the person's token.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<String, GitHubError> {
        let token = self
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| GitHubError::Exchange(describe_oauth_error(&e)))?;
        Ok(token.access_token().secret().clone())
    }

    /// `GET {api}/{segments...}`, each segment percent-encoded (org, team and login come
    /// from configuration and from GitHub, and still cannot change the path).
    async fn get(
        &self,
        token: &str,
        segments: &[&str],
    ) -> Result<Option<serde_json::Value>, GitHubError> {
        let path = format!("/{}", segments.join("/"));
        let url =
            app::pipeline::endpoint(&self.api_url, segments).map_err(|e| GitHubError::Status {
                status: 400,
                what: format!("GET {path} ({e})"),
            })?;
        let resp = self
            .http
            .get(url)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| {
                GitHubError::Unreachable(if e.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                })
            })?;
        match resp.status().as_u16() {
            200 => resp
                .json()
                .await
                .map(Some)
                .map_err(|_| GitHubError::Status {
                    status: 200,
                    what: format!("GET {path} (unreadable body)"),
                }),
            404 => Ok(None),
            s => Err(GitHubError::Status {
                status: s,
                what: format!("GET {path}"),
            }),
        }
    }

    pub async fn user(&self, token: &str) -> Result<GitHubUser, GitHubError> {
        let v = self
            .get(token, &["user"])
            .await?
            .ok_or(GitHubError::Status {
                status: 404,
                what: "GET /user".into(),
            })?;
        serde_json::from_value(v).map_err(|_| GitHubError::Status {
            status: 200,
            what: "GET /user (unexpected shape)".into(),
        })
    }

    /// A membership read (`GET .../memberships/...`): whether it is active. A 403 means
    /// the token may not read the membership: "not a member".
    async fn is_active_member(&self, token: &str, segments: &[&str]) -> Result<bool, GitHubError> {
        match self.get(token, segments).await {
            Ok(v) => Ok(v.is_some_and(|v| v["state"] == "active")),
            Err(GitHubError::Status { status: 403, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn is_org_member(&self, token: &str, org: &str) -> Result<bool, GitHubError> {
        self.is_active_member(token, &["user", "memberships", "orgs", org])
            .await
    }

    pub async fn is_team_member(
        &self,
        token: &str,
        org: &str,
        team: &str,
        login: &str,
    ) -> Result<bool, GitHubError> {
        self.is_active_member(token, &["orgs", org, "teams", team, "memberships", login])
            .await
    }

    /// Roles from configuration and membership: `None` when the person is not an active
    /// member of the organisation.
    pub async fn roles(
        &self,
        token: &str,
        login: &str,
        access: &Access,
    ) -> Result<Option<Roles>, GitHubError> {
        if !self.is_org_member(token, &access.org).await? {
            return Ok(None);
        }
        let mut teams: HashMap<String, bool> = HashMap::new();
        let mut matches = async |entries: &[String]| -> Result<bool, GitHubError> {
            for entry in entries {
                if let Some(person) = entry.strip_prefix('@') {
                    if person.eq_ignore_ascii_case(login) {
                        return Ok(true);
                    }
                    continue;
                }
                let member = match teams.get(entry) {
                    Some(m) => *m,
                    None => {
                        let m = self
                            .is_team_member(token, &access.org, entry, login)
                            .await?;
                        teams.insert(entry.clone(), m);
                        m
                    }
                };
                if member {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let admin = matches(&access.admins).await?;
        let mut deploy_environments = Vec::new();
        for (env, entries) in &access.deployers {
            if matches(entries).await? {
                deploy_environments.push(env.clone());
            }
        }
        Ok(Some(Roles {
            admin,
            deploy_environments,
        }))
    }
}

fn describe_oauth_error<E: std::error::Error>(e: &E) -> String {
    // The error names what went wrong (bad code, bad verifier) without echoing secrets.
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    app::domain::outside_text::printable(&msg, 300)
}
