//! What really runs: one observer per environment follows that environment's Argo CD
//! (`GET /api/v1/stream/applications`, newline-delimited JSON), lists every application
//! first (`GET /api/v1/applications`) and again after every reconnect, with backoff; when
//! the watch cannot be opened it lists every 30 s instead. Each application's running
//! version (its image tag), health, sync status and operation phase go to the store
//! (`Store::record_observation`). Argo CD unreachable or refusing: every cell of that
//! environment becomes "live state unknown since ..." and one line is logged per outage,
//! not per attempt. Two servers observing at once write the same facts; the store makes
//! sure nothing is recorded twice.

use app::domain::GitRef;
use app::store::{Observation, Store};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;

/// One environment's Argo CD.
#[derive(Clone)]
pub struct ArgoCd {
    pub environment: String,
    /// Without a trailing slash.
    pub url: String,
    pub token: String,
}

impl std::fmt::Debug for ArgoCd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgoCd")
            .field("environment", &self.environment)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// How Argo CD applications map to Release's: by Argo CD name, the shortname and the
/// image whose tag is the version. Names not here are looked up as shortnames, with the
/// repo's name as the image.
#[derive(Debug, Clone, Default)]
pub struct AppMap(pub HashMap<String, (String, String)>);

/// Lists again after this long without a watch.
const POLL: Duration = Duration::from_secs(30);
/// A watch silent for this long is reopened (and the list read again).
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
struct List {
    /// Parsed one by one: an item we cannot read is skipped, not the whole list.
    #[serde(default)]
    items: Option<Vec<serde_json::Value>>,
}

/// The most a list answer may weigh (1,000 applications are a few MiB).
const MAX_LIST: usize = 64 << 20;

#[derive(Debug, Deserialize)]
struct WatchLine {
    result: Option<WatchEvent>,
}

#[derive(Debug, Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    application: Option<Application>,
}

#[derive(Debug, Deserialize)]
struct Application {
    metadata: Metadata,
    #[serde(default)]
    status: Status,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
struct Status {
    sync: Option<SyncStatus>,
    health: Option<Health>,
    summary: Option<Summary>,
    #[serde(rename = "operationState")]
    operation_state: Option<OperationState>,
}

#[derive(Debug, Deserialize)]
struct SyncStatus {
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Health {
    status: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Summary {
    #[serde(default)]
    images: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct OperationState {
    phase: Option<String>,
}

/// The tag of `image` among `images` (`registry/path/image:tag`, a digest after `@`
/// ignored), as the pipeline names versions (`release-` trimmed). Only a valid git ref is
/// taken: what Argo CD sends is parsed like anything else from outside.
pub fn version_of(images: &[String], image: &str) -> Option<String> {
    images.iter().find_map(|full| {
        let without_digest = full.split('@').next()?;
        let last = without_digest.rsplit('/').next()?;
        let (name, tag) = last.split_once(':')?;
        if name != image {
            return None;
        }
        let tag = tag.strip_prefix("release-").unwrap_or(tag);
        GitRef::parse(tag).ok().map(|r| r.as_str().to_owned())
    })
}

/// Keeps a word from Argo CD short and printable (health, sync, phase).
fn word(s: Option<String>, default: &str) -> String {
    s.filter(|w| (1..=40).contains(&w.len()) && w.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| default.to_owned())
}

/// Starts one observer per configured Argo CD.
pub fn spawn_observers(store: Store, servers: Vec<ArgoCd>, apps: AppMap) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Release-ArgoCD-observer")
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "argocd: no HTTP client; live state is not observed");
            return;
        }
    };
    let apps = std::sync::Arc::new(apps);
    for server in servers {
        let (store, http, apps) = (store.clone(), http.clone(), apps.clone());
        tokio::spawn(async move { observe(store, http, server, apps).await });
    }
}

async fn observe(
    store: Store,
    http: reqwest::Client,
    server: ArgoCd,
    apps: std::sync::Arc<AppMap>,
) {
    let mut outage: Option<String> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        if store.pool().is_closed() {
            return;
        }
        match list(&http, &server).await {
            Ok(items) => {
                if outage.take().is_some() {
                    tracing::info!(environment = %server.environment, "argocd: reachable again");
                }
                for a in items {
                    apply(&store, &server, &apps, a).await;
                }
            }
            Err(why) => {
                if outage.is_none() {
                    tracing::warn!(environment = %server.environment, error = %why, "argocd: cannot read the live state; cells say unknown until it answers");
                    if let Err(e) = store.mark_live_unknown(&server.environment, &why).await {
                        tracing::warn!(error = %e, "argocd: could not record the outage");
                    }
                }
                outage = Some(why);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(POLL);
                continue;
            }
        }
        let opened = tokio::time::Instant::now();
        match watch(&http, &server, &store, &apps).await {
            // The watch ran and ended (Argo CD restarted, a proxy cut it, idle): list
            // again at once if it ran a while, else after the backoff.
            Ok(()) => {
                if opened.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                } else {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(POLL);
                }
            }
            // No watch (not offered, refused): list every 30 s instead.
            Err(why) => {
                tracing::debug!(environment = %server.environment, error = %why, "argocd: no watch; listing every 30 s");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

fn endpoint(server: &ArgoCd, segments: &[&str]) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(&server.url).map_err(|e| format!("bad Argo CD URL: {e}"))?;
    url.path_segments_mut()
        .map_err(|_| "the Argo CD URL cannot have a path".to_string())?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

async fn list(http: &reqwest::Client, server: &ArgoCd) -> Result<Vec<Application>, String> {
    let url = endpoint(server, &["api", "v1", "applications"])?;
    let resp = http
        .get(url)
        .bearer_auth(&server.token)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "Argo CD did not answer within 10 s".to_string()
            } else {
                format!("Argo CD unreachable: {}", e.without_url())
            }
        })?;
    match resp.status().as_u16() {
        200 => {}
        401 | 403 => {
            return Err(format!(
                "Argo CD refused the token ({}): check RELEASE_ARGOCD_TOKEN_{}",
                resp.status().as_u16(),
                server.environment.to_ascii_uppercase()
            ))
        }
        s => return Err(format!("Argo CD answered {s}")),
    }
    let mut resp = resp;
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading Argo CD's answer: {}", e.without_url()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_LIST {
            return Err(format!("Argo CD's list is over {} MiB", MAX_LIST >> 20));
        }
    }
    let list: List = serde_json::from_slice(&body)
        .map_err(|e| format!("Argo CD's list is not JSON we know: {e}"))?;
    Ok(list
        .items
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// Follows the watch until it ends (Ok) or cannot be opened (Err).
async fn watch(
    http: &reqwest::Client,
    server: &ArgoCd,
    store: &Store,
    apps: &AppMap,
) -> Result<(), String> {
    let url = endpoint(server, &["api", "v1", "stream", "applications"])?;
    let mut resp = tokio::time::timeout(
        Duration::from_secs(10),
        http.get(url).bearer_auth(&server.token).send(),
    )
    .await
    .map_err(|_| "the watch did not open within 10 s".to_string())?
    .map_err(|e| format!("watch: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("watch answered {}", resp.status().as_u16()));
    }
    let mut buf: Vec<u8> = Vec::new();
    // Bytes of `buf` already searched for a newline: each byte is looked at once.
    let mut scanned = 0;
    loop {
        let chunk = match tokio::time::timeout(IDLE, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(error = %e.without_url(), "argocd: the watch broke");
                return Ok(());
            }
        };
        buf.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(at) = buf[scanned..].iter().position(|b| *b == b'\n') {
            let end = scanned + at;
            scanned = end + 1;
            let line = buf[start..end].trim_ascii().to_vec();
            start = end + 1;
            let line = line.as_slice();
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<WatchLine>(line) {
                Ok(WatchLine {
                    result:
                        Some(WatchEvent {
                            kind,
                            application: Some(a),
                        }),
                }) if kind.as_deref() != Some("DELETED") => apply(store, server, apps, a).await,
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "argocd: a watch line we do not know"),
            }
        }
        buf.drain(..start);
        scanned = buf.len();
        // A line longer than 4 MiB is not an application: drop it.
        if buf.len() > 4 << 20 {
            buf.clear();
            scanned = 0;
        }
    }
}

async fn apply(store: &Store, server: &ArgoCd, apps: &AppMap, a: Application) {
    let name = a.metadata.name;
    let (shortname, image) = match apps.0.get(&name) {
        Some((s, i)) => (s.clone(), i.clone()),
        // A declared application is found by its own Argo CD name only: another Argo CD
        // application that happens to bear its shortname is not it.
        None if apps.0.values().any(|(s, _)| *s == name) => return,
        None => match store.application(&name).await {
            Ok(Some(row)) => {
                let image = row.repo.rsplit('/').next().unwrap_or(&row.repo).to_owned();
                (row.shortname, image)
            }
            // Not one of ours.
            _ => return,
        },
    };
    let images = a.status.summary.map(|s| s.images).unwrap_or_default();
    let o = Observation {
        argocd_app: name,
        version: version_of(&images, &image),
        health: word(a.status.health.and_then(|h| h.status), "Unknown"),
        sync_status: word(a.status.sync.and_then(|s| s.status), "Unknown"),
        operation_phase: a
            .status
            .operation_state
            .and_then(|o| o.phase)
            .map(|p| word(Some(p), "Unknown")),
        since_ms: None,
    };
    if let Err(e) = store
        .record_observation(&shortname, &server.environment, &o)
        .await
    {
        tracing::warn!(error = %e, app = %shortname, environment = %server.environment, "argocd: could not record an observation");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_images_tag() {
        let images = vec![
            "registry.example/govuk/nginx:1.25".to_string(),
            "172025368201.dkr.ecr.eu-west-1.amazonaws.com/github/alphagov/govuk/frontend:release-v301".to_string(),
        ];
        assert_eq!(version_of(&images, "frontend").as_deref(), Some("v301"));
        assert_eq!(version_of(&images, "router"), None);
        let sha =
            vec!["ecr/x/router:0a1b2c3d4e5f60718293a4b5c6d7e8f901234567@sha256:abc".to_string()];
        assert_eq!(
            version_of(&sha, "router").as_deref(),
            Some("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567")
        );
        // Hostile or odd tags are not versions.
        assert_eq!(version_of(&["r/x:a b".to_string()], "x"), None);
        assert_eq!(version_of(&["r/x".to_string()], "x"), None);
        assert_eq!(word(Some("Healthy".into()), "Unknown"), "Healthy");
        assert_eq!(word(Some("<script>".into()), "Unknown"), "Unknown");
    }
}
