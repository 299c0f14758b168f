//! Approvals of GitHub environments (required reviewers): what a waiting run is, as people
//! read it, and who may review it from Release. Pure; GitHub's answers are read by
//! `pipeline`, kept by `store::approvals`.

use serde::{Deserialize, Serialize};

/// One reviewer GitHub names for an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reviewer {
    User(String),
    Team(String),
}

impl Reviewer {
    pub fn label(&self) -> String {
        match self {
            Reviewer::User(login) => format!("@{login}"),
            Reviewer::Team(slug) => format!("team {slug}"),
        }
    }
}

/// A run waiting for a review in one GitHub environment, as GitHub's pending_deployments
/// describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub environment: String,
    pub environment_id: i64,
    pub wait_timer_minutes: Option<i64>,
    pub reviewers: Vec<Reviewer>,
    /// Whether the person whose token read it may approve (GitHub's word).
    pub current_user_can_approve: bool,
}

/// A waiting approval as Release shows it, on the deployment, the app's page and the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct ApprovalView {
    pub deployment_id: i64,
    /// Release's environment of the deployment (who may review needs its deploy role).
    #[serde(default)]
    pub environment: String,
    pub github_environment: String,
    /// waiting, approved, rejected, gone
    pub state: String,
    pub since_ms: i64,
    pub reviewers: String,
    pub wait_timer_minutes: Option<i64>,
    pub decided_by: Option<String>,
}

impl ApprovalView {
    /// "waiting for approval in production: 12 min, reviewers: @alice, team
    /// release-admins (wait timer 30 min)".
    pub fn label(&self, now_ms: i64) -> String {
        match self.state.as_str() {
            "waiting" => {
                let minutes = ((now_ms - self.since_ms).max(0)) / 60_000;
                let mut s = format!(
                    "waiting for approval in {}: {}",
                    self.github_environment,
                    if minutes < 60 {
                        format!("{minutes} min")
                    } else {
                        format!("{} h {} min", minutes / 60, minutes % 60)
                    }
                );
                if !self.reviewers.is_empty() {
                    s.push_str(&format!(", reviewers: {}", self.reviewers));
                }
                if let Some(t) = self.wait_timer_minutes.filter(|t| *t > 0) {
                    s.push_str(&format!(" (wait timer {t} min)"));
                }
                s
            }
            "approved" | "rejected" => format!(
                "{} in {} by {}",
                self.state,
                self.github_environment,
                self.decided_by.as_deref().unwrap_or("someone on GitHub")
            ),
            _ => format!("no longer waiting in {}", self.github_environment),
        }
    }
}

/// The reviewers as one line ("@alice, team release-admins"), at most ten named.
pub fn reviewers_label(reviewers: &[Reviewer]) -> String {
    let mut names: Vec<String> = reviewers.iter().take(10).map(Reviewer::label).collect();
    if reviewers.len() > 10 {
        names.push(format!("{} more", reviewers.len() - 10));
    }
    names.join(", ")
}

/// Someone, as far as Release knows them: a login (which GitHub lets people rename) and
/// GitHub's numeric id (which stays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Person<'a> {
    pub login: Option<&'a str>,
    pub github_id: Option<i64>,
}

impl Person<'_> {
    /// The same person: the same GitHub id when both are known, else the same login.
    fn is(&self, other: &Person<'_>) -> bool {
        match (self.github_id, other.github_id) {
            (Some(a), Some(b)) => a == b,
            _ => match (self.login, other.login) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            },
        }
    }
}

/// Why `me` may not review a run from Release, if they may not: the environment prevents
/// self-review and they dispatched the run (Release dispatches with the clicker's own
/// token, so the clicker is the run's actor), or who dispatched it is not known; or
/// GitHub does not let them (`current_user_can_approve`).
pub fn may_review(
    me: &Person<'_>,
    dispatcher: &Person<'_>,
    current_user_can_approve: bool,
    prevent_self_review: bool,
) -> Result<(), String> {
    let who = me.login.unwrap_or("you");
    if prevent_self_review {
        if dispatcher.login.is_none() && dispatcher.github_id.is_none() {
            return Err(
                "this environment prevents self-review and Release does not know who started this run: review it on GitHub".into(),
            );
        }
        if me.is(dispatcher) {
            return Err(format!(
                "this environment prevents self-review: {who} started this run, so someone else must review it"
            ));
        }
    }
    if !current_user_can_approve {
        return Err(format!(
            "GitHub says {who} may not review deployments to this environment"
        ));
    }
    Ok(())
}

/// A review's comment: 0 to 1,000 printable characters.
pub fn parse_comment(comment: Option<&str>) -> Result<String, String> {
    let c = comment.map(str::trim).unwrap_or("");
    if c.chars().count() > 1000 || c.chars().any(|ch| ch.is_control() && ch != '\n') {
        return Err("a review's comment is at most 1,000 printable characters".into());
    }
    Ok(c.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_says_where_how_long_and_who() {
        let v = ApprovalView {
            deployment_id: 1,
            environment: "production".into(),
            github_environment: "production".into(),
            state: "waiting".into(),
            since_ms: 0,
            reviewers: reviewers_label(&[
                Reviewer::User("alice".into()),
                Reviewer::Team("release-admins".into()),
            ]),
            wait_timer_minutes: Some(30),
            decided_by: None,
        };
        assert_eq!(
            v.label(12 * 60_000),
            "waiting for approval in production: 12 min, reviewers: @alice, team release-admins (wait timer 30 min)"
        );
        assert_eq!(
            v.label(125 * 60_000).split(',').next().unwrap(),
            "waiting for approval in production: 2 h 5 min"
        );
    }

    #[test]
    fn self_review_and_githubs_word() {
        let p = |login: &'static str, id: Option<i64>| Person {
            login: Some(login),
            github_id: id,
        };
        assert!(
            may_review(&p("octocat", None), &p("OctoCat", None), true, true)
                .unwrap_err()
                .contains("self-review")
        );
        // A renamed login is still the same person by GitHub id.
        assert!(
            may_review(&p("octo-new", Some(7)), &p("octocat", Some(7)), true, true)
                .unwrap_err()
                .contains("self-review")
        );
        assert!(may_review(&p("octocat", Some(7)), &p("octocat", Some(7)), true, false).is_ok());
        assert!(may_review(&p("boss", Some(8)), &p("octocat", Some(7)), true, true).is_ok());
        let unknown = Person {
            login: None,
            github_id: None,
        };
        assert!(may_review(&p("boss", Some(8)), &unknown, true, true).is_err());
        assert!(may_review(&p("boss", Some(8)), &unknown, true, false).is_ok());
        assert!(
            may_review(&p("boss", Some(8)), &p("octocat", Some(7)), false, false)
                .unwrap_err()
                .contains("may not review")
        );
        assert!(parse_comment(Some(&"x".repeat(1001))).is_err());
        assert_eq!(parse_comment(Some("  ship it ")).unwrap(), "ship it");
    }
}
