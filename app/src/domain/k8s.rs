use super::InvalidInput;
use serde::{Deserialize, Serialize};

/// A Kubernetes object name as Argo Workflows uses it: a namespace is a DNS-1123 label
/// (at most 63 characters), a workflow name a DNS-1123 subdomain (at most 253). Lowercase
/// letters, digits, `-` (and `.` in subdomains), starting and ending with a letter or digit.
///
/// These go into Argo URLs, so nothing else is accepted: no `/`, `%`, `?`, `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct K8sName(String);

impl K8sName {
    /// A namespace: a DNS-1123 label.
    pub fn namespace(s: &str, field: &str) -> Result<Self, InvalidInput> {
        Self::check(s, field, 63, false)
    }

    /// An object (workflow) name: a DNS-1123 subdomain.
    pub fn object(s: &str, field: &str) -> Result<Self, InvalidInput> {
        Self::check(s, field, 253, true)
    }

    fn check(s: &str, field: &str, max: usize, dots: bool) -> Result<Self, InvalidInput> {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ok = !s.is_empty()
            && s.len() <= max
            && s.starts_with(alnum)
            && s.ends_with(alnum)
            && s.chars()
                .all(|c| alnum(c) || c == '-' || (dots && c == '.'))
            && !(dots
                && s.split('.').any(|label| {
                    label.is_empty() || label.starts_with('-') || label.ends_with('-')
                }));
        InvalidInput::check(ok, field, || {
            format!(
                "{s:?} is not a valid Kubernetes name (at most {max} lowercase letters, digits, '-'{}, starting and ending with a letter or digit)",
                if dots { " or '.'" } else { "" }
            )
        })?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

parsed_string!(K8sName, 0, |s: &str| K8sName::object(s, "name"));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        type Check = fn(&str, &str) -> Result<K8sName, InvalidInput>;
        let long_label = "a".repeat(64);
        let long_name = "a".repeat(254);
        let cases: [(Check, &[&str], &[&str]); 2] = [
            (
                K8sName::namespace,
                &["apps", "argo-workflows", "a1"],
                &[
                    "",
                    "../../x",
                    "wf/terminate?",
                    "Apps",
                    "-a",
                    "a-",
                    "a.b",
                    "%2e",
                    "a b",
                    &long_label,
                ],
            ),
            (
                K8sName::object,
                &["post-sync-x2kf", "deploy.v1-2", "a"],
                &[
                    "", "..", "a..b", ".a", "a.", "wf/x", "wf?x", "WF", "a.-b", &long_name,
                ],
            ),
        ];
        for (check, good, bad) in cases {
            for ok in good {
                assert!(check(ok, "n").is_ok(), "{ok}");
            }
            for bad in bad {
                assert!(check(bad, "n").is_err(), "{bad}");
            }
        }
    }
}
