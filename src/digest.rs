//! The daily digest's clock and sending: once the configured local time has passed
//! (`[alerts] digest_at`, `time_zone`), the day's digest is gathered
//! (`app::actions::digest`), worded per receiver (`app::domain::digest`) and queued in the
//! alert outbox in the transaction that records the day as sent, so two servers never
//! send one day twice (`Store::send_digest`). Receivers with teams only; a receiver with
//! nothing to say gets nothing.

use crate::alerts::AlertSettings;
use crate::configuration::DigestTime;
use app::domain::digest::digest_text;
use app::domain::{AlertEvent, AlertKind};
use app::state::AppState;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;

/// A day's digest is sent up to this long after its time (a server that was down at
/// 09:30 sends it when it is back by the evening; after that the day is skipped).
const LATE: chrono::TimeDelta = chrono::TimeDelta::hours(12);

/// The local day whose digest is due at `now`, if one is.
pub fn due_day(now: DateTime<Utc>, t: DigestTime) -> Option<NaiveDate> {
    let day = now.with_timezone(&t.time_zone).date_naive();
    let local = day.and_time(t.at);
    // A time that does not exist that day (a DST gap) is taken an hour later.
    let at = t
        .time_zone
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            t.time_zone
                .from_local_datetime(&(local + chrono::TimeDelta::hours(1)))
                .earliest()
        })?
        .with_timezone(&Utc);
    let since = now - at;
    (since >= chrono::TimeDelta::zero() && since < LATE).then_some(day)
}

/// The wait before the first retry of a digest that could not be sent.
const FIRST_RETRY: Duration = Duration::from_secs(60);

/// What the digest needs besides the app's state.
pub struct DigestSettings {
    pub time: DigestTime,
    pub alerts: Arc<AlertSettings>,
    pub public_url: String,
    /// A token that needs no person, for GitHub's compare and checks
    /// (`RELEASE_GITHUB_STATS_TOKEN`).
    pub token: Option<String>,
    pub every: Duration,
}

/// Starts the clock.
pub fn spawn(state: AppState, settings: DigestSettings) {
    tokio::spawn(async move {
        // The first look one interval after startup, not at once.
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + settings.every, settings.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // After a failure, the next try waits (doubling from a minute, at most an hour):
        // a gathering costs up to MAX_LOOKUPS GitHub reads.
        let mut wait = FIRST_RETRY;
        let mut not_before = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            if tokio::time::Instant::now() < not_before {
                continue;
            }
            if let Some(day) = due_day(Utc::now(), settings.time) {
                match send_once(&state, &settings, day).await {
                    Ok(()) => wait = FIRST_RETRY,
                    Err(e) => {
                        tracing::warn!(error = %e, %day, retry_in = ?wait, "the daily digest could not be sent");
                        not_before = tokio::time::Instant::now() + wait;
                        wait = (wait * 2).min(Duration::from_secs(3600));
                    }
                }
            }
        }
    });
}

/// Sends `day`'s digest unless it went out (from any server).
async fn send_once(
    state: &AppState,
    settings: &DigestSettings,
    day: NaiveDate,
) -> app::store::Result<()> {
    let key = day.to_string();
    if state.store.digest_sent(&key).await? {
        return Ok(());
    }
    let apps = app::actions::digest::gather(state, settings.token.as_deref()).await?;
    let now = app::store::now_ms();
    let date = day.format("%A %-d %B %Y").to_string();
    let messages: Vec<(String, AlertEvent)> = settings
        .alerts
        .receivers
        .iter()
        .map(|r| &r.route)
        .filter(|r| !r.teams.is_empty())
        .filter(|r| r.kinds.is_empty() || r.kinds.contains(&AlertKind::Digest))
        .filter_map(|r| {
            let text = digest_text(&r.teams, &apps, &date, now, &settings.public_url)?;
            let mut event = AlertEvent::new(AlertKind::Digest, now);
            event.message = Some(text);
            Some((r.name.clone(), event))
        })
        .collect();
    if state.store.send_digest(&key, &messages).await? {
        tracing::info!(%day, messages = messages.len(), "the daily digest is queued");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_digest_is_due_from_its_local_time_for_twelve_hours() {
        let t = DigestTime {
            at: chrono::NaiveTime::from_hms_opt(9, 30, 0).unwrap(),
            time_zone: chrono_tz::Europe::London,
        };
        // Summer time: 09:30 in London is 08:30 UTC.
        assert_eq!(due_day(at("2026-07-01T08:29:59Z"), t), None);
        assert_eq!(
            due_day(at("2026-07-01T08:30:00Z"), t),
            NaiveDate::from_ymd_opt(2026, 7, 1)
        );
        assert_eq!(
            due_day(at("2026-07-01T20:29:00Z"), t),
            NaiveDate::from_ymd_opt(2026, 7, 1)
        );
        assert_eq!(due_day(at("2026-07-01T20:30:00Z"), t), None);
        // Winter: 09:30 is 09:30 UTC.
        assert_eq!(due_day(at("2026-12-07T09:00:00Z"), t), None);
        let tokyo = DigestTime {
            time_zone: chrono_tz::Asia::Tokyo,
            ..t
        };
        // 09:30 in Tokyo on the 8th is 00:30 UTC on the 8th: the local day is named.
        assert_eq!(
            due_day(at("2026-12-08T00:31:00Z"), tokyo),
            NaiveDate::from_ymd_opt(2026, 12, 8)
        );
    }
}
