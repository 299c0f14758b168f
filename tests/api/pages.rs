//! Server-rendered HTML of the pages, from the real server with the demo data. These are
//! what a person with JavaScript off sees, and what the browser hydrates.

use crate::common;

fn row<'a>(html: &'a str, app: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"app-{app}\""))
        .unwrap_or_else(|| panic!("no row for {app}"));
    let start = html[..start].rfind("<tr").unwrap();
    let end = start + html[start..].find("</tr>").unwrap();
    &html[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_has_every_app_with_its_flags() {
    let app = common::spawn_with("", true).await;
    let (status, html) = app.page("/").await;
    assert_eq!(status, 200);
    assert_eq!(
        html.matches("<tr id=\"app-").count(),
        12,
        "a row per demo app"
    );
    assert!(
        html.contains("7 of 12 applications need attention"),
        "summary"
    );
    assert!(row(&html, "frontend").contains("manual deployment: production"));
    assert!(row(&html, "asset-manager").contains("manual deployment: staging"));
    assert!(row(&html, "publisher").contains("smoke tests failed"));
    assert!(row(&html, "publisher").contains("last deployment failed: staging"));
    assert!(
        row(&html, "router").contains("<td class=\"run\""),
        "in progress (the words come from CSS)"
    );
    assert!(row(&html, "search-api").contains("not in sync: production"));
    let ok = row(&html, "content-store");
    assert!(
        !ok.contains("class=\"flag flag-"),
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
    let app = common::spawn_with("", true).await;
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
    let app = common::spawn_with("", true).await;
    let (status, html) = app.page("/applications/publisher").await;
    assert_eq!(status, 200);
    assert!(html.contains("<h1>Publisher"));
    assert!(html.contains("the latest deployment to staging failed at smoke tests"));
    assert!(
        html.contains("smoke tests failed: see the workflow"),
        "the event's message is on the timeline"
    );
    let (status, html) = app.page("/applications/signon").await;
    assert_eq!(status, 200);
    assert!(
        html.matches("class=\"deployment\"").count() >= 60,
        "20 per environment"
    );
    let (status, _) = app.page("/applications/no-such-app").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_filters_by_environment() {
    let app = common::spawn_with("", true).await;
    let (status, html) = app.page("/activity?environment=staging").await;
    assert_eq!(status, 200);
    assert!(html.contains("<td>staging"));
    assert!(!html.contains("<td>production") && !html.contains("<td>integration"));
    let (_, html) = app.page("/activity?environment=qa").await;
    assert!(
        html.contains("unknown environment"),
        "a bad filter is explained"
    );
}
