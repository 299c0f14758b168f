//! One storage suite, run against SQLite and PostgreSQL. The PostgreSQL half uses a fresh
//! database per run (dropped afterwards) on `RELEASE_TEST_POSTGRES_URL`, default
//! postgres://postgres@127.0.0.1:5432/postgres. Without a server it says it skipped;
//! with RELEASE_REQUIRE_POSTGRES=1 (as in .ci/run) a missing server fails the run.

use crate::common;

use app::domain::{
    DeploymentStatus, Environments, EventStatus, GitRef, RepoName, Shortname, Stage, Trigger,
};
use app::store::{ApplicationSpec, NewDeployment, NewEvent, Store};

fn spec(shortname: &str, repo: &str, manual: &[&str]) -> ApplicationSpec {
    ApplicationSpec {
        name: shortname.to_uppercase(),
        shortname: Shortname::parse(shortname).unwrap(),
        repo: RepoName::parse(repo).unwrap(),
        default_branch: "main".into(),
        workflow: "deploy.yml".into(),
        team: "#team".into(),
        notes: String::new(),
        manual_environments: manual.iter().map(|s| s.to_string()).collect(),
    }
}

fn notify(store: &Store, repo: &str, env: &str, version: &str, at: i64) -> NewDeployment {
    NewDeployment {
        repo: RepoName::parse(repo).unwrap(),
        environment: store.environments().parse(env).unwrap(),
        version: GitRef::parse(version).unwrap(),
        sha: None,
        deployed_by: Some("someone".into()),
        trigger: Trigger::Continuous,
        created_at_ms: Some(at),
        base_status: DeploymentStatus::Succeeded,
    }
}

fn event(
    store: &Store,
    repo: &str,
    env: &str,
    version: &str,
    stage: Stage,
    status: EventStatus,
    delivery: Option<&str>,
) -> NewEvent {
    NewEvent {
        repo: RepoName::parse(repo).unwrap(),
        environment: store.environments().parse(env).unwrap(),
        version: GitRef::parse(version).unwrap(),
        stage,
        status,
        message: Some("message".into()),
        workflow: None,
        delivery_id: delivery.map(str::to_owned),
        at_ms: None,
    }
}

async fn suite(store: Store) {
    store
        .migrate()
        .await
        .expect("migrations run twice without harm");
    store
        .sync_applications(&[
            spec("web", "org/web", &["production"]),
            spec("api", "org/api", &[]),
        ])
        .await
        .unwrap();
    // Declaring again updates in place.
    store
        .sync_applications(&[spec("web", "org/web", &["production"])])
        .await
        .unwrap();
    assert_eq!(store.application_count().await.unwrap(), 2);
    assert_eq!(
        store
            .application("web")
            .await
            .unwrap()
            .unwrap()
            .manual_environments,
        vec!["production"]
    );

    // History: 50 deployments to integration; the grid shows the latest.
    for i in 0..50 {
        store
            .record_deployment(&notify(
                &store,
                "org/web",
                "integration",
                &format!("v{i}"),
                1_000 + i,
            ))
            .await
            .unwrap();
    }
    store
        .record_deployment(&notify(&store, "org/web", "staging", "v49", 2_000))
        .await
        .unwrap();
    store
        .record_deployment(&notify(&store, "org/web", "production", "v40", 2_000))
        .await
        .unwrap();
    let grid = store.grid().await.unwrap();
    assert_eq!(
        grid.environments,
        vec!["integration", "staging", "production"]
    );
    let web = grid.apps.iter().find(|a| a.shortname == "web").unwrap();
    assert_eq!(web.cells[0].as_ref().unwrap().version, "v49");
    assert_eq!(web.continuous, vec![true, true, false]);
    assert_eq!(web.flags.len(), 1, "{:?}", web.flags);
    assert_eq!(web.flags[0].label(), "manual deployment");
    let api = grid.apps.iter().find(|a| a.shortname == "api").unwrap();
    assert!(api.cells.iter().all(Option::is_none));

    // Same version again attaches instead of adding a row.
    let again = store
        .record_deployment(&notify(&store, "org/web", "staging", "v49", 2_500))
        .await
        .unwrap();
    assert!(!again.created);

    // Events, out of order and repeated.
    let e = event(
        &store,
        "org/api",
        "integration",
        "v1",
        Stage::SmokeTests,
        EventStatus::Failed,
        Some("x1"),
    );
    let first = store.record_event(&e).await.unwrap();
    assert!(first.created_deployment);
    assert_eq!(first.deployment_status, DeploymentStatus::Failed);
    let repeat = store.record_event(&e).await.unwrap();
    assert_eq!(first, repeat);
    let ok = store
        .record_event(&event(
            &store,
            "org/api",
            "integration",
            "v1",
            Stage::SmokeTests,
            EventStatus::Succeeded,
            Some("x2"),
        ))
        .await
        .unwrap();
    assert_eq!(ok.deployment_status, DeploymentStatus::Succeeded);
    assert_eq!(ok.deployment_id, first.deployment_id);

    let detail = store.app_detail("api").await.unwrap().unwrap();
    assert_eq!(detail.history[0].deployments.len(), 1);
    assert_eq!(detail.history[0].deployments[0].events.len(), 2);
    let web = store.app_detail("web").await.unwrap().unwrap();
    assert_eq!(web.history[0].deployments.len(), 20, "history is paged");
    assert_eq!(web.summary.cells[0].as_ref().unwrap().version, "v49");

    let activity = store.activity(None).await.unwrap();
    assert_eq!(activity.deployments.len(), 53);
    assert_eq!(
        activity.deployments[0].application, "API",
        "newest first: the event-created deployment is now"
    );
    let staging = store.activity(Some("staging")).await.unwrap();
    assert!(staging
        .deployments
        .iter()
        .all(|d| d.environment == "staging"));

    // Ambiguous repo.
    store
        .sync_applications(&[spec("api2", "org/api", &[])])
        .await
        .unwrap();
    let err = store
        .record_deployment(&notify(&store, "org/api", "staging", "v2", 3_000))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ambiguous"));

    // Tokens.
    store.create_token("ci", "hash1").await.unwrap();
    assert!(store.create_token("ci", "hash2").await.is_err());
    assert_eq!(
        store.token_name("hash1").await.unwrap().as_deref(),
        Some("ci")
    );
    store.revoke_token("ci").await.unwrap();
    assert_eq!(store.token_name("hash1").await.unwrap(), None);
    assert!(store.revoke_token("ci").await.is_err());

    // One in-flight deploy per app and environment; a stalled one stops counting.
    let web_id = store.application("web").await.unwrap().unwrap().id;
    let web_repo = store.application("web").await.unwrap().unwrap().repo;
    let ann = common::begin_deploy(&store, &web_repo, "staging", "v1", "ann", 60_000)
        .await
        .expect("the slot is free");
    let held = common::begin_deploy(&store, &web_repo, "staging", "v2", "bob", 60_000)
        .await
        .unwrap_err();
    assert_eq!(held.requested_by, "ann");
    let bob = common::begin_deploy(&store, &web_repo, "staging", "v2", "bob", -1)
        .await
        .expect("stalled: replaced");
    let note = |actor, action, outcome| app::store::NewAudit {
        actor,
        action,
        application: None,
        environment: None,
        outcome,
        detail: "",
    };
    // GitHub refused bob's: the slot is free, and what ran (ann's request) is current.
    assert!(store
        .finish_dispatch(
            bob.dispatch_id,
            &app::store::Outcome::Refused { error: "no".into() },
            &note("bob", "deploy", "failed"),
        )
        .await
        .unwrap());
    assert!(
        !store
            .finish_dispatch(
                bob.dispatch_id,
                &app::store::Outcome::Dispatched { run_url: None },
                &note("bob", "deploy", "dispatched"),
            )
            .await
            .unwrap(),
        "an outcome is written once"
    );
    let current: i64 = sqlx::query_scalar(
        "SELECT deployment_id FROM current_deployments WHERE application_id = $1 AND environment = 'staging'",
    )
    .bind(web_id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(current, ann.deployment_id);
    assert!(
        common::begin_deploy(&store, &web_repo, "staging", "v3", "cy", 60_000)
            .await
            .is_ok(),
        "the refused dispatch freed the slot"
    );

    // Freezes and the audit log: ann's of the application, then boss's of every one; the
    // freezes that hold the application after each.
    use app::domain::deploy_rules::Authority;
    for (application, reason, actor, authority, holding) in [
        (Some(web_id), "migration", "ann", Authority::Deployer, 1),
        (None, "holiday", "boss", Authority::Admin, 2),
    ] {
        let audit = note(actor, "freeze", "done");
        store
            .freeze(application, reason, actor, authority, &audit)
            .await
            .unwrap();
        let active = store.active_freezes(Some(web_id)).await.unwrap();
        assert_eq!(active.len(), holding, "after {actor}'s");
    }
    let frozen = store.active_freezes(Some(web_id)).await.unwrap();
    let site: Vec<i64> = frozen
        .iter()
        .filter(|f| f.application.is_none())
        .map(|f| f.id)
        .collect();
    let web: Vec<i64> = frozen
        .iter()
        .filter(|f| f.application.is_some())
        .map(|f| f.id)
        .collect();
    let lift = note("boss", "unfreeze", "done");
    assert_eq!(store.lift_freezes(&site, "boss", &lift).await.unwrap(), 1);
    assert_eq!(store.lift_freezes(&web, "ann", &lift).await.unwrap(), 1);
    assert!(store.all_active_freezes().await.unwrap().is_empty());
    store
        .audit(&app::store::NewAudit {
            actor: "ann",
            action: "deploy",
            application: Some("web"),
            environment: Some("staging"),
            outcome: "requested",
            detail: "v1",
        })
        .await
        .unwrap();
    store.audit(&note("bob", "freeze", "done")).await.unwrap();
    assert_eq!(
        store.audit_log(None, None, 10).await.unwrap()[0].actor,
        "bob"
    );
    assert_eq!(
        store.audit_log(Some("web"), None, 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        store.audit_log(None, Some("ann"), 10).await.unwrap()[0].action,
        "deploy"
    );

    // Bulk insert keeps the current table right.
    let web_id = store.application("web").await.unwrap().unwrap().id;
    store
        .bulk_insert_deployments(&[(web_id, "integration".into(), "v100".into(), 9_000)])
        .await
        .unwrap();
    let grid = store.grid().await.unwrap();
    let web = grid.apps.iter().find(|a| a.shortname == "web").unwrap();
    assert_eq!(web.cells[0].as_ref().unwrap().version, "v100");

    // The benchmark's seeding: spread over every app and environment, newest is current.
    let before = store.deployment_count().await.unwrap();
    store.seed_history(30, 20_000, 1000).await.unwrap();
    assert_eq!(store.deployment_count().await.unwrap(), before + 30);
    let grid = store.grid().await.unwrap();
    for a in &grid.apps {
        for c in a.cells.iter().flatten() {
            assert!(
                c.created_at_ms >= 20_000,
                "{} current is the seeded newest",
                a.shortname
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let store = Store::connect(&url, Environments::default()).await.unwrap();
    suite(store.clone()).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_on_postgres() {
    common::on_postgres("storage_on_postgres", |url| async move {
        let store = Store::connect(&url, Environments::default()).await.unwrap();
        suite(store.clone()).await;
        store.close().await;
    })
    .await;
}
