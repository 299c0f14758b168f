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

/// Why Argo CD's state could not be read: each cell of the environment says it ("live
/// state unknown"), and the log says it once per outage. Argo CD's own words are kept
/// printable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArgoCdError {
    #[error("bad Argo CD URL: {0}")]
    BadUrl(String),
    #[error("Argo CD did not answer within 10 s")]
    Timeout,
    #[error("Argo CD unreachable: {0}")]
    Unreachable(String),
    #[error("{reason} (check {variable})")]
    TokenRefused { reason: String, variable: String },
    #[error("{0}")]
    Refused(String),
    #[error("Argo CD's list is over {0} MiB")]
    TooLarge(usize),
    #[error("reading Argo CD's answer: {0}")]
    Broken(String),
    #[error("Argo CD's list is not JSON we know: {0}")]
    NotJson(String),
    #[error("reading Release's applications: {0}")]
    Store(String),
    #[error("watch refused: {0}")]
    WatchRefused(String),
    #[error("Argo CD ended the watch: {message} (grpc code {grpc_code}, HTTP {http_code})")]
    StreamEnded {
        message: String,
        grpc_code: i64,
        http_code: i64,
    },
}

/// One environment's Argo CD.
#[derive(Clone, Debug)]
pub struct ArgoCd {
    pub environment: String,
    /// Without a trailing slash.
    pub url: String,
    pub token: app::crypto::Secret,
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

/// Only what Release reads of a list (Argo CD's own field filter: `items.<key>` from its
/// fixed list of selectable fields; `status.summary`, not `status.summary.images`).
const LIST_FIELDS: &str = "items.metadata.name,items.status.summary,items.status.health,items.status.sync.status,items.status.operationState.phase";

/// Reads a list answer from its chunks as they arrive: the applications among `ours`
/// only, each parsed into the few fields read and the rest dropped as it is read.
fn parse_list(
    reader: impl std::io::Read,
    ours: &std::collections::HashSet<String>,
) -> Result<Vec<Application>, ArgoCdError> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let list = ListSeed { ours }
        .deserialize(&mut de)
        .map_err(|e| ArgoCdError::NotJson(e.to_string()))?;
    de.end().map_err(|e| ArgoCdError::NotJson(e.to_string()))?;
    Ok(list)
}

/// `std::io::Read` over a body's chunks, received as they arrive (for a blocking task).
struct Chunks {
    rx: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl std::io::Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.current = c,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// `{"metadata": ..., "items": [...] | null}`: the items among `ours`.
struct ListSeed<'a> {
    ours: &'a std::collections::HashSet<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ListSeed<'_> {
    type Value = Vec<Application>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ListSeed<'_> {
    type Value = Vec<Application>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an application list")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "items" {
                out = map.next_value_seed(ItemsSeed { ours: self.ours })?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(out)
    }
}

/// The items: each read into an `Application` (or skipped when it is not one), kept only
/// when it is ours.
struct ItemsSeed<'a> {
    ours: &'a std::collections::HashSet<String>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Vec<Application>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ItemsSeed<'_> {
    type Value = Vec<Application>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of applications, or null")
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<MaybeApplication>()? {
            if let MaybeApplication::App(a) = item {
                if self.ours.contains(&a.metadata.name) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }
}

/// One item: an application we can read, or anything else (skipped).
#[derive(Deserialize)]
#[serde(untagged)]
enum MaybeApplication {
    App(Application),
    Other(serde::de::IgnoredAny),
}

/// A watch line that ends the stream (grpc-gateway's error chunk).
#[derive(Debug, Deserialize)]
struct StreamError {
    grpc_code: Option<i64>,
    http_code: Option<i64>,
    message: Option<String>,
}

/// The most a list answer may weigh (1,000 applications are a few MiB).
const MAX_LIST: usize = 64 << 20;

#[derive(Debug, Deserialize)]
struct WatchLine {
    result: Option<WatchEvent>,
    error: Option<StreamError>,
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

/// What an app's image says runs, from `status.summary.images` (the sorted union of
/// every pod's images in the app's tree, as Argo CD computes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Running {
    /// One tag, and it is a version.
    Version(String),
    /// More than one tag of the app's image (a rollout in flight, an old pod still
    /// terminating, a leftover job's pod): mid-rollout until one remains. Never chosen
    /// between.
    Rolling(Vec<String>),
    /// A tag that is not a version (`latest`, `main`, `stable`): what runs is not known.
    NotAVersion(String),
    /// The image by digest only (`image@sha256:...`).
    DigestOnly,
    /// The app's image is not among its pods' (none running, or another image name).
    Absent,
}

impl Running {
    /// The version, when there is exactly one.
    pub fn version(&self) -> Option<String> {
        match self {
            Running::Version(v) => Some(v.clone()),
            _ => None,
        }
    }

    /// What a person is told when no version can be read.
    pub fn note(&self) -> Option<String> {
        match self {
            Running::Version(_) | Running::Absent => None,
            Running::Rolling(tags) => Some(format!("rolling out: {}", tags.join(", "))),
            Running::NotAVersion(tag) => Some(format!("tag {tag} is not a version")),
            Running::DigestOnly => Some("runs an image by digest only".into()),
        }
    }
}

/// Which tags are versions: a configured pattern (`[deploys] version_pattern`, or an
/// application's `version_pattern`), or by default any tag with a digit in it that is not
/// one of the usual moving names.
#[derive(Debug, Clone, Default)]
pub struct VersionRule(Option<regex::Regex>);

impl VersionRule {
    /// A pattern the whole tag must match (anchored here).
    pub fn pattern(p: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(&format!("^(?:{p})$")).map(|r| Self(Some(r)))
    }

    pub fn is_version(&self, tag: &str) -> bool {
        match &self.0 {
            Some(r) => r.is_match(tag),
            None => {
                const MOVING: [&str; 14] = [
                    "latest",
                    "main",
                    "master",
                    "stable",
                    "dev",
                    "develop",
                    "edge",
                    "nightly",
                    "head",
                    "current",
                    "next",
                    "canary",
                    "release",
                    "production",
                ];
                tag.chars().any(|c| c.is_ascii_digit())
                    && !MOVING.contains(&tag.to_ascii_lowercase().as_str())
            }
        }
    }
}

/// What runs of `image` among `images` (`registry:port/path/image:tag@digest`), as the
/// pipeline names versions (`release-` trimmed). Only a valid git ref is a version: what
/// Argo CD sends is parsed like anything else from outside.
pub fn running_of(images: &[String], image: &str, rule: &VersionRule) -> Running {
    let mut tags = std::collections::BTreeSet::new();
    let mut digest_only = false;
    for full in images {
        let (without_digest, digest) = match full.split_once('@') {
            Some((i, d)) => (i, Some(d)),
            None => (full.as_str(), None),
        };
        // The last path segment is `name[:tag]` (a registry's port is in an earlier one).
        let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
        let (name, tag) = match last.split_once(':') {
            Some((n, t)) => (n, Some(t)),
            None => (last, None),
        };
        if name != image {
            continue;
        }
        match tag {
            Some(t) => {
                tags.insert(t.strip_prefix("release-").unwrap_or(t).to_owned());
            }
            None if digest.is_some() => digest_only = true,
            // No tag and no digest: the runtime pulls `latest`.
            None => {
                tags.insert("latest".to_owned());
            }
        }
    }
    let shown = |t: &str| app::domain::outside_text::printable(t, 64);
    match tags.len() {
        0 if digest_only => Running::DigestOnly,
        0 => Running::Absent,
        1 => {
            let tag = tags.into_iter().next().unwrap_or_default();
            match GitRef::parse(&tag) {
                Ok(r) if rule.is_version(r.as_str()) => Running::Version(r.as_str().to_owned()),
                _ => Running::NotAVersion(shown(&tag)),
            }
        }
        _ => Running::Rolling(tags.iter().map(|t| shown(t)).collect()),
    }
}

/// The version rules: the default (or `[deploys] version_pattern`) and per application.
#[derive(Debug, Clone, Default)]
pub struct VersionRules {
    pub default: VersionRule,
    /// Shortname -> its own rule.
    pub per_app: HashMap<String, VersionRule>,
}

impl VersionRules {
    /// From `[deploys] version_pattern` and the applications' own (checked when the
    /// configuration was read; a pattern that does not compile here is the default).
    pub fn from_patterns(default: Option<&str>, per_app: &HashMap<String, String>) -> Self {
        let rule = |p: &str| VersionRule::pattern(p).unwrap_or_default();
        Self {
            default: default.map(rule).unwrap_or_default(),
            per_app: per_app.iter().map(|(s, p)| (s.clone(), rule(p))).collect(),
        }
    }

    fn of(&self, shortname: &str) -> &VersionRule {
        self.per_app.get(shortname).unwrap_or(&self.default)
    }
}

/// Keeps a word from Argo CD short and printable (health, sync, phase).
fn word(s: Option<String>, default: &str) -> String {
    s.filter(|w| (1..=40).contains(&w.len()) && w.chars().all(|c| c.is_ascii_alphanumeric()))
        .unwrap_or_else(|| default.to_owned())
}

/// How the observers read what runs: the application map and the version rules.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub apps: AppMap,
    pub rules: VersionRules,
}

/// Starts one observer per configured Argo CD.
pub fn spawn_observers(store: Store, servers: Vec<ArgoCd>, reading: Reading) {
    let http = match app::pipeline::outside_client("Release-ArgoCD-observer", None) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "argocd: no HTTP client; live state is not observed");
            return;
        }
    };
    let reading = std::sync::Arc::new(reading);
    for server in servers {
        let (store, http, reading) = (store.clone(), http.clone(), reading.clone());
        tokio::spawn(async move { observe(store, http, server, reading).await });
    }
}

async fn observe(
    store: Store,
    http: reqwest::Client,
    server: ArgoCd,
    reading: std::sync::Arc<Reading>,
) {
    // One log line per outage (of the list, of the watch), with Argo CD's own words.
    let mut outage: Option<ArgoCdError> = None;
    let mut watch_outage: Option<ArgoCdError> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        if store.pool().is_closed() {
            return;
        }
        let listed = match ours(&store, &reading.apps).await {
            Ok(names) => list(&http, &server, names).await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(items) => {
                if outage.take().is_some() {
                    tracing::info!(environment = %server.environment, "argocd: reachable again");
                }
                // Argo CD answers again: the next watch or list is not held back.
                backoff = Duration::from_secs(1);
                let present: Vec<String> = items.iter().map(|a| a.metadata.name.clone()).collect();
                for a in items {
                    apply(&store, &server, &reading, a).await;
                }
                // An application Argo CD no longer has is "not in Argo CD", not its last
                // state forever.
                if let Err(e) = store.mark_live_absent(&server.environment, &present).await {
                    tracing::warn!(error = %e, "argocd: could not record the applications Argo CD no longer has");
                }
            }
            Err(why) => {
                if outage.is_none() {
                    tracing::warn!(environment = %server.environment, error = %why, "argocd: cannot read the live state; cells say unknown until it answers");
                }
                // Every cell of the environment says why, the latest reason.
                if let Err(e) = store
                    .mark_live_unknown(&server.environment, &why.to_string())
                    .await
                {
                    tracing::warn!(error = %e, "argocd: could not record the outage");
                }
                outage = Some(why);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(POLL);
                continue;
            }
        }
        let opened = tokio::time::Instant::now();
        match watch(&http, &server, &store, &reading).await {
            // The watch ran and ended (Argo CD restarted, a proxy cut it, idle): list
            // again at once if it ran a while, else after the backoff.
            Ok(()) => {
                if watch_outage.take().is_some() {
                    tracing::info!(environment = %server.environment, "argocd: the watch is open again");
                }
                if opened.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                } else {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(POLL);
                }
            }
            // No watch (refused, or Argo CD ended it with an error): list every 30 s
            // meanwhile, and say why once.
            Err(why) => {
                if watch_outage.is_none() {
                    tracing::warn!(environment = %server.environment, error = %why, "argocd: no watch; listing every 30 s until it opens");
                }
                watch_outage = Some(why);
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

fn endpoint(server: &ArgoCd, segments: &[&str]) -> Result<reqwest::Url, ArgoCdError> {
    let mut url =
        reqwest::Url::parse(&server.url).map_err(|e| ArgoCdError::BadUrl(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|_| ArgoCdError::BadUrl("it cannot have a path".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Argo CD's reason in a refusal's body (`{"error": "...", "message": "..."}`, or text),
/// printable and short.
async fn refusal_reason(resp: reqwest::Response) -> String {
    let status = resp.status().as_u16();
    let body = crate::outbound::body_head(resp, 2048).await;
    let v: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let said = v
        .as_ref()
        .and_then(|v| {
            v["message"]
                .as_str()
                .or(v["error"].as_str())
                .or(v["error"]["message"].as_str())
        })
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    format!(
        "Argo CD answered {status}: {}",
        app::domain::outside_text::printable(said.trim(), 200)
    )
}

async fn list(
    http: &reqwest::Client,
    server: &ArgoCd,
    ours: std::collections::HashSet<String>,
) -> Result<Vec<Application>, ArgoCdError> {
    let mut url = endpoint(server, &["api", "v1", "applications"])?;
    url.query_pairs_mut().append_pair("fields", LIST_FIELDS);
    let resp = http
        .get(url)
        .bearer_auth(server.token.expose())
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                ArgoCdError::Timeout
            } else {
                ArgoCdError::Unreachable(e.without_url().to_string())
            }
        })?;
    match resp.status().as_u16() {
        200 => {}
        401 | 403 => {
            return Err(ArgoCdError::TokenRefused {
                reason: refusal_reason(resp).await,
                variable: format!(
                    "RELEASE_ARGOCD_TOKEN_{}",
                    server.environment.to_ascii_uppercase()
                ),
            })
        }
        _ => return Err(ArgoCdError::Refused(refusal_reason(resp).await)),
    }
    // Parsed as it arrives, off the async threads: a few chunks in flight at a time, so
    // a list costs what Release keeps of it, not its size.
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let parser = tokio::task::spawn_blocking(move || {
        parse_list(
            Chunks {
                rx,
                current: bytes::Bytes::new(),
            },
            &ours,
        )
    });
    let mut resp = resp;
    let mut size = 0;
    let mut failed = None;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                size += chunk.len();
                if size > MAX_LIST {
                    failed = Some(ArgoCdError::TooLarge(MAX_LIST >> 20));
                    break;
                }
                // The parser stopped (it found something it cannot read): its error says.
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                failed = Some(ArgoCdError::Broken(e.without_url().to_string()));
                break;
            }
        }
    }
    drop(tx);
    let parsed = parser
        .await
        .map_err(|e| ArgoCdError::Broken(format!("the list's reader stopped: {e}")))?;
    match failed {
        Some(why) => Err(why),
        None => parsed,
    }
}

/// The Argo CD names of the applications that are Release's: the declared ones by their
/// Argo CD name, the others by their shortname.
async fn ours(
    store: &Store,
    apps: &AppMap,
) -> Result<std::collections::HashSet<String>, ArgoCdError> {
    let declared: std::collections::HashSet<&str> =
        apps.0.values().map(|(s, _)| s.as_str()).collect();
    let mut names: std::collections::HashSet<String> = apps.0.keys().cloned().collect();
    let rows = store
        .applications()
        .await
        .map_err(|e| ArgoCdError::Store(e.to_string()))?;
    names.extend(
        rows.into_iter()
            .filter(|a| !declared.contains(a.shortname.as_str()))
            .map(|a| a.shortname),
    );
    Ok(names)
}

/// Follows the watch until it ends (Ok) or cannot be opened or is ended by Argo CD with
/// an error (Err, with Argo CD's message).
async fn watch(
    http: &reqwest::Client,
    server: &ArgoCd,
    store: &Store,
    reading: &Reading,
) -> Result<(), ArgoCdError> {
    let url = endpoint(server, &["api", "v1", "stream", "applications"])?;
    let mut resp = tokio::time::timeout(
        Duration::from_secs(10),
        http.get(url).bearer_auth(server.token.expose()).send(),
    )
    .await
    .map_err(|_| ArgoCdError::Timeout)?
    .map_err(|e| ArgoCdError::Unreachable(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(ArgoCdError::WatchRefused(refusal_reason(resp).await));
    }
    let mut buf: Vec<u8> = Vec::new();
    // Bytes of `buf` already searched for a newline: each byte is looked at once.
    let mut scanned = 0;
    loop {
        let chunk = match tokio::time::timeout(IDLE, resp.chunk()).await {
            Ok(Ok(Some(c))) => Some(c),
            Ok(Ok(None)) | Err(_) => None,
            Ok(Err(e)) => {
                tracing::debug!(error = %e.without_url(), "argocd: the watch broke");
                return Ok(());
            }
        };
        let ended = chunk.is_none();
        if let Some(chunk) = chunk {
            buf.extend_from_slice(&chunk);
        } else {
            // The stream ended: its last line (grpc-gateway's error chunk) has no newline.
            buf.push(b'\n');
        }
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
                Ok(WatchLine { error: Some(e), .. }) => {
                    return Err(ArgoCdError::StreamEnded {
                        message: app::domain::outside_text::printable(
                            e.message.as_deref().unwrap_or("no message"),
                            200,
                        ),
                        grpc_code: e.grpc_code.unwrap_or(0),
                        http_code: e.http_code.unwrap_or(0),
                    })
                }
                Ok(WatchLine {
                    result:
                        Some(WatchEvent {
                            kind,
                            application: Some(a),
                        }),
                    ..
                }) => {
                    if kind.as_deref() == Some("DELETED") {
                        if let Err(e) = store
                            .mark_app_absent(&server.environment, &a.metadata.name)
                            .await
                        {
                            tracing::warn!(error = %e, "argocd: could not record a deleted application");
                        }
                    } else {
                        apply(store, server, reading, a).await
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "argocd: a watch line we do not know"),
            }
        }
        if ended {
            return Ok(());
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

async fn apply(store: &Store, server: &ArgoCd, reading: &Reading, a: Application) {
    let name = a.metadata.name;
    let apps = &reading.apps;
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
    let running = running_of(&images, &image, reading.rules.of(&shortname));
    let o = Observation {
        argocd_app: name,
        version: running.version(),
        note: running.note(),
        health: word(a.status.health.and_then(|h| h.status), "Unknown"),
        sync_status: word(a.status.sync.and_then(|s| s.status), "Unknown"),
        operation_phase: a
            .status
            .operation_state
            .and_then(|o| o.phase)
            .map(|p| word(Some(p), "Unknown")),
    };
    if let Err(e) = store
        .record_observation(&shortname, &server.environment, &o, None)
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
        let rule = VersionRule::default();
        let images = vec![
            "registry.example/govuk/nginx:1.25".to_string(),
            "172025368201.dkr.ecr.eu-west-1.amazonaws.com/github/alphagov/govuk/frontend:release-v301".to_string(),
        ];
        assert_eq!(
            running_of(&images, "frontend", &rule),
            Running::Version("v301".into())
        );
        assert_eq!(running_of(&images, "router", &rule), Running::Absent);
        // A tag with a digest; a registry with a port.
        let sha = vec![
            "localhost:5000/x/router:0a1b2c3d4e5f60718293a4b5c6d7e8f901234567@sha256:abc"
                .to_string(),
        ];
        assert_eq!(
            running_of(&sha, "router", &rule).version().as_deref(),
            Some("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567")
        );
        // Hostile or odd tags are not versions.
        assert_eq!(
            running_of(&["r/x:a b".to_string()], "x", &rule),
            Running::NotAVersion("a b".into())
        );
        assert_eq!(
            running_of(&["r/x".to_string()], "x", &rule),
            Running::NotAVersion("latest".into())
        );
        assert_eq!(word(Some("Healthy".into()), "Unknown"), "Healthy");
        assert_eq!(word(Some("<script>".into()), "Unknown"), "Unknown");
    }

    /// The third review: two tags of one image are a rollout (never chosen by string
    /// order); moving tags are not versions; a digest alone is said.
    #[test]
    fn two_tags_moving_tags_and_digests() {
        let rule = VersionRule::default();
        let two = vec![
            "nginx:release-v300".to_string(),
            "nginx:release-v301".to_string(),
        ];
        assert_eq!(
            running_of(&two, "nginx", &rule),
            Running::Rolling(vec!["v300".into(), "v301".into()])
        );
        let order = vec!["app:v100".to_string(), "app:v99".to_string()];
        assert_eq!(running_of(&order, "app", &rule).version(), None);
        for moving in ["latest", "main", "stable", "master"] {
            assert_eq!(
                running_of(&[format!("reg/app:{moving}")], "app", &rule),
                Running::NotAVersion(moving.into()),
                "{moving}"
            );
        }
        assert_eq!(
            running_of(&["reg/app@sha256:0123".to_string()], "app", &rule),
            Running::DigestOnly
        );
        // A sidecar's other image does not count.
        let side = vec!["envoy:1.30".to_string(), "reg/app:v7".to_string()];
        assert_eq!(
            running_of(&side, "app", &rule),
            Running::Version("v7".into())
        );
        // A configured pattern: only release_NNN.
        let strict = VersionRule::pattern(r"release_\d+").unwrap();
        assert_eq!(
            running_of(&["app:release_455".to_string()], "app", &strict),
            Running::Version("release_455".into())
        );
        assert_eq!(
            running_of(&["app:v1".to_string()], "app", &strict),
            Running::NotAVersion("v1".into())
        );
    }

    /// Argo CD's list, as its server writes it with the field filter: typed item by item;
    /// an item we cannot read is skipped; `items: null` is an empty list.
    #[test]
    fn the_list_is_read_item_by_item() {
        let ours: std::collections::HashSet<String> = ["velero-test", "test-app"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let read = |body: &str| {
            // Cut into small chunks, as a body arrives.
            let (tx, rx) = tokio::sync::mpsc::channel(100_000);
            for c in body.as_bytes().chunks(7) {
                tx.try_send(bytes::Bytes::copy_from_slice(c)).unwrap();
            }
            drop(tx);
            parse_list(
                Chunks {
                    rx,
                    current: bytes::Bytes::new(),
                },
                &ours,
            )
            .unwrap()
        };
        let body = r#"{"metadata":{"resourceVersion":"722811400"},"items":[{"metadata":{"name":"velero-test"},"status":{"health":{"status":"Healthy"},"operationState":{"phase":"Succeeded"},"summary":{"images":["nginx:latest"]},"sync":{"status":"Synced"}}},{"metadata":{"name":7}},{"metadata":{"name":"test-app"},"status":{"health":{},"summary":{},"sync":{"status":""}}}]}"#;
        let items = read(body);
        let names: Vec<&str> = items.iter().map(|a| a.metadata.name.as_str()).collect();
        assert_eq!(names, ["velero-test", "test-app"]);
        // Somebody else's application is not kept.
        let theirs = r#"{"items":[{"metadata":{"name":"not-ours"},"status":{}}],"metadata":{}}"#;
        assert!(read(theirs).is_empty());
        assert!(read(r#"{"metadata":{},"items":null}"#).is_empty());
    }
}
