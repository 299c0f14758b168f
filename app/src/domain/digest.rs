//! The daily digest: once a day, each alert receiver with teams gets one message listing
//! its teams' apps that wait for someone: a manual deployment (for how long, and how many
//! commits behind when GitHub could say), a failed or drifting cell, a promotion a gate
//! holds. Nothing to say: no message. The facts are gathered by `actions::digest`; this
//! is the rule of what is said, and how.

use crate::model::AppSummary;

/// One thing a digest says about one app.
#[derive(Debug, Clone, PartialEq)]
pub enum DigestItem {
    /// `environment` is deployed by hand and does not run what `behind` runs.
    Manual {
        environment: String,
        behind: String,
        /// What `behind` runs, waiting to go on.
        version: String,
        /// What `environment` runs (none: nothing yet).
        running: Option<String>,
        /// Since the waiting version reached `behind`.
        since_ms: i64,
        /// From GitHub's compare of the two, when a token allowed.
        commits_behind: Option<i64>,
    },
    Failed {
        environment: String,
        version: String,
        stage: Option<String>,
    },
    Drift {
        environment: String,
        running: String,
        expected: String,
        since_ms: i64,
    },
    /// A gate holds the promotion of `version` to `environment` (`why`: "soaking 12/30
    /// min", "required checks not passing: ci/build failure").
    Held {
        environment: String,
        version: String,
        why: String,
    },
}

/// An app's items, as the digest lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestApp {
    pub name: String,
    pub shortname: String,
    pub team: String,
    pub items: Vec<DigestItem>,
}

/// What the grid already knows of `app`: manual deployments waiting, failed cells, drift
/// (a gate's hold and commits behind are added by the caller, which asks GitHub).
pub fn items_of(app: &AppSummary, environments: &[String]) -> Vec<DigestItem> {
    use super::Flag;
    let cell = |env: &str| {
        environments
            .iter()
            .position(|e| e == env)
            .and_then(|i| app.cells.get(i))
            .and_then(|c| c.as_ref())
    };
    let mut items = Vec::new();
    for flag in &app.flags {
        match flag {
            Flag::ManualDeployment {
                environment,
                behind,
            } => {
                let Some(waiting) = cell(behind) else {
                    continue;
                };
                items.push(DigestItem::Manual {
                    environment: environment.clone(),
                    behind: behind.clone(),
                    version: waiting.version.clone(),
                    running: cell(environment).map(|c| c.version.clone()),
                    since_ms: waiting.created_at_ms,
                    commits_behind: None,
                });
            }
            Flag::LastDeploymentFailed { environment, stage } => {
                items.push(DigestItem::Failed {
                    environment: environment.clone(),
                    version: cell(environment).map_or_else(|| "?".into(), |c| c.version.clone()),
                    stage: stage.map(|s| s.label().to_owned()),
                });
            }
            Flag::Drift {
                environment,
                running,
                expected,
                since_ms,
            } => items.push(DigestItem::Drift {
                environment: environment.clone(),
                running: running.clone(),
                expected: expected.clone(),
                since_ms: *since_ms,
            }),
            Flag::NotInSync { .. } => {}
        }
    }
    items
}

/// "3 days", "5 h", "12 min".
pub fn span(ms: i64) -> String {
    let min = (ms / 60_000).max(0);
    match min {
        m if m >= 48 * 60 => format!("{} days", m / (24 * 60)),
        m if m >= 60 => format!("{} h", m / 60),
        m => format!("{m} min"),
    }
}

/// The digest's text for a receiver of `teams`, or `None` when none of their apps waits
/// for anyone. `date` is the local day ("Monday 7 December 2026"); `public_url` where
/// Release is. Apps in the order given; lines at most 500 apps.
pub fn digest_text(
    teams: &[String],
    apps: &[DigestApp],
    date: &str,
    now_ms: i64,
    public_url: &str,
) -> Option<String> {
    let mine: Vec<&DigestApp> = apps
        .iter()
        .filter(|a| teams.contains(&a.team) && !a.items.is_empty())
        .take(500)
        .collect();
    if mine.is_empty() {
        return None;
    }
    let mut sections: [(&str, Vec<String>); 4] = [
        ("Waiting for a manual deployment", vec![]),
        ("Failed", vec![]),
        ("Drifting from what Release recorded", vec![]),
        ("Held by a gate", vec![]),
    ];
    for a in &mine {
        let link = format!(
            "{}/applications/{}",
            public_url.trim_end_matches('/'),
            a.shortname
        );
        for item in &a.items {
            let (section, line) = match item {
                DigestItem::Manual {
                    environment,
                    behind,
                    version,
                    running,
                    since_ms,
                    commits_behind,
                } => {
                    let runs = match running {
                        Some(r) => format!("{environment} runs {r}"),
                        None => format!("{environment} runs nothing yet"),
                    };
                    let commits = match commits_behind {
                        Some(1) => ", 1 commit behind".to_string(),
                        Some(n) => format!(", {n} commits behind"),
                        None => String::new(),
                    };
                    (
                        0,
                        format!(
                            "{}: {version} in {behind} waits to go to {environment} ({runs}) for {}{commits}",
                            a.name,
                            span(now_ms - since_ms)
                        ),
                    )
                }
                DigestItem::Failed {
                    environment,
                    version,
                    stage,
                } => (
                    1,
                    match stage {
                        Some(s) => format!("{}: {version} failed in {environment} at {s}", a.name),
                        None => format!("{}: {version} failed in {environment}", a.name),
                    },
                ),
                DigestItem::Drift {
                    environment,
                    running,
                    expected,
                    since_ms,
                } => (
                    2,
                    format!(
                        "{}: Argo CD says {environment} runs {running}, not {expected}, for {}",
                        a.name,
                        span(now_ms - since_ms)
                    ),
                ),
                DigestItem::Held {
                    environment,
                    version,
                    why,
                } => (
                    3,
                    format!("{}: {version} to {environment} is held: {why}", a.name),
                ),
            };
            sections[section].1.push(format!("• {line} {link}"));
        }
    }
    let mut text = format!("Release digest for {}, {date}", teams.join(", "));
    for (title, lines) in sections.iter().filter(|(_, l)| !l.is_empty()) {
        text.push_str(&format!(
            "\n\n{title} ({}):\n{}",
            lines.len(),
            lines.join("\n")
        ));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_say_is_no_message() {
        let quiet = DigestApp {
            name: "Router".into(),
            shortname: "router".into(),
            team: "#a".into(),
            items: vec![],
        };
        assert_eq!(
            digest_text(&["#a".into()], &[quiet], "d", 0, "http://r"),
            None
        );
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(59_000), "0 min");
        assert_eq!(span(12 * 60_000), "12 min");
        assert_eq!(span(5 * 3_600_000 + 1), "5 h");
        assert_eq!(span(3 * 86_400_000), "3 days");
    }
}
