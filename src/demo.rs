//! Demo data for `release serve --demo`: a dozen applications over three environments,
//! with every flag and status represented. Loaded only into a database with no
//! deployments, so it never mixes with real data.

use app::domain::{DeploymentStatus, EventStatus, GitRef, RepoName, Shortname, Stage, Trigger};
use app::model::Workflow;
use app::store::{now_ms, ApplicationSpec, NewDeployment, NewEvent, Store};
use serde::Deserialize;
use std::sync::OnceLock;

const ORG: &str = "example-org";
const PEOPLE: [&str; 6] = [
    "amara.okafor",
    "li.wei",
    "sam.jones",
    "priya.patel",
    "tom.baker",
    "ines.garcia",
];
const MINUTE: i64 = 60_000;

/// How the latest deployment in an environment went.
#[derive(Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    #[default]
    Ok,
    FailedAt(Stage),
    RunningAt(Stage),
    /// Recorded by the Release-compatible notification only.
    NotifiedOnly,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoApp {
    name: String,
    repo: String,
    team: String,
    #[serde(default)]
    manual: Vec<String>,
    #[serde(default)]
    notes: String,
    /// The latest deployment per environment; history is made up behind it.
    current: Vec<Current>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Current {
    env: String,
    version: String,
    #[serde(default)]
    outcome: Outcome,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoFile {
    apps: Vec<DemoApp>,
}

/// The demo applications, in order, from `src/demo.toml` (compiled in).
fn apps() -> &'static [DemoApp] {
    static APPS: OnceLock<Vec<DemoApp>> = OnceLock::new();
    APPS.get_or_init(|| {
        toml::from_str::<DemoFile>(include_str!("demo.toml"))
            .expect("src/demo.toml is valid")
            .apps
    })
}

/// Loads the demo data if the database has no deployments; says whether it did.
pub async fn load_if_empty(store: &Store) -> anyhow::Result<bool> {
    if store.deployment_count().await? > 0 {
        return Ok(false);
    }
    let specs: Vec<ApplicationSpec> = apps()
        .iter()
        .map(|a| {
            let repo = RepoName::parse(&format!("{ORG}/{}", a.repo)).expect("demo repos are valid");
            ApplicationSpec {
                name: a.name.clone(),
                shortname: Shortname::parse(&a.repo).expect("demo shortnames are valid"),
                repo,
                default_branch: "main".into(),
                workflow: "deploy.yml".into(),
                team: a.team.clone(),
                notes: a.notes.clone(),
                manual_environments: a.manual.clone(),
            }
        })
        .collect();
    store.sync_applications(&specs).await?;
    let now = now_ms();
    // 90 days of a team's history behind the current versions, loaded at once.
    let ids: std::collections::HashMap<String, i64> = store
        .applications()
        .await?
        .into_iter()
        .map(|a| (a.shortname, a.id))
        .collect();
    let mut past = Vec::new();
    for (ai, a) in apps().iter().enumerate() {
        if let Some(id) = ids.get(&a.repo) {
            past.extend(history(*id, ai, a, now));
        }
    }
    past.sort_by_key(|p| p.at_ms);
    store.bulk_insert_history(&past).await?;
    let mut person = 0usize;
    for (ai, a) in apps().iter().enumerate() {
        let repo = RepoName::parse(&format!("{ORG}/{}", a.repo))?;
        for (
            ei,
            Current {
                env,
                version,
                outcome,
            },
        ) in a.current.iter().enumerate()
        {
            let environment = store.environments().parse(env)?;
            let start = now - (ai as i64 * 11 + 45) * MINUTE + (ei as i64) * 15 * MINUTE;
            person += 1;
            let manual = a.manual.contains(env);
            store
                .record_deployment(&NewDeployment {
                    repo: repo.clone(),
                    environment: environment.clone(),
                    version: GitRef::parse(version)?,
                    sha: None,
                    deployed_by: Some(PEOPLE[person % PEOPLE.len()].into()),
                    trigger: trigger(manual, ei),
                    created_at_ms: Some(start),
                    base_status: DeploymentStatus::Succeeded,
                })
                .await?;
            let (last, failed) = match outcome {
                Outcome::NotifiedOnly => continue,
                Outcome::Ok => (Stage::SmokeTests, false),
                Outcome::FailedAt(s) => (*s, true),
                Outcome::RunningAt(s) => (*s, false),
            };
            let running = matches!(outcome, Outcome::RunningAt(_));
            for (si, stage) in Stage::ALL.iter().enumerate() {
                if *stage > last || *stage == Stage::Promotion {
                    break;
                }
                let at = start + si as i64 * 40_000;
                let is_last = *stage == last;
                let workflow = Workflow {
                    environment: Some(if *stage == Stage::SmokeTests {
                        env.to_string()
                    } else {
                        "production".into()
                    }),
                    namespace: Some("apps".into()),
                    name: Some(format!(
                        "{}-{}-{}",
                        if *stage == Stage::SmokeTests {
                            "post-sync"
                        } else {
                            "deploy-image"
                        },
                        a.repo,
                        1000 + ai * 10 + ei
                    )),
                    url: Some(format!(
                        "https://argo.{env}.example.org/workflows/apps/{}-{}",
                        a.repo,
                        1000 + ai * 10 + ei
                    )),
                };
                let send = |status: EventStatus, at_ms: i64, message: Option<String>| NewEvent {
                    repo: repo.clone(),
                    environment: environment.clone(),
                    version: GitRef::parse(version).expect("demo versions are valid"),
                    stage: *stage,
                    status,
                    message,
                    workflow: Some(workflow.clone()),
                    delivery_id: None,
                    at_ms: Some(at_ms),
                };
                store
                    .record_event(&send(EventStatus::Started, at, None))
                    .await?;
                if is_last && running {
                    break;
                }
                let (status, message) = if is_last && failed {
                    (
                        EventStatus::Failed,
                        Some(format!("{} failed: see the workflow's logs", stage.label())),
                    )
                } else {
                    (EventStatus::Succeeded, None)
                };
                store
                    .record_event(&send(status, at + 30_000, message))
                    .await?;
            }
        }
    }
    // The simulated Argo CD: every environment runs what Release recorded, except one:
    // production of `static` still runs the version before (someone synced it back by
    // hand two hours ago): drift, to try "Roll back" and the drift flag on.
    for a in apps() {
        let repo = RepoName::parse(&format!("{ORG}/{}", a.repo))?;
        for Current { env, version, .. } in &a.current {
            let environment = store.environments().parse(env)?;
            let (running, since) = if a.repo == DRIFTED.0 && *env == DRIFTED.1 {
                (older_version(version, 1), Some(now - 2 * 3600 * 1000))
            } else {
                (version.to_string(), Some(now - 3600 * 1000))
            };
            app::simulator::observe(store, &repo, &environment, &running, since).await?;
        }
    }
    Ok(true)
}

/// What starts a deployment to the `ei`th environment: a person where continuous
/// deployment is off, a merge in the first environment, a promotion after it.
fn trigger(manual: bool, ei: usize) -> Trigger {
    if manual {
        Trigger::Manual
    } else if ei == 0 {
        Trigger::Continuous
    } else {
        Trigger::Promotion
    }
}

/// A small deterministic generator: the demo is the same on every machine.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A whole number in `lo..hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo).max(1) as u64)) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The number at the end of a version made of a prefix and digits ("v3412" -> 3412);
/// `None` for a SHA or anything else.
fn version_number(version: &str) -> Option<i64> {
    let i = version.find(|c: char| c.is_ascii_digit())?;
    if version.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    version[i..].parse().ok()
}

/// A commit's SHA for a version of an app (40 hex digits, the same every time).
fn sha_of(repo: &str, version: &str) -> String {
    let seed = repo
        .bytes()
        .chain(version.bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let mut g = Lcg(seed);
    (0..5).map(|_| format!("{:08x}", g.next() as u32)).collect()
}

const DAY: i64 = 24 * 60 * MINUTE;

/// Moves a time to a working hour of a weekday, mostly: a team deploys on weekdays
/// between 08:00 and 18:00 UTC, and now and then on a weekend.
fn working_time(t: i64, g: &mut Lcg) -> i64 {
    let day = t.div_euclid(DAY);
    // 1970-01-01 was a Thursday: (day + 3) % 7 is 0 on Mondays.
    let weekday = (day + 3).rem_euclid(7);
    let day = match weekday {
        5 if !g.chance(10) => day - 1,
        6 if !g.chance(10) => day - 2,
        _ => day,
    };
    day * DAY + 8 * 60 * MINUTE + g.range(0, 10 * 60) * MINUTE
}

/// 90 days of `a`'s deployments before its current ones (those are loaded after): a
/// release every few working hours, promoted through the environments (by hand where
/// continuous deployment is off), a few failures, and for two apps a bad production
/// release rolled back and restored. Each version has a commit made a while before.
fn history(
    application_id: i64,
    ai: usize,
    a: &DemoApp,
    now: i64,
) -> Vec<app::store::PastDeployment> {
    let mut g = Lcg(0x5eed + ai as u64 * 7919);
    let mut out = Vec::new();
    let Some(Current {
        version: newest, ..
    }) = a.current.first()
    else {
        return out;
    };
    // How many releases fit before the newest's number reaches 1.
    let releases = version_number(newest).map_or(120, |n| (n - 1).clamp(0, 120));
    if releases == 0 {
        return out;
    }
    let step = 85 * DAY / releases;
    // Releases an environment has not reached yet: production runs v205 while integration
    // runs v210, so v206 to v209 never reached production.
    let behind: Vec<i64> = a
        .current
        .iter()
        .map(
            |c| match (version_number(newest), version_number(&c.version)) {
                (Some(n), Some(m)) => (n - m).max(0),
                _ => 0,
            },
        )
        .collect();
    let rollback_at = match ai {
        0 => Some(releases / 3),
        5 => Some(2 * releases / 3),
        _ => None,
    };
    for h in 1..=releases {
        let version = older_version(newest, h as usize);
        let sha = sha_of(&a.repo, &version);
        let t = working_time(
            now - 3 * DAY - (h - 1) * step - g.range(0, step / 3 + 1),
            &mut g,
        );
        let committed = t - g.range(20, 8 * 60) * MINUTE;
        let mut at = t;
        for (ei, Current { env, .. }) in a.current.iter().enumerate() {
            if h <= behind[ei] {
                continue;
            }
            let manual = a.manual.contains(env);
            if ei > 0 {
                at += if manual {
                    g.range(2 * 60, 24 * 60) * MINUTE
                } else if ei + 1 == a.current.len() {
                    g.range(40, 6 * 60) * MINUTE
                } else {
                    g.range(20, 60) * MINUTE
                };
            }
            let rolled_back = rollback_at == Some(h) && ei + 1 == a.current.len();
            // The newest releases went through: what the demo's drift and rollback tell of.
            let failed = rolled_back || (g.chance(if ei == 0 { 6 } else { 2 }) && h > 3);
            out.push(app::store::PastDeployment {
                application_id,
                environment: env.to_string(),
                version: version.clone(),
                sha: sha.clone(),
                trigger: trigger(manual, ei),
                deployed_by: PEOPLE[g.range(0, PEOPLE.len() as i64) as usize].into(),
                status: if failed {
                    DeploymentStatus::Failed
                } else {
                    DeploymentStatus::Succeeded
                },
                at_ms: at,
                committed_at_ms: committed,
            });
            if rolled_back {
                // Someone rolls production back to the release before, half an hour later.
                let previous = older_version(newest, h as usize + 1);
                out.push(app::store::PastDeployment {
                    application_id,
                    environment: env.to_string(),
                    sha: sha_of(&a.repo, &previous),
                    version: previous,
                    trigger: Trigger::Manual,
                    deployed_by: PEOPLE[ai % PEOPLE.len()].into(),
                    status: DeploymentStatus::Succeeded,
                    at_ms: at + g.range(20, 50) * MINUTE,
                    committed_at_ms: committed - step,
                });
            }
            if failed {
                break;
            }
        }
    }
    out
}

/// The demo app and environment whose Argo CD runs something else than Release recorded.
pub const DRIFTED: (&str, &str) = ("static", "production");

/// "v3412" with h=3 -> "v3409"; a SHA or other shape gets a made-up older SHA.
fn older_version(version: &str, h: usize) -> String {
    let digits_at = version.find(|c: char| c.is_ascii_digit());
    match digits_at {
        Some(i)
            if version[i..].chars().all(|c| c.is_ascii_digit())
                && !version.chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            let n: usize = version[i..].parse().unwrap_or(1000);
            format!("{}{}", &version[..i], n.saturating_sub(h))
        }
        _ => format!("{:07x}", 0x1a2b3c4usize.wrapping_mul(h + 7) & 0xfffffff),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn older_versions() {
        assert_eq!(super::older_version("v3412", 3), "v3409");
        assert_eq!(super::older_version("release_455", 2), "release_453");
        assert_eq!(super::older_version("3f9c2a1", 1).len(), 7);
    }
}

#[cfg(test)]
mod data_tests {
    use super::*;

    /// `src/demo.toml` parses, and what it says is what the loader can load: a typo there
    /// fails `cargo test`, not `release serve --demo`.
    #[test]
    fn the_demo_file_parses() {
        let apps = toml::from_str::<DemoFile>(include_str!("demo.toml"))
            .expect("src/demo.toml parses")
            .apps;
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names.len(), 12, "{names:?}");
        assert_eq!(names.first(), Some(&"Content Store"));
        assert_eq!(names.last(), Some(&"Static"));
        let environments = ["integration", "staging", "production"];
        for a in &apps {
            RepoName::parse(&format!("{ORG}/{}", a.repo)).expect("a valid repo");
            Shortname::parse(&a.repo).expect("a valid shortname");
            assert!(a.team.starts_with('#'), "{}", a.team);
            assert!(!a.current.is_empty(), "{}", a.name);
            assert!(a.manual.iter().all(|m| environments.contains(&m.as_str())));
            for c in &a.current {
                assert!(environments.contains(&c.env.as_str()), "{}", c.env);
                GitRef::parse(&c.version).expect("a valid version");
            }
        }
        assert!(apps
            .iter()
            .any(|a| a.repo == DRIFTED.0 && a.current.iter().any(|c| c.env == DRIFTED.1)));
        assert!(apps
            .iter()
            .flat_map(|a| &a.current)
            .any(|c| matches!(c.outcome, Outcome::FailedAt(Stage::SmokeTests))));
        assert!(apps
            .iter()
            .flat_map(|a| &a.current)
            .any(|c| matches!(c.outcome, Outcome::RunningAt(Stage::Rollout))));
        assert!(apps
            .iter()
            .flat_map(|a| &a.current)
            .any(|c| matches!(c.outcome, Outcome::NotifiedOnly)));
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;

    #[test]
    fn the_demo_history_looks_like_a_teams() {
        let now = 1_765_000_000_000;
        let all: Vec<_> = apps()
            .iter()
            .enumerate()
            .flat_map(|(ai, a)| history(ai as i64 + 1, ai, a, now))
            .collect();
        assert!(all.len() > 2_000, "{}", all.len());
        assert!(all
            .iter()
            .all(|p| p.at_ms < now - DAY && p.at_ms > now - 92 * DAY));
        assert!(all.iter().all(|p| p.committed_at_ms < p.at_ms));
        let weekend = all
            .iter()
            .filter(|p| (p.at_ms.div_euclid(DAY) + 3).rem_euclid(7) >= 5)
            .count();
        assert!(
            weekend * 10 < all.len(),
            "weekdays busier: {weekend} of {}",
            all.len()
        );
        let failed = all
            .iter()
            .filter(|p| p.status == DeploymentStatus::Failed)
            .count();
        assert!(
            failed > 20 && failed * 10 < all.len(),
            "a few failures: {failed}"
        );
        let rollbacks = all
            .iter()
            .filter(|p| {
                p.trigger == Trigger::Manual
                    && p.environment == "production"
                    && p.deployed_by == PEOPLE[0]
            })
            .count();
        assert!(rollbacks >= 1);
    }
}
