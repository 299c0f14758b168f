//! Deploy alerts out: Slack incoming webhooks (Block Kit) and signed generic webhooks.
//!
//! The outbox lives in the database (`app::store` writes an alert in the transaction of
//! the change that causes it). This sender runs in a task of its own: it fans new alerts
//! out to the receivers whose teams match, claims due deliveries with a lease, sends each
//! with a 10 s timeout, and on failure retries with exponential backoff (doubling from
//! `retry_first_seconds`, at most an hour apart) until `give_up_hours` after the alert.
//! A slow or dead receiver costs this task time, never a request's. Delivery is at least
//! once: a server killed after sending and before recording it sends it again.

use app::crypto::Secret;
use app::domain::{AlertEvent, AlertKind, AlertReceiverInfo};
use app::store::{AlertRoute, Delivery, Store};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// How a receiver is sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    /// A Slack incoming webhook: a Block Kit message.
    Slack,
    /// Any HTTPS endpoint: our JSON, signed with the receiver's secret.
    Webhook,
}

impl ReceiverKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiverKind::Slack => "slack",
            ReceiverKind::Webhook => "webhook",
        }
    }
}

/// A receiver ready to send to: URL and secret resolved.
#[derive(Clone, Debug)]
pub struct Receiver {
    /// Its name, and the teams and events it takes.
    pub route: AlertRoute,
    pub kind: ReceiverKind,
    /// A Slack incoming webhook's URL is its credential.
    pub url: Secret,
    /// The webhook's HMAC key (`X-Release-Signature-256`); none for Slack.
    pub secret: Option<Secret>,
}

impl Receiver {
    pub fn info(&self) -> AlertReceiverInfo {
        AlertReceiverInfo {
            name: self.route.name.clone(),
            kind: self.kind.as_str().to_owned(),
            teams: self.route.teams.clone(),
            events: self
                .route
                .kinds
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
        }
    }
}

/// The sender's settings.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    pub receivers: Vec<Receiver>,
    pub retry_first: Duration,
    pub give_up_after: Duration,
    /// How often the outbox is looked at.
    pub poll: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            receivers: vec![],
            retry_first: Duration::from_secs(10),
            give_up_after: Duration::from_secs(24 * 3600),
            poll: Duration::from_secs(1),
        }
    }
}

/// Ended deliveries are kept this long (after the give-up time) for admins to read.
const KEEP: Duration = Duration::from_secs(14 * 24 * 3600);

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// A claimed delivery is someone else's to send once this has passed (twice the send
/// timeout: a server killed mid-send delays the retry by this much at most).
const LEASE: Duration = Duration::from_secs(20);

/// The wait before attempt `attempts + 1`, after `attempts` failures (1, 2, ...).
pub fn backoff(first: Duration, attempts: i64) -> Duration {
    let doublings = attempts.clamp(1, 30) as u32 - 1;
    first
        .checked_mul(2u32.saturating_pow(doublings))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// Starts the sender. `public_url` is where links in messages point.
pub fn spawn_sender(
    store: Store,
    settings: Arc<AlertSettings>,
    public_url: String,
    stall_ms: i64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = match app::pipeline::outside_client(
            "Release-Alerts",
            Some(Duration::from_secs(10)),
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "alerts: no HTTP client; alerts stay in the outbox");
                return;
            }
        };
        let routes: Vec<AlertRoute> = settings.receivers.iter().map(|r| r.route.clone()).collect();
        let names: Vec<String> = settings
            .receivers
            .iter()
            .map(|r| r.route.name.clone())
            .collect();
        let mut failing = false;
        let mut last_stall_check = tokio::time::Instant::now() - Duration::from_secs(3600);
        let mut last_prune = tokio::time::Instant::now() - Duration::from_secs(2 * 3600);
        loop {
            if store.pool().is_closed() {
                return;
            }
            let round = async {
                if last_stall_check.elapsed() >= Duration::from_secs(30) {
                    last_stall_check = tokio::time::Instant::now();
                    store.alert_stalled_deploys(stall_ms).await?;
                }
                if last_prune.elapsed() >= Duration::from_secs(3600) {
                    last_prune = tokio::time::Instant::now();
                    let keep = KEEP.as_millis() as i64 + settings.give_up_after.as_millis() as i64;
                    store.prune_alerts(app::store::now_ms() - keep).await?;
                    store.prune_github(app::store::now_ms() - keep).await?;
                }
                store.fan_out_alerts(&routes).await?;
                let due = store
                    .claim_due_deliveries(
                        &names,
                        LEASE.as_millis() as i64,
                        20,
                        settings.give_up_after.as_millis() as i64,
                    )
                    .await?;
                let sends = due
                    .into_iter()
                    .map(|d| deliver(&store, &http, &settings, &public_url, d));
                for r in futures::future::join_all(sends).await {
                    r?;
                }
                Ok::<(), app::store::StoreError>(())
            };
            match round.await {
                Ok(()) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "alerts: the outbox could not be read or written; retrying");
                }
                Err(_) => {}
            }
            tokio::time::sleep(settings.poll).await;
        }
    })
}

/// Sends one delivery and records the attempt.
async fn deliver(
    store: &Store,
    http: &reqwest::Client,
    settings: &AlertSettings,
    public_url: &str,
    d: Delivery,
) -> Result<(), app::store::StoreError> {
    let Some(receiver) = settings
        .receivers
        .iter()
        .find(|r| r.route.name == d.receiver)
    else {
        return store
            .record_delivery_attempt(
                d.id,
                d.lease_until,
                None,
                Some("no receiver of this name is configured any more"),
                None,
            )
            .await;
    };
    let (status, error) = match send(http, receiver, public_url, d.id, &d.event).await {
        Ok(status) => (Some(status), None),
        Err((status, e)) => (status, Some(e)),
    };
    let next = error.as_ref().and_then(|_| {
        let now = app::store::now_ms();
        let at = now + backoff(settings.retry_first, d.attempts + 1).as_millis() as i64;
        (at - d.created_at_ms <= settings.give_up_after.as_millis() as i64).then_some(at)
    });
    match &error {
        Some(e) if next.is_none() => {
            tracing::warn!(receiver = %receiver.route.name, delivery = d.id, error = %e, "alerts: giving up on a delivery")
        }
        Some(e) => {
            tracing::info!(receiver = %receiver.route.name, delivery = d.id, error = %e, "alerts: delivery failed; will retry")
        }
        None => {}
    }
    store
        .record_delivery_attempt(d.id, d.lease_until, status, error.as_deref(), next)
        .await
}

/// One POST. Ok with the status for a 2xx; else the status (if any) and why.
async fn send(
    http: &reqwest::Client,
    r: &Receiver,
    public_url: &str,
    delivery_id: i64,
    event: &AlertEvent,
) -> Result<u16, (Option<u16>, String)> {
    let body = match r.kind {
        ReceiverKind::Slack => slack_message(event, public_url),
        ReceiverKind::Webhook => webhook_body(event, public_url, delivery_id),
    };
    let body = serde_json::to_vec(&body).map_err(|e| (None, e.to_string()))?;
    let mut req = http
        .post(r.url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    if r.kind == ReceiverKind::Webhook {
        req = req
            .header(
                "X-Release-Event",
                event.kind.map_or("unknown", |k| k.as_str()),
            )
            .header("X-Release-Delivery", delivery_id.to_string());
        if let Some(secret) = &r.secret {
            req = req.header("X-Release-Signature-256", signature(secret.expose(), &body));
        }
    }
    let resp = req.body(body).send().await.map_err(|e| {
        let why = if e.is_timeout() {
            "timed out after 10 s".to_string()
        } else if e.is_connect() {
            "could not connect".to_string()
        } else {
            // Without the URL: a Slack webhook URL is a secret.
            format!("request failed: {}", e.without_url())
        };
        (None, why)
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    // The first 200 bytes of the answer are enough to say why.
    let head = crate::outbound::body_head(resp, 200).await;
    // Printable only: the answer is stored and logged, and must not forge a log line.
    let text = app::domain::outside_text::printable(&String::from_utf8_lossy(&head), 200);
    Err((
        Some(status.as_u16()),
        format!("HTTP {}: {text}", status.as_u16()),
    ))
}

/// `sha256=` and the hex HMAC-SHA256 of the body with the receiver's secret, as GitHub
/// signs its webhooks (`X-Hub-Signature-256`).
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Links into Release: the application's page, and the deployment on it (where its
/// Resubmit button is).
fn links(event: &AlertEvent, public_url: &str) -> (Option<String>, Option<String>) {
    let Some(app) = &event.application else {
        return (None, None);
    };
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let segment = percent_encoding::utf8_percent_encode(app, SEGMENT);
    let page = format!("{public_url}/applications/{segment}");
    let deployment = event
        .deployment_id
        .map(|id| format!("{page}#deployment-{id}"));
    (Some(page), deployment)
}

/// Only http(s) links go into a message (a pipeline-supplied URL is not trusted).
fn safe_url(u: &Option<String>) -> Option<&str> {
    u.as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .filter(|u| {
            !u.chars()
                .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == '|')
        })
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` only (so `<!channel>` in a pipeline message
/// stays text and mentions nobody).
fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Block Kit message for Slack: a headline, the details, and buttons to Release and
/// to the workflow.
pub fn slack_message(event: &AlertEvent, public_url: &str) -> serde_json::Value {
    use serde_json::json;
    let (page, deployment) = links(event, public_url);
    let mut headline = format!("*{}*", mrkdwn(&event.summary()));
    if event.kind == Some(AlertKind::Digest) {
        // The digest is the message: its lines after the first (the headline), whole
        // lines up to Slack's 3,000 characters a section, then how many more there are.
        let rest = event.message.as_deref().unwrap_or("");
        let lines: Vec<&str> = rest.lines().skip(1).collect();
        let mut shown = 0;
        for line in &lines {
            let line = mrkdwn(line);
            if headline.len() + line.len() + 1 > 2_800 {
                break;
            }
            headline.push('\n');
            headline.push_str(&line);
            shown += 1;
        }
        if shown < lines.len() {
            headline.push_str(&format!(
                "\n…and {} more lines: {}",
                lines.len() - shown,
                public_url.trim_end_matches('/')
            ));
        }
    } else if let Some(m) = &event.message {
        let m: String = m.chars().take(500).collect();
        headline.push_str(&format!("\n>{}", mrkdwn(&m).replace('\n', "\n>")));
    }
    let mut blocks = vec![json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": headline, "verbatim": true}
    })];
    let mut context = vec![format!(
        "Release · `{}`",
        event.kind.map_or("unknown", |k| k.as_str())
    )];
    if let Some(by) = &event.actor {
        context.push(format!("by {}", mrkdwn(by)));
    }
    context.push(format!(
        "<!date^{}^{{date_short_pretty}} {{time}}|{}>",
        event.at_ms / 1000,
        chrono::DateTime::from_timestamp_millis(event.at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    ));
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": context.join(" · "), "verbatim": true}]
    }));
    let mut buttons = Vec::new();
    if event.kind == Some(AlertKind::DeploymentFailed) {
        if let Some(url) = &deployment {
            buttons.push(json!({
                "type": "button", "style": "danger",
                "text": {"type": "plain_text", "text": "Resubmit in Release"},
                "url": url
            }));
        }
    } else if let Some(url) = &page {
        buttons.push(json!({
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in Release"},
            "url": url
        }));
    }
    if let Some(url) = safe_url(&event.workflow_url) {
        buttons.push(json!({
            "type": "button",
            "text": {"type": "plain_text", "text": "View workflow"},
            "url": url
        }));
    }
    if !buttons.is_empty() {
        blocks.push(json!({"type": "actions", "elements": buttons}));
    }
    json!({"text": mrkdwn(&event.summary()), "blocks": blocks})
}

/// The generic webhook's body: the event's facts, a one-line text, and links.
pub fn webhook_body(event: &AlertEvent, public_url: &str, delivery_id: i64) -> serde_json::Value {
    use serde_json::json;
    let (page, deployment) = links(event, public_url);
    json!({
        "event": event.kind.map_or("unknown", |k| k.as_str()),
        "delivery_id": delivery_id,
        "text": event.summary(),
        "application": event.application,
        "environment": event.environment,
        "version": event.version,
        "deployment_id": event.deployment_id,
        "stage": event.stage,
        "message": event.message,
        "workflow_url": safe_url(&event.workflow_url),
        "actor": event.actor,
        "behind": event.behind,
        "at": chrono::DateTime::from_timestamp_millis(event.at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "links": {"application": page, "deployment": deployment},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_digest_is_cut_at_a_line_and_says_how_many_more() {
        let mut e = AlertEvent::new(AlertKind::Digest, 0);
        let lines: Vec<String> = (0..300)
            .map(|i| format!("• App {i}: v2 in staging waits <for> production"))
            .collect();
        e.message = Some(format!(
            "Release digest for #a, Monday\n\n{}",
            lines.join("\n")
        ));
        let m = slack_message(&e, "https://release.example");
        let text = m["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(text.chars().count() <= 3_000, "{}", text.len());
        assert!(text.starts_with("*Release digest for #a, Monday*\n\n• App 0: v2 in staging waits &lt;for&gt; production\n"));
        let shown = text.matches("• App").count();
        assert!(
            text.ends_with(&format!(
                "…and {} more lines: https://release.example",
                300 - shown
            )),
            "{text}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let first = Duration::from_secs(10);
        assert_eq!(backoff(first, 1), Duration::from_secs(10));
        assert_eq!(backoff(first, 2), Duration::from_secs(20));
        assert_eq!(backoff(first, 5), Duration::from_secs(160));
        assert_eq!(backoff(first, 20), MAX_BACKOFF);
        assert_eq!(backoff(first, i64::MAX), MAX_BACKOFF);
    }

    #[test]
    fn signature_is_githubs() {
        // GitHub's documented example: secret "It's a Secret to Everybody",
        // payload "Hello, World!".
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn hostile_text_mentions_nobody_and_links_nowhere() {
        let mut e = AlertEvent::new(AlertKind::DeploymentFailed, 0);
        e.application = Some("frontend".into());
        e.message = Some("<!channel> see <https://evil.example|here> & more".into());
        e.version = Some("<!here>".into());
        e.workflow_url = Some("javascript:alert(1)".into());
        let m = slack_message(&e, "https://release.example").to_string();
        assert!(!m.contains("<!channel>") && !m.contains("<!here>"), "{m}");
        assert!(m.contains("&lt;!channel&gt;"), "{m}");
        assert!(!m.contains("javascript:"), "{m}");
    }
}
