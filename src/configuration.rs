//! Configuration: the `release.toml` file (environments and applications) and the
//! settings given on the command line or in the environment.

use anyhow::{bail, Context};
use app::domain::{Environments, RepoName, Shortname};
use app::store::ApplicationSpec;
use serde::Deserialize;
use std::path::Path;

/// The configuration file, as written by people.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    environments: Option<Vec<String>>,
    #[serde(default)]
    applications: Vec<FileApplication>,
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
}

/// The configuration after checking: every name parsed, every environment known.
#[derive(Debug, Clone)]
pub struct Config {
    pub environments: Environments,
    pub applications: Vec<ApplicationSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Self { environments: Environments::default(), applications: vec![] }
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in the configuration file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: FileConfig = toml::from_str(text)?;
        let environments = match file.environments {
            Some(names) => Environments::new(&names)?,
            None => Environments::default(),
        };
        let mut applications = Vec::with_capacity(file.applications.len());
        for a in file.applications {
            let repo = RepoName::parse(&a.repo)?;
            let shortname = match a.shortname {
                Some(s) => Shortname::parse(&s)?,
                None => repo.default_shortname(),
            };
            if applications.iter().any(|x: &ApplicationSpec| x.shortname == shortname) {
                bail!("two applications have the shortname {shortname:?}");
            }
            for m in &a.manual {
                environments.parse(m).with_context(|| format!("application {shortname}: manual"))?;
            }
            let workflow = a.workflow.unwrap_or_else(|| "deploy.yml".into());
            if workflow.is_empty() || workflow.contains('/') || !(workflow.ends_with(".yml") || workflow.ends_with(".yaml")) {
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
        Ok(Self { environments, applications })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn refuses_mistakes() {
        assert!(Config::parse("environments = []").is_err());
        assert!(Config::parse("[[applications]]\nrepo = \"nope\"").is_err());
        assert!(Config::parse("[[applications]]\nrepo = \"a/b\"\nmanual = [\"prod\"]").is_err());
        assert!(Config::parse("unknown = 1").is_err());
        assert!(Config::parse("[[applications]]\nrepo = \"a/b\"\n[[applications]]\nrepo = \"c/b\"").is_err());
    }
}
