//! Configuration: the `release.toml` file (environments and applications) and the
//! settings given on the command line or in the environment.

use anyhow::{bail, Context};
use app::domain::{Environments, RepoName, Shortname};
use app::store::ApplicationSpec;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// The configuration file, as written by people.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    environments: Option<Vec<String>>,
    public_url: Option<String>,
    default_owner: Option<String>,
    github: Option<FileGitHub>,
    access: Option<FileAccess>,
    session: Option<FileSession>,
    #[serde(default)]
    argo: std::collections::HashMap<String, FileArgo>,
    #[serde(default)]
    argocd: std::collections::HashMap<String, FileArgo>,
    deploys: Option<FileDeploys>,
    limits: Option<FileLimits>,
    alerts: Option<FileAlerts>,
    /// `[gates.<environment>]`: required checks, soak time, who may override.
    #[serde(default)]
    gates: std::collections::HashMap<String, FileGates>,
    #[serde(default)]
    applications: Vec<FileApplication>,
}

/// `[gates.<environment>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGates {
    /// Checks every deploy there needs (with those GitHub's protection marks required);
    /// present, even empty, turns the checks gate on.
    required_checks: Option<Vec<String>>,
    /// Minutes a version must have run in the environment before.
    soak_minutes: Option<i64>,
    /// `deployers` (default) or `admins`: who may deploy through a closed gate.
    #[serde(rename = "override")]
    override_by: Option<String>,
}

/// `[alerts]` and its `[[alerts.receivers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAlerts {
    /// The first retry's wait (doubling after each failure, at most an hour). Default 10.
    retry_first_seconds: Option<f64>,
    /// How long an alert is retried before it is given up. Default 24.
    give_up_hours: Option<f64>,
    /// The daily digest's local time ("09:30"); none: no digest.
    digest_at: Option<String>,
    /// The digest's time zone (IANA, e.g. "Europe/London"). Default UTC.
    time_zone: Option<String>,
    #[serde(default)]
    receivers: Vec<FileReceiver>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReceiver {
    name: String,
    /// `slack` or `webhook`.
    kind: String,
    /// Or `RELEASE_ALERT_URL_<NAME>` (a Slack webhook URL is a secret).
    url: Option<String>,
    #[serde(default)]
    teams: Vec<String>,
    #[serde(default)]
    events: Vec<String>,
}

/// A receiver as configured; its URL (when not in the file) and a webhook's secret come
/// from the environment at startup.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    pub name: String,
    pub kind: crate::alerts::ReceiverKind,
    pub url: Option<String>,
    pub teams: Vec<String>,
    pub events: Vec<app::domain::AlertKind>,
}

impl ReceiverConfig {
    /// `deploy-alerts` -> `DEPLOY_ALERTS`, for `RELEASE_ALERT_URL_...` and `..._SECRET_...`.
    pub fn env_suffix(&self) -> String {
        self.name.to_ascii_uppercase().replace('-', "_")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    pub receivers: Vec<ReceiverConfig>,
    pub retry_first: std::time::Duration,
    pub give_up_after: std::time::Duration,
    /// The daily digest: its local time and time zone.
    pub digest: Option<DigestTime>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DigestTime {
    pub at: chrono::NaiveTime,
    pub time_zone: chrono_tz::Tz,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            receivers: vec![],
            retry_first: std::time::Duration::from_secs(10),
            give_up_after: std::time::Duration::from_secs(24 * 3600),
            digest: None,
        }
    }
}

fn parse_alerts(file: FileAlerts) -> anyhow::Result<AlertConfig> {
    let retry = file.retry_first_seconds.unwrap_or(10.0);
    anyhow::ensure!(
        (0.1..=3600.0).contains(&retry),
        "alerts.retry_first_seconds must be 0.1 to 3600"
    );
    let give_up = file.give_up_hours.unwrap_or(24.0);
    anyhow::ensure!(
        (0.001..=24.0 * 30.0).contains(&give_up),
        "alerts.give_up_hours must be more than 0 and at most 720"
    );
    let mut receivers: Vec<ReceiverConfig> = Vec::new();
    for r in file.receivers {
        anyhow::ensure!(
            (1..=50).contains(&r.name.len())
                && r.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "alerts.receivers: name {:?} must be 1 to 50 lowercase letters, digits or -",
            r.name
        );
        anyhow::ensure!(
            !receivers.iter().any(|x| x.name == r.name),
            "alerts.receivers: two receivers are named {:?}",
            r.name
        );
        let kind = match r.kind.as_str() {
            "slack" => crate::alerts::ReceiverKind::Slack,
            "webhook" => crate::alerts::ReceiverKind::Webhook,
            other => bail!(
                "alerts.receivers.{}: kind must be slack or webhook, got {other:?}",
                r.name
            ),
        };
        if let Some(u) = &r.url {
            anyhow::ensure!(
                u.starts_with("https://") || u.starts_with("http://"),
                "alerts.receivers.{}: url must be an http(s) URL",
                r.name
            );
        }
        let events = r
            .events
            .iter()
            .map(|e| app::domain::AlertKind::parse(e))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("alerts.receivers.{}", r.name))?;
        receivers.push(ReceiverConfig {
            name: r.name,
            kind,
            url: r.url,
            teams: r.teams,
            events,
        });
    }
    let time_zone: chrono_tz::Tz = match &file.time_zone {
        Some(z) => z.parse().map_err(|_| {
            anyhow::anyhow!(
                "alerts.time_zone: {z:?} is not a time zone (e.g. \"Europe/London\", \"UTC\")"
            )
        })?,
        None => chrono_tz::UTC,
    };
    let digest = match &file.digest_at {
        Some(at) => Some(DigestTime {
            at: chrono::NaiveTime::parse_from_str(at, "%H:%M").map_err(|_| {
                anyhow::anyhow!(
                    "alerts.digest_at: {at:?} is not a time of day as HH:MM (\"09:30\")"
                )
            })?,
            time_zone,
        }),
        None => {
            anyhow::ensure!(
                file.time_zone.is_none(),
                "alerts.time_zone is the digest's: set alerts.digest_at too"
            );
            None
        }
    };
    Ok(AlertConfig {
        digest,
        receivers,
        retry_first: std::time::Duration::from_secs_f64(retry),
        give_up_after: std::time::Duration::from_secs_f64(give_up * 3600.0),
    })
}

/// `[limits]`: for a site with more people than the defaults allow for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    /// Open connections at most (default 768); every open page holds one live stream.
    max_connections: Option<usize>,
    /// Live streams one person may hold at once (default 8).
    live_streams_per_person: Option<usize>,
    /// Sign-in requests per client address per minute (default 30).
    sign_ins_per_minute: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileArgo {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDeploys {
    stall_minutes: Option<i64>,
    /// How long Argo CD's running version may differ from the current deployment before
    /// the cell is flagged drift (default 600).
    drift_grace_seconds: Option<i64>,
    /// Which image tags are versions (a regular expression the whole tag must match).
    version_pattern: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGitHub {
    client_id: String,
    web_url: Option<String>,
    api_url: Option<String>,
    scopes: Option<Vec<String>>,
    /// `[github.app]`: the GitHub App whose installation token tells GitHub's Deployments
    /// API of every deployment (its private key from `RELEASE_GITHUB_APP_KEY`).
    app: Option<FileGitHubApp>,
    /// `[github.deployments.<environment>]`: how that environment's deployments are told.
    #[serde(default)]
    deployments: std::collections::HashMap<String, FileReport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGitHubApp {
    id: i64,
    /// The installation's id; default: looked up per repository
    /// (`GET /repos/{owner}/{repo}/installation`).
    installation_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileReport {
    /// `false` where the Deploy workflow's job has `environment:` (GitHub creates the
    /// deployment itself): one writer per environment. Default true.
    report_to_github: Option<bool>,
    /// The environment's URL on GitHub's deployment (`{app}` is the app's shortname).
    environment_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAccess {
    org: String,
    #[serde(default)]
    admins: Vec<String>,
    #[serde(default)]
    deployers: std::collections::HashMap<String, Vec<String>>,
    refresh_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSession {
    idle_minutes: Option<i64>,
    absolute_hours: Option<i64>,
}

/// The GitHub OAuth app. The client secret is never in the file: it comes from
/// `RELEASE_GITHUB_CLIENT_SECRET`.
#[derive(Debug, Clone)]
pub struct GitHubSettings {
    pub client_id: String,
    /// `https://github.com`, or a GitHub Enterprise Server host.
    pub web_url: String,
    /// `https://api.github.com`, or `https://HOST/api/v3`.
    pub api_url: String,
    pub scopes: Vec<String>,
    /// How deployments are told to GitHub's Deployments API.
    pub reports: DeploymentReports,
}

/// Deploys told back to GitHub (`[github.app]`, `[github.deployments.<environment>]`).
#[derive(Debug, Clone, Default)]
pub struct DeploymentReports {
    /// The GitHub App whose installation token reports them.
    pub app: Option<GitHubApp>,
    /// Per environment: reported or not, and its URL.
    pub environments: std::collections::HashMap<String, ReportSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GitHubApp {
    pub id: i64,
    pub installation_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportSettings {
    pub report_to_github: bool,
    pub environment_url: Option<String>,
}

/// Who may do what. Entries are team slugs in `org`, or `@login` for one person.
#[derive(Debug, Clone, Default)]
pub struct Access {
    pub org: String,
    pub admins: Vec<String>,
    /// Per environment, in pipeline order.
    pub deployers: Vec<(String, Vec<String>)>,
    /// How often a signed-in person's memberships are read again from GitHub.
    pub refresh_minutes: i64,
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// A session unused for this long ends.
    pub idle_minutes: i64,
    /// A session ends this long after sign-in, used or not.
    pub absolute_hours: i64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_minutes: 8 * 60,
            absolute_hours: 24,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApplication {
    name: Option<String>,
    repo: String,
    shortname: Option<String>,
    default_branch: Option<String>,
    workflow: Option<String>,
    team: Option<String>,
    notes: Option<String>,
    /// Environments where continuous deployment is off: a person deploys there.
    #[serde(default)]
    manual: Vec<String>,
    /// The Argo CD application's name (default: the shortname).
    argocd_app: Option<String>,
    /// The image whose tag is the running version (default: the repo's name).
    image: Option<String>,
    /// Which of that image's tags are versions (a regular expression the whole tag must
    /// match); default `[deploys] version_pattern`.
    version_pattern: Option<String>,
    /// The checks its deploys need when GitHub marks none as required (turns the checks
    /// gate on for it).
    required_checks: Option<Vec<String>>,
    /// Per environment, minutes a version must have run in the environment before
    /// (`{ production = 60 }`), over `[gates.<environment>] soak_minutes`.
    #[serde(default)]
    soak_minutes: std::collections::HashMap<String, i64>,
}

/// The configuration after checking: every name parsed, every environment known.
#[derive(Debug, Clone)]
pub struct Config {
    pub environments: Environments,
    pub applications: Vec<ApplicationSpec>,
    /// The address people use, e.g. `https://release.example.org`: the OAuth redirect URL
    /// is built from it, and cookies are `Secure` when it is https.
    pub public_url: Option<String>,
    pub github: Option<GitHubSettings>,
    pub access: Access,
    pub session: SessionSettings,
    /// The Argo Workflows server of each environment (environment, URL); tokens come from
    /// `RELEASE_ARGO_TOKEN_<ENVIRONMENT>`.
    pub argo: Vec<(String, String)>,
    /// A manual deploy that hears nothing from the pipeline for this long is stalled.
    pub stall_minutes: i64,
    /// What runs may differ from the current deployment this long before it is drift.
    pub drift_grace_seconds: i64,
    /// The server's limits, with `[limits]` applied.
    pub limits: Limits,
    /// The owner of a repo the pipeline names without one (`content-store`): `default_owner`,
    /// else the `[access]` organisation, else the one owner of every declared application.
    pub default_owner: Option<String>,
    /// `[alerts]`: where deploy alerts go.
    pub alerts: AlertConfig,
    /// Each environment's Argo CD (environment, URL); tokens from
    /// `RELEASE_ARGOCD_TOKEN_<ENVIRONMENT>`.
    pub argocd: Vec<(String, String)>,
    /// Argo CD application name -> (shortname, image), for the declared applications.
    pub argocd_apps: std::collections::HashMap<String, (String, String)>,
    /// `[deploys] version_pattern`: which image tags are versions (default: a tag with a
    /// digit that is not a moving name such as `latest`, `main` or `stable`).
    pub version_pattern: Option<String>,
    /// Shortname -> its own `version_pattern`.
    pub version_patterns: std::collections::HashMap<String, String>,
    /// `[gates.*]` and the applications' own gates.
    pub gates: app::domain::gates::GateConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            environments: Environments::default(),
            applications: vec![],
            public_url: None,
            github: None,
            access: Access {
                refresh_minutes: 15,
                ..Access::default()
            },
            session: SessionSettings::default(),
            argo: vec![],
            stall_minutes: 30,
            drift_grace_seconds: 600,
            limits: Default::default(),
            default_owner: None,
            alerts: AlertConfig::default(),
            argocd: vec![],
            argocd_apps: Default::default(),
            version_pattern: None,
            version_patterns: Default::default(),
            gates: Default::default(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the configuration file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: FileConfig = toml::from_str(text)?;
        let environments = match file.environments {
            Some(names) => Environments::new(&names)?,
            None => Environments::default(),
        };
        let mut applications = Vec::with_capacity(file.applications.len());
        let mut argocd_apps = std::collections::HashMap::new();
        let mut version_patterns = std::collections::HashMap::new();
        let mut gates = app::domain::gates::GateConfig::default();
        for (env, g) in &file.gates {
            known_environment(&environments, env, || format!("gates.{env}"))?;
            gates.environments.insert(
                env.clone(),
                app::domain::gates::EnvironmentGates {
                    required_checks: g
                        .required_checks
                        .as_deref()
                        .map(|c| check_names(c, &format!("gates.{env}.required_checks")))
                        .transpose()?,
                    soak_minutes: app::domain::gates::parse_soak_minutes(
                        g.soak_minutes.unwrap_or(0),
                    )
                    .map_err(|e| anyhow::anyhow!("gates.{env}: {e}"))?,
                    override_by: match &g.override_by {
                        Some(o) => app::domain::gates::OverrideBy::parse(o)
                            .map_err(|e| anyhow::anyhow!("gates.{env}: {e}"))?,
                        None => Default::default(),
                    },
                },
            );
        }
        for a in file.applications {
            let repo = RepoName::parse(&a.repo)?;
            let shortname = match a.shortname {
                Some(s) => Shortname::parse(&s)?,
                None => repo.default_shortname(),
            };
            if applications
                .iter()
                .any(|x: &ApplicationSpec| x.shortname == shortname)
            {
                bail!("two applications have the shortname {shortname:?}");
            }
            for m in &a.manual {
                known_environment(&environments, m, || {
                    format!("application {shortname}: manual")
                })?;
            }
            let argocd_name = a
                .argocd_app
                .clone()
                .unwrap_or_else(|| shortname.as_str().to_owned());
            let image = a.image.clone().unwrap_or_else(|| repo.name().to_owned());
            anyhow::ensure!(
                !argocd_name.is_empty()
                    && argocd_name.len() <= 253
                    && !image.is_empty()
                    && image.len() <= 255,
                "application {shortname}: argocd_app and image must not be empty"
            );
            if argocd_apps
                .insert(argocd_name.clone(), (shortname.as_str().to_owned(), image))
                .is_some()
            {
                bail!("two applications have the Argo CD name {argocd_name:?}");
            }
            if let Some(p) = &a.version_pattern {
                regex::Regex::new(&format!("^(?:{p})$")).with_context(|| {
                    format!("application {shortname}: version_pattern is not a regular expression")
                })?;
                version_patterns.insert(shortname.as_str().to_owned(), p.clone());
            }
            let mut app_gates = app::domain::gates::ApplicationGates {
                required_checks: a
                    .required_checks
                    .as_deref()
                    .map(|c| check_names(c, &format!("application {shortname}: required_checks")))
                    .transpose()?,
                ..Default::default()
            };
            for (env, minutes) in &a.soak_minutes {
                known_environment(&environments, env, || {
                    format!("application {shortname}: soak_minutes")
                })?;
                app_gates.soak_minutes.insert(
                    env.clone(),
                    app::domain::gates::parse_soak_minutes(*minutes)
                        .map_err(|e| anyhow::anyhow!("application {shortname}: {e}"))?,
                );
            }
            if app_gates != Default::default() {
                gates
                    .applications
                    .insert(shortname.as_str().to_owned(), app_gates);
            }
            let workflow = a.workflow.unwrap_or_else(|| "deploy.yml".into());
            if workflow.is_empty()
                || workflow.contains('/')
                || !(workflow.ends_with(".yml") || workflow.ends_with(".yaml"))
            {
                bail!("application {shortname}: workflow must be a file name ending in .yml or .yaml, got {workflow:?}");
            }
            applications.push(ApplicationSpec {
                name: a.name.unwrap_or_else(|| repo.name().to_owned()),
                shortname,
                repo,
                default_branch: a.default_branch.unwrap_or_else(|| "main".into()),
                workflow,
                team: a.team.unwrap_or_default(),
                notes: a.notes.unwrap_or_default(),
                manual_environments: a.manual,
            });
        }
        let github = match file.github {
            Some(g) => {
                let mut deployments = std::collections::HashMap::new();
                for (env, r) in g.deployments {
                    known_environment(&environments, &env, || format!("github.deployments.{env}"))?;
                    if let Some(u) = &r.environment_url {
                        anyhow::ensure!(
                            u.starts_with("https://") || u.starts_with("http://"),
                            "github.deployments.{env}.environment_url must be an http(s) URL"
                        );
                    }
                    deployments.insert(
                        env,
                        ReportSettings {
                            report_to_github: r.report_to_github.unwrap_or(true),
                            environment_url: r.environment_url,
                        },
                    );
                }
                if let Some(a) = &g.app {
                    anyhow::ensure!(
                        a.id > 0 && a.installation_id.is_none_or(|i| i > 0),
                        "github.app: id and installation_id are GitHub's positive ids"
                    );
                }
                Some(GitHubSettings {
                    client_id: g.client_id,
                    web_url: g.web_url.unwrap_or_else(|| "https://github.com".into()),
                    api_url: g.api_url.unwrap_or_else(|| "https://api.github.com".into()),
                    scopes: g
                        .scopes
                        .unwrap_or_else(|| vec!["read:org".into(), "repo".into()]),
                    reports: DeploymentReports {
                        app: g.app.map(|a| GitHubApp {
                            id: a.id,
                            installation_id: a.installation_id,
                        }),
                        environments: deployments,
                    },
                })
            }
            None => None,
        };
        let access = match file.access {
            Some(a) => {
                anyhow::ensure!(
                    !a.org.trim().is_empty(),
                    "access.org must name the GitHub organisation"
                );
                let mut deployers = Vec::new();
                for (env, entries) in &a.deployers {
                    known_environment(&environments, env, || format!("access.deployers.{env}"))?;
                    deployers.push((env.clone(), entries.clone()));
                }
                deployers
                    .sort_by_key(|(env, _)| environments.names().iter().position(|n| n == env));
                let refresh_minutes = a.refresh_minutes.unwrap_or(15);
                anyhow::ensure!(
                    (0..=15).contains(&refresh_minutes),
                    "access.refresh_minutes must be 0 to 15"
                );
                Access {
                    org: a.org,
                    admins: a.admins,
                    deployers,
                    refresh_minutes,
                }
            }
            None => {
                anyhow::ensure!(
                    github.is_none(),
                    "[github] needs [access] with the organisation whose members may sign in"
                );
                Access {
                    refresh_minutes: 15,
                    ..Access::default()
                }
            }
        };
        let session = match file.session {
            Some(s) => SessionSettings {
                idle_minutes: s.idle_minutes.unwrap_or(8 * 60).max(1),
                absolute_hours: s.absolute_hours.unwrap_or(24).max(1),
            },
            None => SessionSettings::default(),
        };
        if let Some(u) = &file.public_url {
            anyhow::ensure!(
                u.starts_with("http://") || u.starts_with("https://"),
                "public_url must start with http:// or https://"
            );
        }
        let argo = environment_urls(&environments, "argo", file.argo)?;
        let argocd = environment_urls(&environments, "argocd", file.argocd)?;
        let stall_minutes = file
            .deploys
            .as_ref()
            .and_then(|d| d.stall_minutes)
            .unwrap_or(30);
        let version_pattern = file
            .deploys
            .as_ref()
            .and_then(|d| d.version_pattern.clone());
        if let Some(p) = &version_pattern {
            regex::Regex::new(&format!("^(?:{p})$"))
                .context("[deploys] version_pattern is not a regular expression")?;
        }
        let drift_grace_seconds = file
            .deploys
            .as_ref()
            .and_then(|d| d.drift_grace_seconds)
            .unwrap_or(600);
        anyhow::ensure!(
            (0..=7 * 24 * 3600).contains(&drift_grace_seconds),
            "deploys.drift_grace_seconds must be 0 to 604800"
        );
        anyhow::ensure!(
            stall_minutes >= 1,
            "deploys.stall_minutes must be at least 1"
        );
        let mut limits = Limits::default();
        if let Some(l) = file.limits {
            if let Some(n) = l.max_connections {
                anyhow::ensure!(
                    (16..=1_000_000).contains(&n),
                    "limits.max_connections must be 16 to 1000000"
                );
                limits.max_connections = n;
            }
            if let Some(n) = l.live_streams_per_person {
                anyhow::ensure!(
                    (1..=100_000).contains(&n),
                    "limits.live_streams_per_person must be 1 to 100000"
                );
                limits.live_streams_per_session = n;
            }
            if let Some(n) = l.sign_ins_per_minute {
                anyhow::ensure!(
                    (1..=100_000).contains(&n),
                    "limits.sign_ins_per_minute must be 1 to 100000"
                );
                limits.auth_per_minute = n;
            }
        }
        let default_owner = match file.default_owner {
            Some(o) => {
                RepoName::parse(&format!("{o}/x"))
                    .map_err(|_| anyhow::anyhow!("default_owner {o:?} is not a GitHub owner (letters, digits, single hyphens)"))?;
                Some(o)
            }
            None if !access.org.is_empty() => Some(access.org.clone()),
            None => {
                let mut owners: Vec<&str> = applications.iter().map(|a| a.repo.owner()).collect();
                owners.sort_unstable();
                owners.dedup();
                match owners.as_slice() {
                    [one] => Some(one.to_string()),
                    _ => None,
                }
            }
        };
        let alerts = match file.alerts {
            Some(a) => parse_alerts(a)?,
            None => AlertConfig::default(),
        };
        Ok(Self {
            argocd,
            argocd_apps,
            version_pattern,
            version_patterns,
            gates,
            alerts,
            default_owner,
            limits,
            environments,
            applications,
            public_url: file.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            github,
            access,
            session,
            argo,
            stall_minutes,
            drift_grace_seconds,
        })
    }
}

/// Check names from configuration, each parsed; the first bad one is an error naming it
/// and where it is.
fn check_names(names: &[String], place: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(
            app::domain::gates::parse_check_name(n).map_err(|e| anyhow::anyhow!("{place}: {e}"))?,
        );
    }
    anyhow::ensure!(out.len() <= 100, "{place}: at most 100 checks");
    Ok(out)
}

/// `env` must be one of the pipeline's environments; the error says where the file named it.
fn known_environment(
    environments: &Environments,
    env: &str,
    place: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    environments.parse(env).with_context(place)?;
    Ok(())
}

/// `[argo.<env>]` or `[argocd.<env>]`: each environment one of the pipeline's, each URL
/// http(s), kept without its trailing `/`.
fn environment_urls(
    environments: &Environments,
    section: &str,
    urls: std::collections::HashMap<String, FileArgo>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (env, a) in urls {
        known_environment(environments, &env, || format!("{section}.{env}"))?;
        anyhow::ensure!(
            a.url.starts_with("http://") || a.url.starts_with("https://"),
            "{section}.{env}.url must be an http(s) URL"
        );
        out.push((env, a.url.trim_end_matches('/').to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example Kubernetes ConfigMap's release.toml is a configuration Release accepts.
    #[test]
    fn the_kubernetes_example_configuration_parses() {
        let yaml = include_str!("../deploy/kubernetes/configmap.yaml");
        let toml: String = yaml
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("release.toml: |"))
            .skip(1)
            .map(|l| l.strip_prefix("    ").unwrap_or(l.trim()))
            .collect::<Vec<_>>()
            .join("\n");
        let c = Config::parse(&toml).expect("the example parses");
        assert_eq!(c.applications.len(), 1);
        assert_eq!(c.gates.soak_minutes("frontend", "production"), 30);
        assert!(c.gates.checks_on("frontend", "production"));
    }

    #[test]
    fn gates_are_checked_at_startup() {
        let ok = Config::parse(
            "[gates.staging]\nrequired_checks = [\"test\", \"lint\"]\nsoak_minutes = 30\noverride = \"admins\"\n[[applications]]\nrepo = \"a/b\"\nrequired_checks = [\"build\"]\nsoak_minutes = { production = 60 }\n",
        )
        .unwrap();
        assert_eq!(ok.gates.soak_minutes("b", "staging"), 30);
        assert_eq!(ok.gates.soak_minutes("b", "production"), 60);
        assert_eq!(
            ok.gates.override_by("staging"),
            app::domain::gates::OverrideBy::Admins
        );
        assert_eq!(
            ok.gates.configured_checks("b", "staging", false),
            vec!["build", "lint", "test"]
        );
        assert_eq!(
            ok.gates.configured_checks("b", "staging", true),
            vec!["lint", "test"]
        );
        for (bad, says) in [
            ("[gates.qa]\nsoak_minutes = 1\n", "gates.qa"),
            (
                "[gates.staging]\nsoak_minutes = 10081\n",
                "soak_minutes must be 0 to 10080",
            ),
            (
                "[gates.staging]\nsoak_minutes = -1\n",
                "soak_minutes must be 0 to 10080",
            ),
            (
                "[gates.staging]\nrequired_checks = [\"\"]\n",
                "gates.staging.required_checks",
            ),
            (
                "[gates.staging]\nrequired_checks = [\"a\\u0007\"]\n",
                "is not a check name",
            ),
            (
                "[gates.staging]\noverride = \"everyone\"\n",
                "override must be",
            ),
            (
                "[gates.staging]\nrequired_check = [\"test\"]\n",
                "unknown field `required_check`",
            ),
            (
                "[[applications]]\nrepo = \"a/b\"\nsoak_minutes = { qa = 5 }\n",
                "soak_minutes",
            ),
            (
                "[[applications]]\nrepo = \"a/b\"\nsoak_minutes = { production = 20000 }\n",
                "soak_minutes must be",
            ),
        ] {
            let err = format!("{:#}", Config::parse(bad).expect_err(bad));
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn parses_a_full_file() {
        let c = Config::parse(
            r##"
            environments = ["integration", "staging", "production"]
            [[applications]]
            name = "Content Store"
            repo = "alphagov/content-store"
            team = "#publishing"
            manual = ["production"]
            "##,
        )
        .unwrap();
        assert_eq!(c.applications[0].shortname.as_str(), "content-store");
        assert_eq!(c.applications[0].manual_environments, vec!["production"]);
        assert_eq!(c.applications[0].workflow, "deploy.yml");
        // The one owner among the declared applications.
        assert_eq!(c.default_owner.as_deref(), Some("alphagov"));
    }

    #[test]
    fn the_default_owner() {
        let owner = |text: &str| Config::parse(text).unwrap().default_owner;
        assert_eq!(
            owner("default_owner = \"govuk\"\n[access]\norg = \"alphagov\""),
            Some("govuk".into())
        );
        assert_eq!(
            owner("[access]\norg = \"alphagov\""),
            Some("alphagov".into())
        );
        assert_eq!(
            owner("[[applications]]\nrepo = \"a/x\"\n[[applications]]\nrepo = \"b/y\""),
            None
        );
        assert_eq!(owner(""), None);
        assert!(Config::parse("default_owner = \"not/an owner\"").is_err());
    }

    #[test]
    fn alert_receivers() {
        let c = Config::parse(
            "[alerts]\nretry_first_seconds = 0.5\n[[alerts.receivers]]\nname = \"deploy-alerts\"\nkind = \"slack\"\nteams = [\"#publishing\"]\nevents = [\"deployment_failed\"]\n[[alerts.receivers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://example.org/hook\"",
        )
        .unwrap();
        assert_eq!(c.alerts.receivers.len(), 2);
        assert_eq!(c.alerts.receivers[0].env_suffix(), "DEPLOY_ALERTS");
        assert_eq!(c.alerts.retry_first, std::time::Duration::from_millis(500));
        let bad = |t: &str| Config::parse(&format!("[[alerts.receivers]]\n{t}")).is_err();
        assert!(bad("name = \"x\"\nkind = \"email\""));
        assert!(bad("name = \"Bad Name\"\nkind = \"slack\""));
        assert!(bad("name = \"x\"\nkind = \"slack\"\nurl = \"ftp://x\""));
        assert!(bad(
            "name = \"x\"\nkind = \"slack\"\nevents = [\"everything\"]"
        ));
    }

    #[test]
    fn refuses_mistakes() {
        assert!(Config::parse("environments = []").is_err());
        assert!(Config::parse("[[applications]]\nrepo = \"nope\"").is_err());
        assert!(Config::parse("[[applications]]\nrepo = \"a/b\"\nmanual = [\"prod\"]").is_err());
        assert!(Config::parse("unknown = 1").is_err());
        assert!(Config::parse(
            "[[applications]]\nrepo = \"a/b\"\n[[applications]]\nrepo = \"c/b\""
        )
        .is_err());
    }
}

/// Limits that keep one client (or many) from exhausting the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection must send its request headers within this time, or it is closed.
    pub header_read_timeout: Duration,
    /// A request (other than a live stream) must be answered within this time: 503 after.
    pub request_timeout: Duration,
    /// Open connections at most; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Live-update streams one person may hold open at once (all their sessions
    /// together): 429 beyond.
    pub live_streams_per_session: usize,
    /// How often a live stream checks that its session still exists.
    pub live_session_check: Duration,
    /// Sign-in requests per client address: a burst, then this many per minute.
    pub auth_per_minute: u32,
    /// Failed bearer tokens per client address: a burst, then this many per minute.
    pub bad_tokens_per_minute: u32,
    /// A call to GitHub or Argo (Deploy, Resubmit, preview) gives up after this long.
    pub outside_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 768,
            live_streams_per_session: 8,
            live_session_check: Duration::from_secs(10),
            auth_per_minute: 30,
            bad_tokens_per_minute: 20,
            outside_timeout: app::pipeline::TIMEOUT,
        }
    }
}
