use super::InvalidInput;
use serde::{Deserialize, Serialize};

/// A GitHub repository, `owner/name`, as GitHub allows them: the owner 1 to 39 letters,
/// digits or single hyphens; the name 1 to 100 letters, digits, `.`, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoName {
    full: String,
    slash: usize,
}

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let bad = |why: &str| {
            Err(InvalidInput::new(
                "repo",
                format!("{s:?} is not a GitHub repository \"owner/name\": {why}"),
            ))
        };
        let Some((owner, name)) = s.split_once('/') else {
            return bad("there is no '/'");
        };
        let owner_ok = (1..=39).contains(&owner.len())
            && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !owner.starts_with('-')
            && !owner.ends_with('-')
            && !owner.contains("--");
        if !owner_ok {
            return bad("the owner must be 1 to 39 letters, digits or single hyphens");
        }
        let name_ok = (1..=100).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && name != "."
            && name != "..";
        if !name_ok {
            return bad("the name must be 1 to 100 letters, digits, '.', '-' or '_'");
        }
        Ok(Self {
            full: s.to_owned(),
            slash: owner.len(),
        })
    }

    /// A repo as the Release app's clients name it: `owner/name`, a GitHub URL
    /// (`git@github.com:owner/name.git`, `https://github.com/owner/name`), or a bare
    /// `name`, which belongs to `default_owner` (refused when there is none).
    pub fn parse_reference(s: &str, default_owner: Option<&str>) -> Result<Self, InvalidInput> {
        let t = s.trim();
        let path = [
            "git@github.com:",
            "ssh://git@github.com/",
            "https://github.com/",
            "http://github.com/",
        ]
        .iter()
        .find_map(|p| t.strip_prefix(p))
        .map(|rest| rest.trim_end_matches('/'))
        .map(|rest| rest.strip_suffix(".git").unwrap_or(rest));
        match path {
            Some(p) => Self::parse(p),
            None if t.contains('/') || t.contains(':') => Self::parse(t),
            None => match default_owner {
                Some(owner) => Self::parse(&format!("{owner}/{}", t.strip_suffix(".git").unwrap_or(t))),
                None => Err(InvalidInput::new(
                    "repo",
                    format!(
                        "{s:?} names no owner and this server has no default_owner; send \"owner/name\""
                    ),
                )),
            },
        }
    }

    pub fn owner(&self) -> &str {
        &self.full[..self.slash]
    }

    pub fn name(&self) -> &str {
        &self.full[self.slash + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The shortname an application created on the fly gets: the repo's name, lowercased.
    pub fn default_shortname(&self) -> Shortname {
        Shortname::from_repo_name(self.name())
    }

    /// The Release app's name for an application created on the fly: the repo name's words
    /// humanized and title-cased, with `api` as `API` (`new_app` and `new-app` -> "New
    /// App", `devops-api` -> "Devops API").
    pub fn humanized_name(&self) -> String {
        self.name()
            .split(|c: char| c == '-' || c == '_' || c == '.' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .map(|w| {
                if w.eq_ignore_ascii_case("api") {
                    "API".to_string()
                } else {
                    let mut cs = w.chars();
                    match cs.next() {
                        Some(first) => first
                            .to_uppercase()
                            .chain(cs.flat_map(char::to_lowercase))
                            .collect(),
                        None => String::new(),
                    }
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod reference_tests {
    use super::RepoName;

    #[test]
    fn references_as_the_release_app_clients_send_them() {
        let p = |s: &str, d: Option<&str>| RepoName::parse_reference(s, d).map(|r| r.to_string());
        for (reference, default_owner, repo) in [
            ("alphagov/content-store", None, "alphagov/content-store"),
            ("content-store", Some("alphagov"), "alphagov/content-store"),
            (
                "git@github.com:alphagov/whitehall.git",
                None,
                "alphagov/whitehall",
            ),
            (
                "https://github.com/alphagov/whitehall/",
                None,
                "alphagov/whitehall",
            ),
            (
                "ssh://git@github.com/alphagov/router.git",
                Some("x"),
                "alphagov/router",
            ),
        ] {
            assert_eq!(p(reference, default_owner).unwrap(), repo, "{reference}");
        }
        let e = p("content-store", None).unwrap_err();
        assert!(e.message.contains("default_owner"), "{e:?}");
        // Anything else is still parsed strictly.
        assert!(p("git@gitlab.com:a/b.git", Some("alphagov")).is_err());
        assert!(p("../etc", Some("alphagov")).is_err());
        assert!(p("a b", Some("alphagov")).is_err());
        assert!(p("", Some("alphagov")).is_err());
        assert!(p("https://github.com/a/b/c", None).is_err());
    }
}

parsed_string!(RepoName, full, RepoName::parse);

/// An application's URL slug: 1 to 100 lowercase letters, digits, `-` or `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shortname(String);

impl Shortname {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let ok = (1..=100).contains(&s.len()) && super::slug_chars(s);
        InvalidInput::check(ok, "shortname", || {
            format!("{s:?} is not a shortname (lowercase letters, digits, - and _)")
        })?;
        Ok(Self(s.to_owned()))
    }

    /// The Release app's shortname for a repo created on the fly: its name
    /// "parameterized", lower case with every run of other characters made one `-`
    /// (`new_app` and `New--App` -> `new-app`).
    fn from_repo_name(name: &str) -> Self {
        let mut s = String::with_capacity(name.len());
        for c in name.chars() {
            if c.is_ascii_alphanumeric() {
                s.push(c.to_ascii_lowercase());
            } else if !s.is_empty() && !s.ends_with('-') {
                s.push('-');
            }
        }
        while s.ends_with('-') {
            s.pop();
        }
        s.truncate(100);
        if s.is_empty() {
            s.push('x');
        }
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

parsed_string!(Shortname, 0, Shortname::parse);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn repos() {
        let r = RepoName::parse("alphagov/content-store").unwrap();
        assert_eq!(r.owner(), "alphagov");
        assert_eq!(r.name(), "content-store");
        assert_eq!(r.default_shortname().as_str(), "content-store");
        assert_eq!(
            RepoName::parse("trade-tariff/Tariff.API")
                .unwrap()
                .default_shortname()
                .as_str(),
            "tariff-api"
        );
        for bad in [
            "", "noslash", "/x", "x/", "a/b/c", "-a/b", "a-/b", "a--b/c", "a/..", "a/.", "a/b c",
            "a b/c",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// As the Release app names an application it first hears of.
    #[test]
    fn release_app_names() {
        let name = |r: &str| RepoName::parse(r).unwrap().humanized_name();
        let short = |r: &str| {
            RepoName::parse(r)
                .unwrap()
                .default_shortname()
                .as_str()
                .to_owned()
        };
        assert_eq!(name("o/new_app"), "New App");
        assert_eq!(name("o/new-app"), "New App");
        assert_eq!(name("o/devops-api"), "Devops API");
        assert_eq!(name("o/Tariff.API"), "Tariff API");
        assert_eq!(short("o/new_app"), "new-app");
        assert_eq!(short("o/New__App"), "new-app");
        assert_eq!(short("o/devops-api"), "devops-api");
    }

    proptest! {
        #[test]
        fn repo_parse_never_panics(s in "\\PC{0,60}") {
            if let Ok(r) = RepoName::parse(&s) {
                prop_assert_eq!(format!("{}/{}", r.owner(), r.name()), s.clone());
                prop_assert!(Shortname::parse(r.default_shortname().as_str()).is_ok());
            }
        }

        #[test]
        fn valid_repos_parse(o in "[a-z0-9]{1,20}", n in "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,30}") {
            let s = format!("{o}/{n}");
            prop_assert!(RepoName::parse(&s).is_ok());
        }
    }
}
