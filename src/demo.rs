//! Demo data for `release serve --demo`: a dozen applications over three environments,
//! with every flag and status represented. Loaded only into a database with no
//! deployments, so it never mixes with real data.

use app::domain::{DeploymentStatus, EventStatus, GitRef, RepoName, Shortname, Stage, Trigger};
use app::model::Workflow;
use app::store::{now_ms, ApplicationSpec, NewDeployment, NewEvent, Store};

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
#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    FailedAt(Stage),
    RunningAt(Stage),
    /// Recorded by the Release-compatible notification only.
    NotifiedOnly,
}

struct DemoApp {
    name: &'static str,
    repo: &'static str,
    team: &'static str,
    manual: &'static [&'static str],
    notes: &'static str,
    /// (environment, version, outcome); history is made up behind the latest.
    current: &'static [(&'static str, &'static str, Outcome)],
    history: usize,
}

const APPS: &[DemoApp] = &[
    DemoApp {
        name: "Content Store",
        repo: "content-store",
        team: "#publishing-platform",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "v3412", Outcome::Ok),
            ("staging", "v3412", Outcome::Ok),
            ("production", "v3412", Outcome::Ok),
        ],
        history: 6,
    },
    DemoApp {
        name: "Frontend",
        repo: "frontend",
        team: "#frontend",
        manual: &["production"],
        notes: "Production deploys need a product owner's sign-off.",
        current: &[
            ("integration", "v210", Outcome::Ok),
            ("staging", "v210", Outcome::Ok),
            ("production", "v205", Outcome::Ok),
        ],
        history: 8,
    },
    DemoApp {
        name: "Publisher",
        repo: "publisher",
        team: "#mainstream",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "v88", Outcome::Ok),
            ("staging", "v88", Outcome::FailedAt(Stage::SmokeTests)),
            ("production", "v87", Outcome::Ok),
        ],
        history: 5,
    },
    DemoApp {
        name: "Router",
        repo: "router",
        team: "#platform",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "v1201", Outcome::RunningAt(Stage::Rollout)),
            ("staging", "v1200", Outcome::Ok),
            ("production", "v1200", Outcome::Ok),
        ],
        history: 5,
    },
    DemoApp {
        name: "Search API",
        repo: "search-api",
        team: "#search",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "v550", Outcome::Ok),
            ("staging", "v550", Outcome::Ok),
            ("production", "v549", Outcome::Ok),
        ],
        history: 4,
    },
    DemoApp {
        name: "Signon",
        repo: "signon",
        team: "#platform",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "v940", Outcome::Ok),
            ("staging", "v940", Outcome::Ok),
            ("production", "v940", Outcome::Ok),
        ],
        history: 40,
    },
    DemoApp {
        name: "Asset Manager",
        repo: "asset-manager",
        team: "#publishing-platform",
        manual: &["staging", "production"],
        notes: "Continuous deployment is off while the storage migration runs.",
        current: &[("integration", "v301", Outcome::Ok)],
        history: 3,
    },
    DemoApp {
        name: "Collections",
        repo: "collections",
        team: "#frontend",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "3f9c2a1", Outcome::Ok),
            ("staging", "3f9c2a1", Outcome::Ok),
            ("production", "3f9c2a1", Outcome::Ok),
        ],
        history: 4,
    },
    DemoApp {
        name: "Whitehall",
        repo: "whitehall",
        team: "#whitehall",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "v19023", Outcome::FailedAt(Stage::Rollout)),
            ("staging", "v19022", Outcome::Ok),
            ("production", "v19022", Outcome::Ok),
        ],
        history: 10,
    },
    DemoApp {
        name: "Email Alert API",
        repo: "email-alert-api",
        team: "#notifications",
        manual: &["production"],
        notes: "",
        current: &[
            ("integration", "v712", Outcome::Ok),
            ("staging", "v712", Outcome::Ok),
            ("production", "v712", Outcome::Ok),
        ],
        history: 4,
    },
    DemoApp {
        name: "Licensing",
        repo: "licensing",
        team: "#licensing",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "release_455", Outcome::NotifiedOnly),
            ("staging", "release_455", Outcome::NotifiedOnly),
            ("production", "release_454", Outcome::NotifiedOnly),
        ],
        history: 3,
    },
    DemoApp {
        name: "Static",
        repo: "static",
        team: "#frontend",
        manual: &[],
        notes: "",
        current: &[
            ("integration", "v2105", Outcome::Ok),
            ("staging", "v2105", Outcome::Ok),
            ("production", "v2105", Outcome::Ok),
        ],
        history: 30,
    },
];

/// Loads the demo data if the database has no deployments; says whether it did.
pub async fn load_if_empty(store: &Store) -> anyhow::Result<bool> {
    if store.deployment_count().await? > 0 {
        return Ok(false);
    }
    let specs: Vec<ApplicationSpec> = APPS
        .iter()
        .map(|a| {
            let repo = RepoName::parse(&format!("{ORG}/{}", a.repo)).expect("demo repos are valid");
            ApplicationSpec {
                name: a.name.into(),
                shortname: Shortname::parse(a.repo).expect("demo shortnames are valid"),
                repo,
                default_branch: "main".into(),
                workflow: "deploy.yml".into(),
                team: a.team.into(),
                notes: a.notes.into(),
                manual_environments: a.manual.iter().map(|s| s.to_string()).collect(),
            }
        })
        .collect();
    store.sync_applications(&specs).await?;
    let now = now_ms();
    let mut person = 0usize;
    for (ai, a) in APPS.iter().enumerate() {
        let repo = RepoName::parse(&format!("{ORG}/{}", a.repo))?;
        for (ei, (env, version, outcome)) in a.current.iter().enumerate() {
            let environment = store.environments().parse(env)?;
            // Older history: plain notifications, a few hours apart.
            for h in (1..=a.history).rev() {
                let old = older_version(version, h);
                person += 1;
                store
                    .record_deployment(&NewDeployment {
                        repo: repo.clone(),
                        environment: environment.clone(),
                        version: GitRef::parse(&old)?,
                        sha: None,
                        deployed_by: Some(PEOPLE[person % PEOPLE.len()].into()),
                        trigger: if ei == 0 {
                            Trigger::Continuous
                        } else {
                            Trigger::Promotion
                        },
                        created_at_ms: Some(
                            now - (h as i64) * 190 * MINUTE
                                - (ai as i64) * 7 * MINUTE
                                - (ei as i64) * 20 * MINUTE,
                        ),
                        base_status: DeploymentStatus::Succeeded,
                    })
                    .await?;
            }
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
                    trigger: if manual {
                        Trigger::Manual
                    } else if ei == 0 {
                        Trigger::Continuous
                    } else {
                        Trigger::Promotion
                    },
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
    for a in APPS {
        let repo = RepoName::parse(&format!("{ORG}/{}", a.repo))?;
        for (env, version, _) in a.current {
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
