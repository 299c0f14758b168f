//! Server-rendered HTML of the pages, from the real server with the demo data. These are
//! what a person with JavaScript off sees, and what the browser hydrates.

use crate::common;

fn row<'a>(html: &'a str, app: &str) -> &'a str {
    let start = html
        .find(&format!("<a href=\"/applications/{app}\""))
        .unwrap_or_else(|| panic!("no row for {app}"));
    let start = html[..start].rfind("<tr").unwrap();
    let end = start + html[start..].find("</tr>").unwrap();
    &html[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_has_every_app_with_its_flags() {
    let app = common::TestApp::demo().await;
    let html = app.page_ok("/").await;
    assert_eq!(
        html.matches("<th><a href=\"/applications/").count(),
        12,
        "a row per demo app"
    );
    // 7, and `static`, whose (simulated) Argo CD runs the version before: drift.
    assert!(
        html.contains("8 of 12 applications need attention"),
        "summary"
    );
    assert!(row(&html, "static").contains("drift: production"));
    assert!(row(&html, "frontend").contains("manual deployment: production"));
    assert!(row(&html, "asset-manager").contains("manual deployment: staging"));
    assert!(row(&html, "publisher").contains("smoke tests failed"));
    assert!(row(&html, "publisher").contains("last deployment failed: staging"));
    assert!(
        row(&html, "router").contains("<td class=\"run\" data-t="),
        "in progress (the words come from CSS)"
    );
    assert!(row(&html, "search-api").contains("not in sync: production"));
    let ok = row(&html, "content-store");
    assert!(
        !ok.contains("<span class=") && ok.starts_with("<tr>"),
        "an app in order has no flags"
    );
    assert!(ok.contains("<b>v3412</b>"), "{ok}");
    assert!(ok.contains("href=\"/applications/content-store\""), "{ok}");
    // Environments in pipeline order.
    let i = html.find(">integration<").unwrap();
    let s = html.find(">staging<").unwrap();
    let p = html.find(">production<").unwrap();
    assert!(i < s && s < p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_works_without_javascript() {
    let app = common::TestApp::demo().await;
    let (_, html) = app.page("/?q=publisher").await;
    assert!(!row(&html, "publisher").contains("hidden"));
    assert!(row(&html, "frontend").starts_with("<tr hidden"));
    assert!(
        html.contains("value=\"publisher\""),
        "the box keeps what was typed"
    );
    let (_, html) = app.page("/?attention=1").await;
    assert!(row(&html, "content-store").starts_with("<tr hidden"));
    assert!(!row(&html, "frontend").starts_with("<tr hidden"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_page_explains_its_flags() {
    let app = common::TestApp::demo().await;
    let html = app.page_ok("/applications/publisher").await;
    assert!(html.contains("<h1>Publisher"));
    assert!(html.contains("the latest deployment to staging failed at smoke tests"));
    assert!(
        html.contains("smoke tests failed: see the workflow"),
        "the event's message is on the timeline"
    );
    let html = app.page_ok("/applications/signon").await;
    assert!(
        html.matches("class=\"deployment\"").count() >= 60,
        "20 per environment"
    );
    let (status, _) = app.page("/applications/no-such-app").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_filters_by_environment() {
    let app = common::TestApp::demo().await;
    let html = app.page_ok("/activity?environment=staging").await;
    assert!(html.contains("<td>staging"));
    assert!(!html.contains("<td>production") && !html.contains("<td>integration"));
    let (_, html) = app.page("/activity?environment=qa").await;
    assert!(
        html.contains("unknown environment"),
        "a bad filter is explained"
    );
}

/// The grid's byte budget: 448 bytes per application row at 5 environments (440 until a
/// "manual deployment" flag became a link to its one-click promotion). Every cell is
/// filled with what a pipeline sends at most: a version, a full SHA and who deployed it;
/// one app in four has production a version behind (flagged). `make bench`'s data (no
/// SHA) comes to about 390 bytes a row, 1,000 apps within the 400 KB the performance issue
/// asks. A change that makes each row heavier fails here, in bytes, not in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_stays_within_its_byte_budget_per_row() {
    const APPS: usize = 40;
    const BUDGET_PER_ROW: usize = 448;
    let mut config = String::from(
        "environments = [\"dev\", \"integration\", \"staging\", \"preprod\", \"production\"]\n",
    );
    for i in 0..APPS {
        config.push_str(&format!(
            "\n[[applications]]\nname = \"Service {i:03}\"\nrepo = \"alphagov/service-{i:03}\"\nteam = \"#team-{}\"\n{}",
            i % 12,
            if i % 5 == 0 { "manual = [\"production\"]\n" } else { "" }
        ));
    }
    let app = common::TestApp::builder().config(&config).spawn().await;
    for i in 0..APPS {
        for (e, env) in ["dev", "integration", "staging", "preprod", "production"]
            .iter()
            .enumerate()
        {
            let behind = usize::from(i % 4 == 0 && e == 4);
            let version = 4000 + i - behind;
            let r = app
                .post_json(
                    "/deployments",
                    &serde_json::json!({"repo": format!("alphagov/service-{i:03}"), "deployment": {
                        "environment": env, "version": format!("v{version}"),
                        "sha": format!("{:040x}", (version as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)), "deployed_by": "ci.bot"}}),
                )
                .await;
            assert_eq!(r.status(), 200);
        }
    }
    let c = app.signed_in("viewer").await;
    let fragment = app.get_text(&c, "/api/grid.html").await;
    let rows: Vec<&str> = fragment
        .split("<tr")
        .skip(2) // before the table, and the head's row
        .collect();
    assert_eq!(rows.len(), APPS, "{fragment}");
    let total: usize = rows.iter().map(|r| r.len() + 3).sum();
    let per_row = total / APPS;
    eprintln!("grid: {per_row} bytes per row at 5 environments ({total} bytes for {APPS} rows)");
    assert!(
        per_row <= BUDGET_PER_ROW,
        "the grid's rows grew to {per_row} bytes each (budget {BUDGET_PER_ROW}); a sample: <tr{}",
        rows[1]
    );
}

/// `/api/grid.html`: only for signed-in people; an ETag, and a 304 when it still holds; a
/// new one once a notification changed the grid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_fragment_is_private_and_revalidates() {
    let app = common::TestApp::builder().spawn().await;
    let anonymous = common::send(common::browser().get(app.url("/api/grid.html"))).await;
    assert_eq!(anonymous.status(), 401);
    let c = app.signed_in("viewer").await;
    let r = common::send(c.get(app.url("/api/grid.html"))).await;
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let fragment_etag = etag.replace('"', "&quot;");
    assert!(common::header(&r, "cache-control").contains("private"));
    let body = r.text().await.unwrap();
    assert!(
        body.contains(&format!("data-etag=\"{fragment_etag}\"")),
        "the rows say which render they are, for the browser's If-None-Match"
    );
    let again = common::send(
        c.get(app.url("/api/grid.html"))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(again.status(), 304);
    app.notify_ok("alphagov/content-store", "staging", "v77")
        .await;
    let changed = common::send(
        c.get(app.url("/api/grid.html"))
            .header("if-none-match", &etag),
    )
    .await;
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    assert!(changed.text().await.unwrap().contains("<b>v77</b>"));
}

/// Empty pages say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_pages_say_so() {
    let app = common::TestApp::builder().spawn().await;
    let html = app.page_ok("/audit").await;
    assert!(html.contains("No audit entries yet"), "{html}");
    let (_, html) = app.page("/activity").await;
    assert!(html.contains("No deployments yet."));
}

/// A viewer sees who may deploy instead of a Deploy form that would refuse them; a
/// deployer for one environment is offered only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_who_may_deploy_instead_of_a_form() {
    let app = common::TestApp::demo().await;
    let html = app.page_ok("/applications/frontend").await;
    assert!(
        html.contains("You may not deploy this application"),
        "{html}"
    );
    let at = html.find("deploy-form").unwrap_or(0);
    let start = html[..at].rfind("<form").unwrap_or(0);
    let form = &html[start..at + html[at..].find('>').unwrap_or(0)];
    assert!(form.contains("hidden"), "the form is hidden: {form:?}");
    let c = app.signed_in("deployer:integration").await;
    let html = app.get_text(&c, "/applications/frontend").await;
    assert!(!html.contains("You may not deploy this application"));
    assert!(html.contains("<option value=\"integration\">"));
    assert!(
        !html.contains("<option value=\"production\">"),
        "only the environments they may deploy to"
    );
}

/// The demo is true to the pipeline: "Simulate a merge to main" runs the continuous
/// pipeline from integration onwards and promotes; a manual deploy is never promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_promotes_a_merge_and_never_a_manual_deploy() {
    let app = common::TestApp::builder()
        .config("")
        .demo()
        .settings(|s| s.demo_stage_ms = 20)
        .spawn()
        .await;
    let c = app.signed_in("deployer").await;
    let current = |shortname: &'static str, i: usize| {
        let store = app.store.clone();
        async move {
            let d = store.app_detail(shortname).await.unwrap().unwrap();
            d.summary.cells[i]
                .clone()
                .map(|c| (c.version, c.status.as_str().to_owned(), c.trigger))
        }
    };
    // Waits until `shortname`'s cell `i` has `version` done (succeeded or failed).
    let settled = |shortname: &'static str, i: usize, version: String| {
        let current = &current;
        async move {
            for _ in 0..300 {
                if let Some(c) = current(shortname, i).await {
                    if c.0 == version && (c.1 == "succeeded" || c.1 == "failed") {
                        return Some(c);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            None
        }
    };
    // A merge: a new version in integration, promoted to staging (continuous there). The
    // demo's smoke tests fail one run in three: merge again until one passes both.
    let mut promoted = None;
    for _ in 0..4 {
        let body = app
            .expect(&c, "simulate_merge", &[("shortname", "content-store")], 200)
            .await;
        let version = body
            .split_whitespace()
            .find(|w| w.starts_with("v34"))
            .unwrap()
            .to_owned();
        if settled("content-store", 0, version.clone())
            .await
            .map(|c| c.1)
            != Some("succeeded".into())
        {
            continue;
        }
        if let Some(c) = settled("content-store", 1, version.clone()).await {
            promoted = Some(c);
            break;
        }
    }
    let promoted = promoted.expect("a merge reached staging");
    assert_eq!(promoted.2, "promotion", "{promoted:?}");
    // A manual deploy to integration that succeeds there stays there.
    let mut passed = None;
    for n in 0..4 {
        let version = format!("v{}", 1000 + n);
        app.expect(
            &c,
            "deploy",
            &[
                ("shortname", "frontend"),
                ("environment", "integration"),
                ("git_ref", &version),
            ],
            200,
        )
        .await;
        if settled("frontend", 0, version.clone()).await.map(|c| c.1) == Some("succeeded".into()) {
            passed = Some(version);
            break;
        }
    }
    let passed = passed.expect("a manual deploy passed its pipeline");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let staging = current("frontend", 1).await.unwrap();
    assert_ne!(staging.0, passed, "a manual deploy is never promoted");
    let audit = app.audit(Some("content-store"), 5).await;
    assert_eq!(audit[0].action, "simulated merge");
}
