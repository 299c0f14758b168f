//! Delivery metrics, the DORA four: how often each environment gets a deployment, the lead
//! time of a change (commit, or its first deployment, to production), how many production
//! deployments failed or were rolled back, and how long production took to recover.
//!
//! Everything is counted per UTC day and environment (`DayStats`); a report over any range
//! merges days. Durations are kept as log-scale histograms, so days merge without keeping
//! every value, and the stats for 90 days read 90 rows per environment whatever the
//! history's length. The price: a percentile is within 2.2% of the exact value.

use super::{DeploymentStatus, InvalidInput};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const DAY_MS: i64 = 86_400_000;
/// The longest range one report covers.
pub const MAX_DAYS: i64 = 732;
/// The range when none is asked for.
pub const DEFAULT_DAYS: i64 = 90;

/// 16 buckets per doubling: bucket `i >= 1` holds durations in
/// `[2^((i-1)/16), 2^(i/16))` seconds; bucket 0 holds a second or less.
const PER_DOUBLING: f64 = 16.0;

/// Durations as a histogram of log-scale buckets (sparse: bucket -> count).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durations(BTreeMap<u16, u64>);

impl Durations {
    fn bucket(ms: i64) -> u16 {
        if ms <= 1000 {
            return 0;
        }
        let b = (PER_DOUBLING * (ms as f64 / 1000.0).log2()).ceil();
        b.clamp(1.0, 1000.0) as u16
    }

    /// The middle (geometric) of a bucket, in milliseconds.
    fn value(bucket: u16) -> i64 {
        if bucket == 0 {
            return 1000;
        }
        (1000.0 * 2f64.powf((f64::from(bucket) - 0.5) / PER_DOUBLING)).round() as i64
    }

    /// Negative durations (clocks that disagree) count as zero.
    pub fn add(&mut self, ms: i64) {
        *self.0.entry(Self::bucket(ms.max(0))).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Durations) {
        for (b, n) in &other.0 {
            *self.0.entry(*b).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// Nearest-rank percentile (`p` in 0..=100), in milliseconds.
    pub fn percentile(&self, p: f64) -> Option<i64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.0 {
            seen += n;
            if seen >= rank {
                return Some(Self::value(*b));
            }
        }
        self.0.keys().last().map(|b| Self::value(*b))
    }

    /// `bucket:count,...`, how the store keeps it.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        for (b, n) in &self.0 {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(&format!("{b}:{n}"));
        }
        s
    }

    /// Reads what `encode` wrote. Only this program writes it: a part that does not parse
    /// is left out rather than failing the whole report.
    pub fn decode(s: &str) -> Self {
        let mut d = Self::default();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            if let Some((b, n)) = part.split_once(':') {
                if let (Ok(b), Ok(n)) = (b.parse::<u16>(), n.parse::<u64>()) {
                    *d.0.entry(b).or_default() += n;
                }
            }
        }
        d
    }
}

/// One environment's day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStats {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub environment: String,
    pub deployments: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Production only: deployments that failed, or that a rollback replaced.
    pub failed_changes: u64,
    /// Production only: deployments of a version that ran there before.
    pub rollbacks: u64,
    /// Production only: from the commit (or the version's first deployment) to here.
    pub lead: Durations,
    /// How many of `lead` were measured from the commit's time.
    pub lead_from_commit: u64,
    /// Production only: from a failure (or a change later rolled back) to the next
    /// deployment that succeeded.
    pub restore: Durations,
}

impl DayStats {
    pub fn merge(&mut self, o: &DayStats) {
        self.deployments += o.deployments;
        self.succeeded += o.succeeded;
        self.failed += o.failed;
        self.failed_changes += o.failed_changes;
        self.rollbacks += o.rollbacks;
        self.lead.merge(&o.lead);
        self.lead_from_commit += o.lead_from_commit;
        self.restore.merge(&o.restore);
    }
}

/// One deployment, as the stats need it (read by the store, in order of `created_at_ms`
/// within each application).
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentFact {
    pub application_id: i64,
    pub environment: String,
    pub version: String,
    pub status: DeploymentStatus,
    pub created_at_ms: i64,
    /// Production only: when the commit was made (GitHub), if known.
    pub committed_at_ms: Option<i64>,
    /// Production only: the first deployment of this version anywhere in the pipeline's
    /// first environment.
    pub integrated_at_ms: Option<i64>,
    /// Production only: this version ran in production before this deployment.
    pub deployed_before: bool,
}

/// What production looked like for one application just before the facts begin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductionBefore {
    /// The last production deployment: version, status, time.
    pub last: Option<(String, DeploymentStatus, i64)>,
    /// Production has been failing since then (the first failure of the streak).
    pub failing_since_ms: Option<i64>,
}

/// Counts `facts` (sorted by application, then time) into one `DayStats` per environment
/// and day. `before` gives each application's production state when its facts begin.
pub fn count_days(
    facts: &[DeploymentFact],
    production: &str,
    before: &BTreeMap<i64, ProductionBefore>,
) -> Vec<DayStats> {
    count_days_from(facts, production, &mut before.clone())
}

/// The same, with production's state per application carried in `state` (read before,
/// left as after), so facts can be counted a batch at a time.
pub fn count_days_from(
    facts: &[DeploymentFact],
    production: &str,
    state: &mut BTreeMap<i64, ProductionBefore>,
) -> Vec<DayStats> {
    let mut days: BTreeMap<(i64, String), DayStats> = BTreeMap::new();
    for f in facts {
        let day = f.created_at_ms.div_euclid(DAY_MS);
        let d = days
            .entry((day, f.environment.clone()))
            .or_insert_with(|| DayStats {
                day,
                environment: f.environment.clone(),
                ..DayStats::default()
            });
        d.deployments += 1;
        match f.status {
            DeploymentStatus::Succeeded => d.succeeded += 1,
            DeploymentStatus::Failed => d.failed += 1,
            _ => {}
        }
        if f.environment != production {
            continue;
        }
        let prod = state.entry(f.application_id).or_default();
        let start = f.committed_at_ms.or(f.integrated_at_ms);
        if let Some(start) = start {
            d.lead.add(f.created_at_ms - start);
            if f.committed_at_ms.is_some() {
                d.lead_from_commit += 1;
            }
        }
        // A rollback: a version that ran here before, other than the one just replaced.
        let replaced = prod.last.clone();
        let rollback = f.deployed_before
            && replaced
                .as_ref()
                .is_some_and(|(version, _, _)| *version != f.version);
        if rollback {
            d.rollbacks += 1;
            // The replaced change failed (counted now, on the rollback's day), unless it
            // had failed by itself and was counted then.
            if let Some((_, status, at)) = &replaced {
                if *status != DeploymentStatus::Failed {
                    d.failed_changes += 1;
                    prod.failing_since_ms.get_or_insert(*at);
                }
            }
        }
        match f.status {
            DeploymentStatus::Failed => {
                d.failed_changes += 1;
                prod.failing_since_ms.get_or_insert(f.created_at_ms);
            }
            DeploymentStatus::Succeeded => {
                if let Some(since) = prod.failing_since_ms.take() {
                    d.restore.add(f.created_at_ms - since);
                }
            }
            DeploymentStatus::Requested | DeploymentStatus::InProgress => {}
        }
        prod.last = Some((f.version.clone(), f.status, f.created_at_ms));
    }
    days.into_values().collect()
}

/// A stats request, parsed: `from` and `to` are days (UTC, both included).
#[derive(Debug)]
pub struct StatsQuery {
    pub from_day: i64,
    pub to_day: i64,
    pub application: Option<String>,
    pub environment: Option<String>,
}

impl StatsQuery {
    /// `from` and `to` as `YYYY-MM-DD` (default: the 90 days to today); `application` a
    /// shortname, `environment` one of the pipeline's. Empty strings are absent.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        application: Option<&str>,
        environment: Option<&str>,
        environments: &super::Environments,
        today: i64,
    ) -> Result<Self, InvalidInput> {
        let date = |field: &str, s: &str| -> Result<i64, InvalidInput> {
            let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                InvalidInput::new(field, format!("{s:?} is not a date (YYYY-MM-DD)"))
            })?;
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            Ok((d - epoch).num_days())
        };
        fn present(s: Option<&str>) -> Option<&str> {
            s.map(str::trim).filter(|s| !s.is_empty())
        }
        let to_day = match present(to) {
            Some(s) => date("to", s)?,
            None => today,
        };
        let from_day = match present(from) {
            Some(s) => date("from", s)?,
            None => to_day - (DEFAULT_DAYS - 1),
        };
        if from_day > to_day {
            return Err(InvalidInput::new("from", "from is after to"));
        }
        if to_day - from_day + 1 > MAX_DAYS {
            return Err(InvalidInput::new(
                "from",
                format!("at most {MAX_DAYS} days at once"),
            ));
        }
        if from_day < 0 {
            return Err(InvalidInput::new("from", "from is before 1970"));
        }
        let application = match present(application) {
            Some(s) => Some(
                super::Shortname::parse(s)
                    .map_err(|e| InvalidInput::new("application", e.message))?
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        Ok(Self {
            from_day,
            to_day,
            application,
            environment: match present(environment) {
                Some(e) => Some(environments.parse(e)?.as_str().to_owned()),
                None => None,
            },
        })
    }

    pub fn days(&self) -> i64 {
        self.to_day - self.from_day + 1
    }
}

/// `YYYY-MM-DD` of a day number.
pub fn date_of(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Median and 90th percentile of some durations, in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub count: u64,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

impl Spread {
    fn of(d: &Durations) -> Self {
        Self {
            count: d.count(),
            median_seconds: d.percentile(50.0).map(|ms| ms / 1000),
            p90_seconds: d.percentile(90.0).map(|ms| ms / 1000),
        }
    }
}

/// One week (Monday to Sunday) of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Week {
    /// The Monday, `YYYY-MM-DD`.
    pub starts: String,
    /// Deployments per environment, in pipeline order.
    pub deployments: Vec<u64>,
    pub production_deployments: u64,
    pub failed_changes: u64,
    pub lead_time: Spread,
    pub time_to_restore: Spread,
}

/// What a report counts: which days, which application, which environments. The page
/// and the API (`GET /api/v1/stats`, flattened) say it the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct StatsScope {
    /// The first day counted, `YYYY-MM-DD` (UTC).
    pub from: String,
    /// The last day counted.
    pub to: String,
    pub days: i64,
    /// The application counted; none: all.
    pub application: Option<String>,
    /// The environments counted, in pipeline order.
    pub environments: Vec<String>,
    /// The environment lead time, failures and restores are measured in.
    pub production: String,
}

/// The report a page or the API shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    pub scope: StatsScope,
    /// Per environment, in the order of `environments`.
    pub deployments: Vec<u64>,
    pub succeeded: Vec<u64>,
    pub failed: Vec<u64>,
    pub production_deployments: u64,
    pub failed_changes: u64,
    pub rollbacks: u64,
    /// `failed_changes / production_deployments`, when there were any.
    pub change_failure_rate: Option<f64>,
    pub lead_time: Spread,
    pub lead_time_from_commit: u64,
    pub time_to_restore: Spread,
    pub weeks: Vec<Week>,
    /// Each day, `(date, deployments per environment)`, for the CSV and the API.
    pub daily: Vec<(String, Vec<u64>)>,
    /// The stats task has not counted everything yet (the figures may be behind).
    #[serde(default)]
    pub counting: bool,
}

impl StatsReport {
    /// Merges `days` (any order; other environments and days outside the query ignored).
    pub fn build(q: &StatsQuery, environments: &[String], days: &[DayStats]) -> Self {
        let production = environments.last().cloned().unwrap_or_default();
        let envs: Vec<String> = match &q.environment {
            Some(e) => environments.iter().filter(|x| *x == e).cloned().collect(),
            None => environments.to_vec(),
        };
        let idx = |e: &str| envs.iter().position(|x| x == e);
        let n = envs.len();
        let mut total: Vec<DayStats> = vec![DayStats::default(); n];
        let mut prod = DayStats::default();
        let mut daily: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
        // Weeks start on Monday: day 0 (1970-01-01) was a Thursday.
        let week_of = |day: i64| day - (day + 3).rem_euclid(7);
        let mut weeks: BTreeMap<i64, (Vec<u64>, DayStats)> = BTreeMap::new();
        let mut w = week_of(q.from_day);
        while w <= q.to_day {
            weeks.insert(w, (vec![0; n], DayStats::default()));
            w += 7;
        }
        for d in days {
            if d.day < q.from_day || d.day > q.to_day {
                continue;
            }
            let Some(i) = idx(&d.environment) else {
                continue;
            };
            total[i].merge(d);
            daily.entry(d.day).or_insert_with(|| vec![0; n])[i] += d.deployments;
            let week = weeks
                .entry(week_of(d.day))
                .or_insert_with(|| (vec![0; n], DayStats::default()));
            week.0[i] += d.deployments;
            if d.environment == production {
                prod.merge(d);
                week.1.merge(d);
            }
        }
        let mut all_days = Vec::new();
        for day in q.from_day..=q.to_day {
            all_days.push((date_of(day), daily.remove(&day).unwrap_or(vec![0; n])));
        }
        Self {
            scope: StatsScope {
                from: date_of(q.from_day),
                to: date_of(q.to_day),
                days: q.days(),
                application: q.application.clone(),
                environments: envs,
                production,
            },
            deployments: total.iter().map(|t| t.deployments).collect(),
            succeeded: total.iter().map(|t| t.succeeded).collect(),
            failed: total.iter().map(|t| t.failed).collect(),
            production_deployments: prod.deployments,
            failed_changes: prod.failed_changes,
            rollbacks: prod.rollbacks,
            change_failure_rate: (prod.deployments > 0)
                .then(|| prod.failed_changes as f64 / prod.deployments as f64),
            lead_time: Spread::of(&prod.lead),
            lead_time_from_commit: prod.lead_from_commit,
            time_to_restore: Spread::of(&prod.restore),
            weeks: weeks
                .into_iter()
                .map(|(start, (deployments, p))| Week {
                    starts: date_of(start),
                    deployments,
                    production_deployments: p.deployments,
                    failed_changes: p.failed_changes,
                    lead_time: Spread::of(&p.lead),
                    time_to_restore: Spread::of(&p.restore),
                })
                .collect(),
            daily: all_days,
            counting: false,
        }
    }

    /// Deployments a day, per environment, over the range.
    pub fn per_day(&self, i: usize) -> f64 {
        self.deployments.get(i).copied().unwrap_or(0) as f64 / self.scope.days.max(1) as f64
    }

    /// One line per day and environment.
    pub fn csv(&self) -> String {
        let mut out = String::from("date,environment,deployments\n");
        for (date, counts) in &self.daily {
            for (env, n) in self.scope.environments.iter().zip(counts) {
                out.push_str(&format!("{date},{},{n}\n", csv_field(env)));
            }
        }
        out
    }
}

/// Environments are parsed names (no comma or quote), but a CSV cell is quoted when in
/// doubt, and never starts with a formula character.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(['=', '+', '-', '@']) {
        format!("\"'{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A duration in its two largest units: "45 s", "1 min 5 s", "2 h 5 min", "3 d 4 h".
/// The stats and the pipeline timeline both write durations this way.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let two = |big: i64, big_unit: &str, small: i64, small_unit: &str| match small {
        0 => format!("{big} {big_unit}"),
        n => format!("{big} {big_unit} {n} {small_unit}"),
    };
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => two(s / 60, "min", s % 60, "s"),
        3600..=86_399 => two(s / 3600, "h", (s % 3600) / 60, "min"),
        _ => two(s / 86_400, "d", (s % 86_400) / 3600, "h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentStatus::*;

    fn fact(
        app: i64,
        env: &str,
        version: &str,
        status: DeploymentStatus,
        at_s: i64,
    ) -> DeploymentFact {
        DeploymentFact {
            application_id: app,
            environment: env.into(),
            version: version.into(),
            status,
            created_at_ms: at_s * 1000,
            committed_at_ms: None,
            integrated_at_ms: None,
            deployed_before: false,
        }
    }

    #[test]
    fn percentiles_are_within_the_bucket_error() {
        let mut d = Durations::default();
        for s in 1..=1000 {
            d.add(s * 60_000);
        }
        let median = d.percentile(50.0).unwrap() as f64;
        let p90 = d.percentile(90.0).unwrap() as f64;
        assert!(
            (median / (500.0 * 60_000.0) - 1.0).abs() < 0.023,
            "{median}"
        );
        assert!((p90 / (900.0 * 60_000.0) - 1.0).abs() < 0.023, "{p90}");
        assert_eq!(Durations::decode(&d.encode()), d);
        assert_eq!(Durations::default().percentile(50.0), None);
        assert_eq!(Durations::decode("x:1,3:y,,4:2").count(), 2);
    }

    #[test]
    fn failures_rollbacks_and_restores_are_counted_in_production() {
        let facts = vec![
            fact(1, "staging", "v1", Succeeded, 10),
            fact(1, "production", "v1", Succeeded, 100),
            fact(1, "production", "v2", Failed, 200),
            fact(1, "production", "v3", Failed, 300),
            fact(1, "production", "v4", Succeeded, 500), // restored 300 s after v2
            fact(1, "production", "v5", Succeeded, 600),
            DeploymentFact {
                deployed_before: true,
                ..fact(1, "production", "v4", Succeeded, 1000)
            }, // rollback of v5
            DeploymentFact {
                deployed_before: true,
                ..fact(1, "production", "v4", Succeeded, 1100)
            }, // a redeploy, not a rollback
        ];
        let days = count_days(&facts, "production", &BTreeMap::new());
        let prod = days.iter().find(|d| d.environment == "production").unwrap();
        assert_eq!(prod.deployments, 7);
        assert_eq!(prod.failed, 2);
        assert_eq!(prod.rollbacks, 1);
        assert_eq!(prod.failed_changes, 3);
        assert_eq!(prod.restore.count(), 2);
        // 300 s and 400 s (v5 at 600 to the rollback at 1000)
        assert_eq!(
            Spread::of(&prod.restore)
                .median_seconds
                .map(|s| (s as f64 / 300.0 - 1.0).abs() < 0.03),
            Some(true)
        );
        let staging = days.iter().find(|d| d.environment == "staging").unwrap();
        assert_eq!(
            (
                staging.deployments,
                staging.failed_changes,
                staging.restore.count()
            ),
            (1, 0, 0)
        );
    }

    #[test]
    fn a_failure_before_the_range_is_restored_in_it() {
        let before = BTreeMap::from([(
            7,
            ProductionBefore {
                last: Some(("v1".into(), Failed, 0)),
                failing_since_ms: Some(0),
            },
        )]);
        let days = count_days(
            &[fact(7, "production", "v2", Succeeded, 3600)],
            "production",
            &before,
        );
        assert_eq!(Spread::of(&days[0].restore).count, 1);
        assert_eq!(days[0].failed_changes, 0);
    }

    #[test]
    fn lead_time_prefers_the_commit() {
        let f = DeploymentFact {
            committed_at_ms: Some(0),
            integrated_at_ms: Some(3_600_000),
            ..fact(1, "production", "v1", Succeeded, 7200)
        };
        let g = DeploymentFact {
            integrated_at_ms: Some(3_600_000),
            ..fact(2, "production", "v1", Succeeded, 7200)
        };
        let days = count_days(&[f, g], "production", &BTreeMap::new());
        assert_eq!(days[0].lead.count(), 2);
        assert_eq!(days[0].lead_from_commit, 1);
    }

    #[test]
    fn queries_parse() {
        let today = 20_000;
        let envs =
            crate::domain::Environments::new(&["integration".into(), "production".into()]).unwrap();
        let parse = |f, t, a, e| StatsQuery::parse(f, t, a, e, &envs, today);
        let q = parse(None, None, Some(""), Some("production")).unwrap();
        assert_eq!((q.from_day, q.to_day, q.days()), (today - 89, today, 90));
        assert_eq!(q.environment.as_deref(), Some("production"));
        assert!(parse(Some("2026-13-01"), None, None, None).is_err());
        assert!(parse(Some("2026-02-01"), Some("2026-01-01"), None, None).is_err());
        assert!(parse(Some("2000-01-01"), Some("2026-01-01"), None, None).is_err());
        assert!(parse(None, None, Some("../x"), None).is_err());
        assert_eq!(
            parse(None, None, None, Some("qa")).unwrap_err().field,
            "environment"
        );
        assert_eq!(date_of(20_000), "2024-10-04");
    }

    #[test]
    fn reports_merge_days_into_weeks() {
        let q = StatsQuery {
            from_day: 20_000,
            to_day: 20_013,
            application: None,
            environment: None,
        };
        let envs = vec!["integration".to_string(), "production".to_string()];
        let mut a = DayStats {
            day: 20_000,
            environment: "production".into(),
            deployments: 4,
            failed_changes: 1,
            ..Default::default()
        };
        a.lead.add(60_000);
        let b = DayStats {
            day: 20_010,
            environment: "integration".into(),
            deployments: 3,
            ..Default::default()
        };
        let outside = DayStats {
            day: 30_000,
            environment: "integration".into(),
            deployments: 3,
            ..Default::default()
        };
        let r = StatsReport::build(&q, &envs, &[a, b, outside]);
        assert_eq!(r.deployments, vec![3, 4]);
        assert_eq!(r.change_failure_rate, Some(0.25));
        assert_eq!(r.daily.len(), 14);
        assert_eq!(
            r.weeks
                .iter()
                .map(|w| w.deployments.iter().sum::<u64>())
                .sum::<u64>(),
            7
        );
        assert!(r
            .csv()
            .starts_with("date,environment,deployments\n2024-10-04,integration,0\n"));
        assert_eq!(human_duration(3_660), "1 h 1 min");
    }
}
