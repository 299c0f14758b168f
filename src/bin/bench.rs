//! `release-bench` (run by `make bench`): seeds databases, starts the real server binary,
//! and measures the grid page's latency and throughput with short and long histories,
//! `POST /deployments` throughput, the wasm bundle's size and the server's peak memory.
//! Prints a Markdown report (BENCHMARKS.md holds the latest).
//!
//! Options (environment): BENCH_APPS (300), BENCH_SMALL (1000), BENCH_LARGE (1000000),
//! BENCH_GRID_REQUESTS (500), BENCH_NOTIFY (4000), BENCH_SECONDS (5), BENCH_LOAD_SECONDS (60),
//! BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/postgres).

use anyhow::Context;
use app::domain::{Environments, RepoName, Shortname};
use app::store::{ApplicationSpec, Store};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Running {
    child: Child,
    base: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Resident memory of the server process now, in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }

    /// Peak resident memory of the server process, in MiB.
    fn peak_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

/// The benchmark's applications: `service-000`..., one in five not continuously deployed
/// to production.
fn bench_apps(apps: i64) -> Vec<ApplicationSpec> {
    (0..apps)
        .map(|i| ApplicationSpec {
            name: format!("Service {i:03}"),
            shortname: Shortname::parse(&format!("service-{i:03}")).unwrap(),
            repo: RepoName::parse(&format!("bench-org/service-{i:03}")).unwrap(),
            default_branch: "main".into(),
            workflow: "deploy.yml".into(),
            team: format!("#team-{}", i % 12),
            notes: String::new(),
            manual_environments: if i % 5 == 0 {
                vec!["production".into()]
            } else {
                vec![]
            },
        })
        .collect()
}

async fn seed(dir: &Path, apps: i64, history: i64) -> anyhow::Result<(String, String)> {
    let db = dir.join(format!("bench-{history}.db"));
    let url = format!("sqlite:{}", db.display());
    let store = Store::connect(&url, Environments::default()).await?;
    store.migrate().await?;
    store.sync_applications(&bench_apps(apps)).await?;
    let started = Instant::now();
    store
        .seed_history(
            history,
            chrono::Utc::now().timestamp_millis() - history * 1000,
        )
        .await?;
    eprintln!(
        "seeded {history} deployments over {apps} apps in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let token = release::http::api_token::generate_token();
    store
        .create_token("bench", &release::http::api_token::hash_token(&token))
        .await?;
    store.close().await;
    Ok((url, token))
}

async fn start(bin: &Path, url: &str) -> anyhow::Result<Running> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            url,
            "--dev-sign-in",
        ])
        .env("LEPTOS_SITE_ROOT", "target/site")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let running = Running {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("{}/healthcheck/ready", running.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(running);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the server did not become ready")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// A client signed in through the development sign-in (the server listens on loopback).
async fn signed_in(base: &str) -> anyhow::Result<reqwest::Client> {
    signed_in_as(base, "bench").await
}

/// The same, as a given demo login (each person may hold 8 live streams).
async fn signed_in_as(base: &str, login: &str) -> anyhow::Result<reqwest::Client> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let r = client
        .post(format!("{base}/auth/dev"))
        .header("origin", base)
        .form(&[("login", login), ("role", "viewer")])
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "development sign-in failed: {}",
        r.status()
    );
    Ok(client)
}

/// Sequential GETs of `/`: median and p99 latency in milliseconds, and the page size.
async fn grid_latency(base: &str, n: i64) -> anyhow::Result<(f64, f64, usize)> {
    let client = signed_in(base).await?;
    let mut size = 0;
    for _ in 0..20 {
        size = client
            .get(format!("{base}/"))
            .send()
            .await?
            .bytes()
            .await?
            .len();
    }
    let mut times = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = Instant::now();
        let body = client.get(format!("{base}/")).send().await?.bytes().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(body.len() > 10_000, "the grid page is unexpectedly small");
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok((percentile(&times, 0.5), percentile(&times, 0.99), size))
}

/// Requests per second of `/` with `conc` clients for `secs` seconds.
async fn grid_throughput(base: &str, conc: usize, secs: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let url = format!("{base}/");
        let client = signed_in(base).await?;
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                if client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await?;
    }
    Ok(total as f64 / secs as f64)
}

/// Notifications per second: `n` POST /deployments over `conc` connections.
async fn notify_throughput(base: &str, token: &str, n: i64, conc: i64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (base, token) = (base.to_owned(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ok = 0;
            for i in (w..n).step_by(conc as usize) {
                let env = ["integration", "staging", "production"][(i % 3) as usize];
                let body = serde_json::json!({"repo": format!("bench-org/service-{:03}", i % 300),
                    "deployment": {"environment": env, "version": format!("v{}", 100_000 + i)}});
                let r = client
                    .post(format!("{base}/deployments"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await?;
    }
    anyhow::ensure!(ok == n, "{} of {n} notifications failed", n - ok);
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Opens `n` live streams (as `n` browsers would), then sends `events` pipeline events one
/// at a time and measures, for each, the time from the API's answer to the arrival of its
/// change at every stream. Returns (median ms, p99 ms) over all deliveries.
async fn sse_latency(
    base: &str,
    token: &str,
    n: usize,
    events: usize,
) -> anyhow::Result<(f64, f64)> {
    use futures::StreamExt;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut ready = Vec::new();
    // As browsers of several people: a person may hold 8 streams.
    let mut client = signed_in(base).await?;
    for i in 0..n {
        if i > 0 && i % 8 == 0 {
            client = signed_in_as(base, &format!("bench{}", i / 8)).await?;
        }
        let resp = client.get(format!("{base}/api/live")).send().await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "live stream refused: {}",
            resp.status()
        );
        let tx = tx.clone();
        let (ok_tx, ok_rx) = tokio::sync::oneshot::channel::<()>();
        ready.push(ok_rx);
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let _ = ok_tx.send(());
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = buf.find("\n\n") {
                    if buf[..i].contains("event: change") {
                        let _ = tx.send(Instant::now());
                    }
                    buf.drain(..i + 2);
                }
            }
        });
    }
    for r in ready {
        let _ = r.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let poster = reqwest::Client::new();
    let mut lat = Vec::with_capacity(n * events);
    for i in 0..events {
        let body = serde_json::json!({"repo": "bench-org/service-001", "environment": "integration",
            "version": format!("v{}", 900_000 + i), "stage": "build", "status": "started"});
        // Timed from sending the event, so the figure includes the write itself: an upper
        // bound on "accepted event -> every client".
        let sent = Instant::now();
        let r = poster
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "event refused: {}", r.status());
        for _ in 0..n {
            let at = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("stream closed"))?;
            lat.push(at.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok((percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

/// The mixed workload of the reliability issue, for `secs` seconds against one server:
/// 4 notifiers, 3 event senders, 2 people signing in and opening the grid. Per kind:
/// requests, requests/s, p50 and p99 latency (ms), and errors (any non-2xx/3xx or failure).
async fn mixed_load(
    base: &str,
    token: &str,
    secs: u64,
) -> anyhow::Result<Vec<(String, usize, f64, f64, f64, usize)>> {
    use std::sync::{Arc, Mutex};
    type Samples = Arc<Mutex<std::collections::BTreeMap<&'static str, (Vec<f64>, usize)>>>;
    let samples: Samples = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let record = |samples: &Samples, kind: &'static str, ms: f64, ok: bool| {
        let mut m = samples.lock().unwrap();
        let e = m.entry(kind).or_default();
        e.0.push(ms);
        if !ok {
            e.1 += 1;
        }
    };
    let mut tasks = Vec::new();
    for w in 0..7usize {
        let (base, token, samples) = (base.to_owned(), token.to_owned(), samples.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
            let mut i = 0usize;
            while Instant::now() < deadline {
                i += 1;
                let env = ["integration", "staging", "production"][i % 3];
                let stage = ["build", "sync", "smoke_tests"][i % 3];
                let (kind, req) = if w < 4 {
                    ("notification", client.post(format!("{base}/deployments")).json(&serde_json::json!({
                        "repo": format!("bench-org/service-{:03}", (w * 37 + i) % 300),
                        "deployment": {"environment": env, "version": format!("m{w}-{i}")}})))
                } else {
                    ("event", client.post(format!("{base}/api/v1/events")).json(&serde_json::json!({
                        "repo": format!("bench-org/service-{:03}", (w * 11 + i) % 300), "environment": "staging",
                        "version": format!("e{w}-{}", i / 3), "stage": stage,
                        "status": "succeeded", "delivery_id": format!("bench-{w}-{i}")})))
                };
                let t = Instant::now();
                let ok = req.bearer_auth(&token).send().await.is_ok_and(|r| r.status().is_success());
                record(&samples, kind, t.elapsed().as_secs_f64() * 1000.0, ok);
            }
        }));
    }
    for p in 0..2 {
        let (base, samples) = (base.to_owned(), samples.clone());
        tasks.push(tokio::spawn(async move {
            // Sign-in is rate limited (30 a minute per address): each person signs in again
            // every 5 s, as someone opening a new window would, within that limit.
            let mut client = None;
            let mut pages = 0;
            let mut signed_at = Instant::now();
            while Instant::now() < deadline {
                if client.is_none() || signed_at.elapsed() > Duration::from_secs(5) {
                    signed_at = Instant::now();
                    let t = Instant::now();
                    let c = signed_in_as(&base, &format!("load{p}")).await;
                    record(
                        &samples,
                        "sign-in",
                        t.elapsed().as_secs_f64() * 1000.0,
                        c.is_ok(),
                    );
                    client = c.ok();
                }
                pages += 1;
                let Some(c) = &client else { continue };
                let path = if pages % 2 == 0 { "/" } else { "/activity" };
                let t = Instant::now();
                let ok = c
                    .get(format!("{base}{path}"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                record(&samples, "page", t.elapsed().as_secs_f64() * 1000.0, ok);
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let samples = samples.lock().unwrap().clone();
    Ok(samples
        .into_iter()
        .map(|(kind, (mut lat, errors))| {
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let n = lat.len();
            (
                kind.to_string(),
                n,
                n as f64 / secs as f64,
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                errors,
            )
        })
        .collect())
}

/// A fresh PostgreSQL database seeded like the SQLite ones, or `None` when none answers.
async fn seed_postgres(apps: i64) -> anyhow::Result<Option<(String, String)>> {
    use sqlx::Connection;
    let admin_url = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await else {
        return Ok(None);
    };
    let db = format!("release_bench_{}", std::process::id());
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await?;
    let url = format!(
        "{}/{db}",
        admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url)
    );
    let store = Store::connect(&url, Environments::default()).await?;
    store.migrate().await?;
    store.sync_applications(&bench_apps(apps)).await?;
    store
        .seed_history(1_000, chrono::Utc::now().timestamp_millis() - 1_000_000)
        .await?;
    let token = release::http::api_token::generate_token();
    store
        .create_token("bench", &release::http::api_token::hash_token(&token))
        .await?;
    store.close().await;
    Ok(Some((url, token)))
}

fn gzip_size(path: &Path) -> anyhow::Result<(u64, u64)> {
    let raw = std::fs::metadata(path)
        .with_context(|| {
            format!(
                "{} (run `cargo leptos build --release` first)",
                path.display()
            )
        })?
        .len();
    let out = Command::new("gzip").args(["-9", "-c"]).arg(path).output()?;
    Ok((raw, out.stdout.len() as u64))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let apps = env_num("BENCH_APPS", 300);
    let small = env_num("BENCH_SMALL", 1_000);
    let large = env_num("BENCH_LARGE", 1_000_000);
    let requests = env_num("BENCH_GRID_REQUESTS", 500);
    let notifications = env_num("BENCH_NOTIFY", 4_000);
    let secs = env_num("BENCH_SECONDS", 5) as u64;
    let bin = PathBuf::from(
        std::env::var("BENCH_SERVER").unwrap_or_else(|_| "target/release/release".into()),
    );
    let dir = tempfile::tempdir()?;

    let mut report = String::new();
    let mut rows = Vec::new();
    let mut peak: f64 = 0.0;
    let mut sse: Option<(usize, f64, f64, f64)> = None;
    for history in [small, large] {
        let (url, token) = seed(dir.path(), apps, history).await?;
        let server = start(&bin, &url).await?;
        let (median, p99, size) = grid_latency(&server.base, requests).await?;
        let rps = grid_throughput(&server.base, 4, secs).await?;
        let notify = if history == small {
            Some(notify_throughput(&server.base, &token, notifications, 16).await?)
        } else {
            None
        };
        peak = peak.max(server.peak_mib());
        if history == small {
            let conns = env_num("BENCH_SSE_CLIENTS", 200) as usize;
            let (med, p99) = sse_latency(
                &server.base,
                &token,
                conns,
                env_num("BENCH_SSE_EVENTS", 20) as usize,
            )
            .await?;
            sse = Some((conns, med, p99, server.rss_mib()));
        }
        rows.push((history, median, p99, rps, size, notify));
    }
    // The mixed workload, on SQLite and (when one answers) PostgreSQL.
    let load_secs = env_num("BENCH_LOAD_SECONDS", 60) as u64;
    let mut load = Vec::new();
    {
        let load_dir = dir.path().join("load");
        std::fs::create_dir_all(&load_dir)?;
        let (url, token) = seed(&load_dir, apps, small).await?;
        let server = start(&bin, &url).await?;
        load.push(("SQLite", mixed_load(&server.base, &token, load_secs).await?));
    }
    match seed_postgres(apps).await? {
        Some((url, token)) => {
            let server = start(&bin, &url).await?;
            load.push((
                "PostgreSQL",
                mixed_load(&server.base, &token, load_secs).await?,
            ));
        }
        None => eprintln!("PostgreSQL not reachable: the mixed load runs on SQLite only"),
    }
    let (raw, gz) = gzip_size(Path::new("target/site/pkg/release.wasm"))?;

    report.push_str(&format!(
        "Machine: {} cores; SQLite; {apps} apps x 3 environments; server `{}`.\n\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        bin.display()
    ));
    report.push_str("| history (deployments) | grid median | grid p99 | grid throughput (4 clients) | grid page size |\n|---|---|---|---|---|\n");
    for (h, med, p99, rps, size, _) in &rows {
        report.push_str(&format!(
            "| {h} | {med:.2} ms | {p99:.2} ms | {rps:.0} req/s | {:.0} KB |\n",
            *size as f64 / 1024.0
        ));
    }
    let ratio = rows[1].1 / rows[0].1;
    report.push_str(&format!(
        "\n- history ratio (grid median at {large} / at {small}): **{ratio:.2}**\n"
    ));
    if let Some(n) = rows[0].5 {
        report.push_str(&format!("- `POST /deployments`: **{n:.0} notifications/s** ({notifications} requests, 16 connections)\n"));
    }
    report.push_str(&format!(
        "- wasm bundle: **{:.0} KB raw, {:.0} KB gzipped** (`target/site/pkg/release.wasm`)\n",
        raw as f64 / 1024.0,
        gz as f64 / 1024.0
    ));
    report.push_str(&format!(
        "- server peak memory (VmHWM): **{peak:.1} MiB**\n"
    ));
    if let Some((conns, med, p99, mem)) = sse {
        report.push_str(&format!(
            "- live updates: {conns} SSE connections open; event sent -> its arrival at every client (write included): \
             **median {med:.2} ms, p99 {p99:.2} ms**; server memory with them open (VmRSS): **{mem:.1} MiB**\n"
        ));
    }
    report.push_str(&format!(
        "\n### Mixed load, {load_secs} s (4 notifiers, 3 event senders, 2 people browsing the grid and activity pages, signing in again every 5 s)\n\n\
         | database | kind | requests | req/s | p50 | p99 | errors |\n|---|---|---|---|---|---|---|\n"
    ));
    for (db, rows) in &load {
        for (kind, n, rps, p50, p99, errors) in rows {
            report.push_str(&format!(
                "| {db} | {kind} | {n} | {rps:.0} | {p50:.1} ms | {p99:.1} ms | {errors} |\n"
            ));
        }
    }
    println!("{report}");
    Ok(())
}
