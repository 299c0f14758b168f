use super::InvalidInput;
use serde::{Deserialize, Serialize};

/// An environment name known to this Release installation (`integration`, `staging`...).
///
/// The only way to get one from outside input is [`Environments::parse`], which checks it
/// against the configured pipeline; an `Environment` therefore always names a real stage.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Environment(String);

impl Environment {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks the shape of a name: 1 to 32 lowercase letters, digits, `-` or `_`, starting
    /// with a letter. Used for configuration; requests go through [`Environments::parse`].
    pub fn parse_name(s: &str) -> Result<Self, InvalidInput> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && super::slug_chars(s);
        InvalidInput::check(ok, "environment", || {
            format!("{s:?} is not a valid environment name (lowercase letters, digits, - and _)")
        })?;
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The pipeline: environments in promotion order (integration -> staging -> production).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Environments(Vec<Environment>);

impl Default for Environments {
    fn default() -> Self {
        Self(
            ["integration", "staging", "production"]
                .iter()
                .map(|s| Environment(s.to_string()))
                .collect(),
        )
    }
}

impl Environments {
    /// Builds the pipeline from configured names: at least one, no duplicates.
    pub fn new(names: &[String]) -> Result<Self, InvalidInput> {
        if names.is_empty() {
            return Err(InvalidInput::new(
                "environments",
                "at least one environment is needed",
            ));
        }
        let mut out: Vec<Environment> = Vec::with_capacity(names.len());
        for n in names {
            let e = Environment::parse_name(n)?;
            if out.contains(&e) {
                return Err(InvalidInput::new(
                    "environments",
                    format!("{n:?} is listed twice"),
                ));
            }
            out.push(e);
        }
        Ok(Self(out))
    }

    /// Parses a name from a request: it must be one of the configured environments.
    pub fn parse(&self, s: &str) -> Result<Environment, InvalidInput> {
        self.0.iter().find(|e| e.0 == s).cloned().ok_or_else(|| {
            InvalidInput::new(
                "environment",
                format!(
                    "unknown environment {s:?}; expected one of: {}",
                    self.names().join(", ")
                ),
            )
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Environment> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.as_str()).collect()
    }

    /// The names, owned (for the views and reports that carry them).
    pub fn owned_names(&self) -> Vec<String> {
        self.0.iter().map(|e| e.0.clone()).collect()
    }

    /// Position in the pipeline, `None` for an environment that is not configured.
    pub fn index_of(&self, e: &Environment) -> Option<usize> {
        self.0.iter().position(|x| x == e)
    }

    /// The environment a successful deployment is promoted to, if any.
    pub fn next(&self, e: &Environment) -> Option<&Environment> {
        self.index_of(e).and_then(|i| self.0.get(i + 1))
    }

    /// The environment before `e` in the pipeline, if any.
    pub fn previous(&self, e: &Environment) -> Option<&Environment> {
        self.index_of(e)
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.0.get(i))
    }

    pub fn as_slice(&self) -> &[Environment] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_configured_environments() {
        let envs = Environments::default();
        assert_eq!(envs.parse("staging").unwrap().as_str(), "staging");
        let err = envs.parse("prod").unwrap_err();
        assert_eq!(err.field, "environment");
        assert!(err.message.contains("integration, staging, production"));
        assert!(envs.parse("").is_err());
        assert!(envs.parse("Staging").is_err());
    }

    #[test]
    fn order_and_next() {
        let envs = Environments::default();
        let i = envs.parse("integration").unwrap();
        let p = envs.parse("production").unwrap();
        assert_eq!(envs.next(&i).unwrap().as_str(), "staging");
        assert!(envs.next(&p).is_none());
    }

    #[test]
    fn configuration_is_checked() {
        assert!(Environments::new(&[]).is_err());
        assert!(Environments::new(&["a".into(), "a".into()]).is_err());
        assert!(Environments::new(&["Bad Name".into()]).is_err());
        assert_eq!(
            Environments::new(&["dev".into(), "prod".into()])
                .unwrap()
                .len(),
            2
        );
    }
}
