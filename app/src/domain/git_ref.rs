use super::InvalidInput;
use serde::{Deserialize, Serialize};

/// A git reference that can be deployed: a tag (`v1234`, `release_1234`), a branch or a
/// commit SHA. Follows `git check-ref-format`, so whatever we pass to GitHub as `gitRef` is
/// something git itself would accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GitRef(String);

impl GitRef {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let bad = |why: &str| {
            Err(InvalidInput::new(
                "version",
                format!("{s:?} is not a valid git ref or SHA: {why}"),
            ))
        };
        if s.is_empty() {
            return bad("it is empty");
        }
        if s.len() > 255 {
            return bad("it is longer than 255 characters");
        }
        if s == "@" {
            return bad("\"@\" alone is not a ref");
        }
        if s.starts_with('-') {
            return bad("it starts with '-'");
        }
        if s.starts_with('/') || s.ends_with('/') {
            return bad("it starts or ends with '/'");
        }
        if s.ends_with('.') || s.ends_with(".lock") {
            return bad("it ends with '.' or '.lock'");
        }
        if s.contains("..") || s.contains("//") || s.contains("@{") {
            return bad("it contains '..', '//' or '@{'");
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || " ~^:?*[\\".contains(*c))
        {
            return bad(&format!("it contains {c:?}"));
        }
        if s.split('/').any(|part| part.starts_with('.')) {
            return bad("a component starts with '.'");
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this ref looks like a commit SHA rather than a tag or branch.
    pub fn as_sha(&self) -> Option<Sha> {
        Sha::parse(&self.0).ok()
    }
}

parsed_string!(GitRef, 0, GitRef::parse);

/// A commit SHA: 7 to 40 hexadecimal digits (or 64 for SHA-256 repositories), kept lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha(String);

impl Sha {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        let ok = ((7..=40).contains(&s.len()) || s.len() == 64)
            && s.chars().all(|c| c.is_ascii_hexdigit());
        InvalidInput::check(ok, "sha", || {
            format!("{s:?} is not a commit SHA (7 to 40 hex digits)")
        })?;
        Ok(Self(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

parsed_string!(Sha, 0, Sha::parse);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_real_versions() {
        for ok in [
            "v1234",
            "release_1234",
            "main",
            "feature/new-thing",
            "a1b2c3d",
            "v1.2.3",
            "deployed-to-production",
        ] {
            assert!(GitRef::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_git_refuses() {
        for bad in [
            "", "-x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b", "/a", "a/",
            "a.lock", "a.", "@", "a@{1}", "a//b", ".a", "a/.b", "a\u{1}",
        ] {
            assert!(GitRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(GitRef::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn sha_shapes() {
        assert_eq!(Sha::parse("ABCDEF1").unwrap().as_str(), "abcdef1");
        assert!(Sha::parse("abcdef").is_err());
        assert!(Sha::parse("xyzxyzx").is_err());
        assert!(Sha::parse(&"a".repeat(40)).is_ok());
        assert!(Sha::parse(&"a".repeat(41)).is_err());
        assert!(GitRef::parse("deadbeef").unwrap().as_sha().is_some());
        assert!(GitRef::parse("v1234").unwrap().as_sha().is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_accepted_refs_are_safe(s in "\\PC{0,80}") {
            if let Ok(r) = GitRef::parse(&s) {
                prop_assert!(!r.as_str().contains(".."));
                prop_assert!(!r.as_str().chars().any(|c| c.is_whitespace() || c.is_ascii_control()));
                prop_assert!(!r.as_str().starts_with('-'));
            }
        }

        #[test]
        fn simple_tags_round_trip(s in "[a-zA-Z0-9_][a-zA-Z0-9_-]{0,40}") {
            let r = GitRef::parse(&s).unwrap();
            prop_assert_eq!(r.as_str(), s.as_str());
            let json = serde_json::to_string(&r).unwrap();
            let back: GitRef = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back, r);
        }

        #[test]
        fn shas_are_hex(s in "[0-9a-f]{7,40}") {
            prop_assert!(Sha::parse(&s).is_ok());
        }
    }
}
