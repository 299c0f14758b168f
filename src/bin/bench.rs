//! `release-bench` (run by `make bench`): seeds 1,000 applications x 5 environments with
//! 1,000,000 deployments, starts the real server binary (release build), and measures:
//! the grid page (bytes, gzipped bytes, bytes per row, sequential median and p99), its
//! throughput under `wrk` side by side with nginx serving the same bytes from disk, the
//! fragment's 304, `POST /deployments` under `wrk`, live deltas to 1,000 open grids
//! (latency, bytes per change per browser, server memory), the cold-load bytes of the
//! grid page (HTML + JS + wasm + CSS, gzipped), and a mixed load on SQLite and PostgreSQL.
//! Prints a Markdown report (BENCHMARKS.md holds the latest).
//!
//! Needs `wrk` and `nginx` (Debian's; `make bench` installs them).
//!
//! Options (environment): BENCH_APPS (1000), BENCH_HISTORY (1000000), BENCH_GRID_REQUESTS
//! (500), BENCH_SECONDS (10), BENCH_SSE_CLIENTS (1000), BENCH_SSE_EVENTS (20),
//! BENCH_LOAD_APPS (300), BENCH_LOAD_SECONDS (60), BENCH_INGEST_RUNS (3), BENCH_POSTGRES_URL
//! (postgres://postgres@127.0.0.1:5432/postgres).

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

/// A child process that is killed (and reaped) when this is dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Already gone is fine: the point is that it does not outlive the benchmark.
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

struct Running {
    child: KillOnDrop,
    base: String,
}

impl Running {
    /// Resident memory of the server process now, in MiB.
    fn rss_mib(&self) -> f64 {
        self.memory_mib("VmRSS:")
    }

    /// Peak resident memory of the server process, in MiB.
    fn peak_mib(&self) -> f64 {
        self.memory_mib("VmHWM:")
    }

    /// A `/proc/PID/status` memory line (in kB) of the server process, in MiB.
    fn memory_mib(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
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

async fn seed(
    dir: &Path,
    apps: i64,
    history: i64,
    environments: Environments,
) -> anyhow::Result<(String, String)> {
    let db = dir.join(format!("bench-{history}.db"));
    let url = format!("sqlite:{}", db.display());
    let envs = environments.len() as i64;
    let store = Store::connect(&url, environments).await?;
    store.migrate().await?;
    store.sync_applications(&bench_apps(apps)).await?;
    let started = Instant::now();
    // A year of history (so the stats' 90 days hold about a quarter of it), each cell's
    // deployments evenly spaced, each environment an hour after the one before.
    let year_ms: i64 = 365 * 86_400_000;
    let cells = (apps * envs).max(1);
    let per_cell = (history / cells).max(1);
    store
        .seed_history(
            history,
            chrono::Utc::now().timestamp_millis() - year_ms,
            year_ms / per_cell,
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

async fn start(bin: &Path, url: &str, config: Option<&Path>) -> anyhow::Result<Running> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut args = vec![
        "serve".to_string(),
        "--addr".into(),
        format!("127.0.0.1:{port}"),
        "--database-url".into(),
        url.into(),
        "--dev-sign-in".into(),
    ];
    if let Some(c) = config {
        args.push("--config".into());
        args.push(c.display().to_string());
    }
    let child = Command::new(bin)
        .args(&args)
        .env("LEPTOS_SITE_ROOT", "target/site")
        .env("RUST_LOG", "warn")
        .env("RELEASE_DEV_SIGN_IN_KEY", BENCH_DEV_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let running = Running {
        child: KillOnDrop(child),
        base: format!("http://127.0.0.1:{port}"),
    };
    anyhow::ensure!(
        answers(&format!("{}/healthcheck/ready", running.base), 200).await,
        "the server did not become ready"
    );
    Ok(running)
}

/// Whether `url` answers 2xx within `tries` attempts, 50 ms apart.
async fn answers(url: &str, tries: u32) -> bool {
    let client = reqwest::Client::new();
    for _ in 0..tries {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// The median and 99th percentile of `ms` (sorted in place).
fn median_p99(ms: &mut [f64]) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (percentile(ms, 0.5), percentile(ms, 0.99))
}

/// A client signed in through the development sign-in (the server listens on loopback).
async fn signed_in(base: &str) -> anyhow::Result<reqwest::Client> {
    signed_in_as(base, "bench").await
}

/// The development sign-in's key the benchmark starts the server with.
const BENCH_DEV_KEY: &str = "bench-dev-sign-in-key";

/// The same, as a given demo login (each person may hold 8 live streams).
async fn signed_in_as(base: &str, login: &str) -> anyhow::Result<reqwest::Client> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let r = client
        .post(format!("{base}/auth/dev"))
        .header("origin", base)
        .form(&[("login", login), ("role", "viewer"), ("key", BENCH_DEV_KEY)])
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "development sign-in failed: {}",
        r.status()
    );
    Ok(client)
}

/// The stats: waits for the stats task to have counted the whole history (returns how
/// long that took), then times `n` sequential `GET path` (median and p99, ms) and returns
/// the last body.
async fn stats_latency(
    base: &str,
    token: &str,
    url: &str,
    environments: &Environments,
    path: &str,
    n: i64,
) -> anyhow::Result<(f64, f64, serde_json::Value, f64)> {
    let waited = Instant::now();
    let store = Store::connect(url, environments.clone()).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while !store.stats_caught_up().await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the stats were not counted within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.close().await;
    let waited = waited.elapsed().as_secs_f64();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let get = || {
        client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
    };
    for _ in 0..10 {
        anyhow::ensure!(get().await?.status() == 200, "GET {path} failed");
    }
    let mut times = Vec::with_capacity(n as usize);
    let mut body = serde_json::Value::Null;
    for _ in 0..n {
        let t = Instant::now();
        let r = get().await?;
        body = r.json().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (median, p99) = median_p99(&mut times);
    Ok((median, p99, body, waited))
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
    let (median, p99) = median_p99(&mut times);
    Ok((median, p99, size))
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
            let (p50, p99) = median_p99(&mut lat);
            let n = lat.len();
            (
                kind.to_string(),
                n,
                n as f64 / secs as f64,
                p50,
                p99,
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
        .seed_history(
            1_000,
            chrono::Utc::now().timestamp_millis() - 1_000_000,
            1000,
        )
        .await?;
    let token = release::http::api_token::generate_token();
    store
        .create_token("bench", &release::http::api_token::hash_token(&token))
        .await?;
    store.close().await;
    Ok(Some((url, token)))
}

fn gzip_bytes(bytes: &[u8]) -> anyhow::Result<u64> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .args(["-6", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("gzip stdin")?;
    let data = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output()?;
    writer.join().ok();
    Ok(out.stdout.len() as u64)
}

fn file_sizes(path: &Path) -> anyhow::Result<(u64, u64)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{} (run `.ci/build --release` first)", path.display()))?;
    Ok((bytes.len() as u64, gzip_bytes(&bytes)?))
}

/// The five environments of the benchmark's pipeline.
const ENVIRONMENTS: [&str; 5] = ["dev", "integration", "staging", "preprod", "production"];

/// A configuration file with the five environments and limits for 1,000 open pages.
fn config_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("bench.toml");
    let envs: Vec<String> = ENVIRONMENTS.iter().map(|e| format!("{e:?}")).collect();
    std::fs::write(
        &path,
        format!(
            "environments = [{}]\n\n[limits]\nmax_connections = 4096\nlive_streams_per_person = 2000\nsign_ins_per_minute = 10000\n",
            envs.join(", ")
        ),
    )?;
    Ok(path)
}

/// The `release_session` cookie of a development sign-in, for wrk.
async fn session_cookie(base: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let r = client
        .post(format!("{base}/auth/dev"))
        .header("origin", base)
        .form(&[("login", "wrk"), ("role", "viewer"), ("key", BENCH_DEV_KEY)])
        .send()
        .await?;
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("release_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .context("the development sign-in set no session cookie")
}

/// Runs wrk; returns (requests/s, non-2xx/3xx responses, socket errors).
fn wrk(args: &[&str]) -> anyhow::Result<(f64, u64, u64)> {
    let out = Command::new("wrk")
        .args(args)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "wrk failed: {text}");
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let non2xx = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let socket = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map(|v| {
            v.split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok((rps, non2xx, socket))
}

struct Nginx {
    _child: KillOnDrop,
    port: u16,
}

/// nginx from Debian serving `root` on loopback (2 workers, no access log): the limit of
/// serving the same bytes from disk on this machine.
async fn nginx(dir: &Path, root: &Path) -> anyhow::Result<Nginx> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off; worker_processes 2; pid {dir}/nginx.pid; error_log {dir}/nginx-error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on; default_type text/html;\n\
               client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir}; uwsgi_temp_path {dir}; scgi_temp_path {dir};\n\
               server {{ listen 127.0.0.1:{port}; root {root}; location / {{ index index.html; }} }} }}\n",
            dir = dir.display(),
            root = root.display()
        ),
    )?;
    let bin = ["/usr/sbin/nginx", "nginx"]
        .into_iter()
        .find(|b| Path::new(b).exists() || *b == "nginx")
        .unwrap_or("nginx");
    let child = Command::new(bin)
        .args([
            "-c",
            &conf.display().to_string(),
            "-p",
            &dir.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting nginx (apt-get install nginx)")?;
    let n = Nginx {
        _child: KillOnDrop(child),
        port,
    };
    anyhow::ensure!(
        answers(&format!("http://127.0.0.1:{port}/"), 100).await,
        "nginx did not start"
    );
    Ok(n)
}

/// Opens `n` grids' live streams (`/api/live?grid=1`), then sends `events` pipeline events
/// one at a time, each a new version of one app (so its row changes), and measures for
/// each the time from sending it to its row's delta arriving at every stream. Returns
/// (median ms, p99 ms, mean bytes of a delta as sent to one browser).
async fn grid_deltas(
    base: &str,
    token: &str,
    n: usize,
    events: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    use futures::StreamExt;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, usize)>();
    let client = signed_in_as(base, "grids").await?;
    for _ in 0..n {
        let resp = client.get(format!("{base}/api/live?grid=1")).send().await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "live stream refused: {}",
            resp.status()
        );
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut body = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = buf.find("\n\n") {
                    // The receiver gone means the measurement is over: stop reading. A
                    // stream that ends early shows as a missing delivery (a timeout).
                    if buf[..i].starts_with("event: grid")
                        && tx.send((Instant::now(), i + 2)).is_err()
                    {
                        return;
                    }
                    buf.drain(..i + 2);
                }
            }
        });
    }
    // Every stream answered 200 above; let their readers start before the first event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let poster = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut lat = Vec::with_capacity(n * events);
    let mut bytes = 0usize;
    for i in 0..events {
        let body = serde_json::json!({"repo": "bench-org/service-001", "environment": "dev",
            "version": format!("v{}", 900_000 + i), "stage": "build", "status": "started"});
        let sent = Instant::now();
        let r = poster
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "event refused: {}", r.status());
        for _ in 0..n {
            let (at, size) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("stream closed"))?;
            lat.push(at.saturating_duration_since(sent).as_secs_f64() * 1000.0);
            bytes += size;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (median, p99) = median_p99(&mut lat);
    Ok((median, p99, bytes as f64 / lat.len() as f64))
}

/// The wrk script for `POST /deployments`: a new version each request, spread over the
/// apps and environments.
fn notify_script(dir: &Path, token: &str, apps: i64) -> anyhow::Result<PathBuf> {
    let path = dir.join("notify.lua");
    let envs: Vec<String> = ENVIRONMENTS.iter().map(|e| format!("{e:?}")).collect();
    std::fs::write(
        &path,
        format!(
            r#"local n = 0
local envs = {{{envs}}}
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
request = function()
  n = n + 1
  local app = string.format("service-%03d", (n * 7 + tid * 131) % {apps})
  local env = envs[(n % #envs) + 1]
  local body = string.format('{{"repo":"bench-org/%s","deployment":{{"environment":"%s","version":"w%d-%d"}}}}', app, env, tid, n)
  return wrk.format("POST", "/deployments", {{["Content-Type"] = "application/json", ["Authorization"] = "Bearer {token}"}}, body)
end
"#,
            envs = envs.join(", ")
        ),
    )?;
    Ok(path)
}

/// A fake Argo CD for the observer's cost: one list of `apps` applications (one image
/// each, `service-NNN:release-TAG`) served for every environment, and watches to push
/// changes to.
#[derive(Clone, Default)]
struct FakeArgoCd {
    apps: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    watchers: std::sync::Arc<std::sync::Mutex<Vec<tokio::sync::mpsc::UnboundedSender<String>>>>,
}

fn argocd_app(name: &str, tag: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name},
        "status": {
            "sync": {"status": "Synced"},
            "health": {"status": "Healthy"},
            "summary": {"images": [format!("registry.example/bench/{name}:release-{tag}")]},
            "operationState": {"phase": "Succeeded"}
        }
    })
}

async fn fake_argocd(apps: i64) -> anyhow::Result<(String, FakeArgoCd)> {
    use axum::extract::State;
    use axum::response::IntoResponse;
    let f = FakeArgoCd::default();
    *f.apps.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = (0..apps)
        .map(|i| argocd_app(&format!("service-{i:03}"), "obs1"))
        .collect();
    async fn list(State(f): State<FakeArgoCd>) -> axum::response::Response {
        let items = f.apps.lock().map(|a| a.clone()).unwrap_or_default();
        axum::Json(serde_json::json!({ "items": items })).into_response()
    }
    async fn stream(State(f): State<FakeArgoCd>) -> axum::response::Response {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        if let Ok(mut w) = f.watchers.lock() {
            w.push(tx);
        }
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|l| (Ok::<_, std::io::Error>(l), rx))
        });
        axum::body::Body::from_stream(body).into_response()
    }
    let router = axum::Router::new()
        .route("/api/v1/applications", axum::routing::get(list))
        .route("/api/v1/stream/applications", axum::routing::get(stream))
        .with_state(f.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    Ok((format!("http://{addr}"), f))
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux counts them in clock ticks of 1/100 s (sysconf(_SC_CLK_TCK) = 100).
    (ticks(11) + ticks(12)) / 100.0
}

/// The observer's cost: 1,000 apps x 5 environments observed through a fake Argo CD.
/// Returns (initial sync seconds, idle CPU %, RSS MiB, change->API median ms, p99 ms).
async fn observer_cost(
    bin: &Path,
    url: &str,
    config: &Path,
    store: &Store,
    apps: i64,
    token: &str,
) -> anyhow::Result<(f64, f64, f64, f64, f64)> {
    let (fake, argocd) = fake_argocd(apps).await?;
    let mut text = std::fs::read_to_string(config)?;
    for env in ENVIRONMENTS {
        text.push_str(&format!("\n[argocd.{env}]\nurl = \"{fake}\"\n"));
    }
    let with_argocd = config.with_file_name("argocd.toml");
    std::fs::write(&with_argocd, text)?;
    let started = Instant::now();
    let server = start(bin, url, Some(&with_argocd)).await?;
    let cells = apps * ENVIRONMENTS.len() as i64;
    loop {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM live_states")
            .fetch_one(store.pool())
            .await?;
        if n >= cells {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "the observers did not sync {cells} cells in 10 minutes ({n})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sync = started.elapsed().as_secs_f64();
    while argocd.watchers.lock().map(|w| w.len()).unwrap_or(0) < ENVIRONMENTS.len() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = server.child.0.id();
    let c0 = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = (cpu_seconds(pid) - c0) / 10.0 * 100.0;
    let rss = server.rss_mib();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut lat = Vec::new();
    for i in 0..20 {
        let name = format!("service-{:03}", (i * 37) % apps);
        let tag = format!("obs-change-{i}");
        let line = serde_json::json!({"result": {"type": "MODIFIED", "application": argocd_app(&name, &tag)}}).to_string() + "\n";
        let sent = Instant::now();
        if let Ok(mut w) = argocd.watchers.lock() {
            w.retain(|tx| tx.send(line.clone()).is_ok());
        }
        loop {
            let body: serde_json::Value = client
                .get(format!("{}/api/v1/applications/{name}", server.base))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            if body["environments"]["staging"]["live"]["version"] == tag.as_str() {
                break;
            }
            anyhow::ensure!(
                sent.elapsed() < Duration::from_secs(10),
                "a change did not reach the API in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lat.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    let (median, p99) = median_p99(&mut lat);
    Ok((sync, idle_cpu, rss, median, p99))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let apps = env_num("BENCH_APPS", 1000);
    let history = env_num("BENCH_HISTORY", 1_000_000);
    let requests = env_num("BENCH_GRID_REQUESTS", 500);
    let secs = env_num("BENCH_SECONDS", 10);
    let bin = PathBuf::from(
        std::env::var("BENCH_SERVER").unwrap_or_else(|_| "target/release/release".into()),
    );
    let dir = tempfile::tempdir()?;
    let environments = Environments::new(
        &ENVIRONMENTS
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>(),
    )?;
    let config = config_file(dir.path())?;
    let mut report = String::new();

    // 1. The grid at 1,000 x 5 with 1,000,000 deployments.
    let started = Instant::now();
    let (url, token) = seed(dir.path(), apps, history, environments.clone()).await?;
    eprintln!("seeded in {:.0} s", started.elapsed().as_secs_f64());
    let server = start(&bin, &url, Some(&config)).await?;
    let (stats_med, stats_p99, stats, count_secs) = stats_latency(
        &server.base,
        &token,
        &url,
        &environments,
        "/api/v1/stats",
        env_num("BENCH_STATS_REQUESTS", 200),
    )
    .await?;
    let in_range: u64 = stats["deployment_frequency"]
        .as_object()
        .map(|m| m.values().filter_map(|f| f["deployments"].as_u64()).sum())
        .unwrap_or(0);
    anyhow::ensure!(in_range > 0, "the stats counted nothing: {stats}");
    let (app_med, app_p99, _, _) = stats_latency(
        &server.base,
        &token,
        &url,
        &environments,
        "/api/v1/stats?application=service-001",
        env_num("BENCH_STATS_REQUESTS", 200),
    )
    .await?;
    eprintln!("stats: counted in {count_secs:.1} s; 90 days {stats_med:.2} ms median; one app {app_med:.2} ms");
    let (median, p99, _) = grid_latency(&server.base, requests).await?;
    let page = signed_in(&server.base)
        .await?
        .get(format!("{}/", server.base))
        .send()
        .await?
        .bytes()
        .await?;
    let page_gz = gzip_bytes(&page)?;
    let rows = String::from_utf8_lossy(&page)
        .matches("<th><a href=\"/applications/")
        .count();
    anyhow::ensure!(
        rows as i64 == apps,
        "the grid shows {rows} rows, not {apps}"
    );
    let fragment = signed_in(&server.base)
        .await?
        .get(format!("{}/api/grid.html", server.base))
        .send()
        .await?;
    let etag = fragment
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let fragment = fragment.bytes().await?;
    let per_row = fragment.len() as f64 / apps as f64;
    let revalidated = signed_in(&server.base)
        .await?
        .get(format!("{}/api/grid.html", server.base))
        .header("if-none-match", &etag)
        .send()
        .await?
        .status();

    // 2. Throughput side by side: wrk on the server's grid, wrk on nginx with its bytes.
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), &page)?;
    let web = nginx(dir.path(), &www).await?;
    let cookie = format!("Cookie: {}", session_cookie(&server.base).await?);
    let duration = format!("{secs}s");
    // The same load for both: 2 threads, 8 connections, `secs` seconds.
    let load = |extra: &[&str], url: &str| {
        let mut args = vec!["-t2", "-c8", "-d", &duration, "--timeout", "10s"];
        args.extend_from_slice(extra);
        args.push(url);
        wrk(&args)
    };
    let ours = load(&["-H", &cookie], &format!("{}/", server.base))?;
    let theirs = load(&[], &format!("http://127.0.0.1:{}/", web.port))?;
    drop(web);

    // 3. Ingest: POST /deployments under wrk, 16 connections; BENCH_INGEST_RUNS runs (3),
    // the median reported with the range (one run's figure drifts by 15% on this machine).
    let script = notify_script(dir.path(), &token, apps)?;
    let mut runs = Vec::new();
    for _ in 0..env_num("BENCH_INGEST_RUNS", 3).max(1) {
        runs.push(wrk(&[
            "-t2",
            "-c16",
            "-d",
            &duration,
            "--timeout",
            "10s",
            "-s",
            &script.display().to_string(),
            &server.base,
        ])?);
        eprintln!(
            "POST /deployments run: {:.0}/s",
            runs.last().map_or(0.0, |r| r.0)
        );
    }
    let (notify_errors, notify_socket) = runs.iter().fold((0, 0), |(a, b), r| (a + r.1, b + r.2));
    let mut rates: Vec<f64> = runs.iter().map(|r| r.0).collect();
    rates.sort_by(f64::total_cmp);
    let notify = (rates[rates.len() / 2], rates[0], rates[rates.len() - 1]);

    // 4. Live deltas to 1,000 open grids.
    let clients = env_num("BENCH_SSE_CLIENTS", 1000) as usize;
    let (d_med, d_p99, d_bytes) = grid_deltas(
        &server.base,
        &token,
        clients,
        env_num("BENCH_SSE_EVENTS", 20) as usize,
    )
    .await?;
    let sse_rss = server.rss_mib();
    let peak = server.peak_mib();
    drop(server);

    // 4b. The Argo CD observers' cost: 1,000 apps x 5 environments.
    let obs_store = Store::connect(&url, environments.clone()).await?;
    let (obs_sync, obs_cpu, obs_rss, obs_med, obs_p99) =
        observer_cost(&bin, &url, &config, &obs_store, apps, &token).await?;
    obs_store.close().await;

    // 5. The grid page's cold load, gzipped: HTML + JS + wasm + CSS.
    let pkg = Path::new("target/site/pkg");
    let wasm_path = if pkg.join("release_bg.wasm").exists() {
        pkg.join("release_bg.wasm")
    } else {
        pkg.join("release.wasm")
    };
    let (wasm_raw, wasm_gz) = file_sizes(&wasm_path)?;
    let (_, main_js_gz) = file_sizes(&pkg.join("release.js"))?;
    // The split loader is imported by release.js: part of every page's load.
    let split_js_gz = if pkg.join("__wasm_split.js").exists() {
        file_sizes(&pkg.join("__wasm_split.js"))?.1
    } else {
        0
    };
    let js_gz = main_js_gz + split_js_gz;
    // The lazy routes' chunks: fetched only when their page is shown.
    let (mut chunks_raw, mut chunks_gz, mut chunks) = (0u64, 0u64, 0usize);
    for entry in std::fs::read_dir(pkg)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".wasm") && (name.starts_with("split_") || name.starts_with("chunk_")) {
            let (r, g) = file_sizes(&path)?;
            chunks_raw += r;
            chunks_gz += g;
            chunks += 1;
        }
    }
    let (_, css_gz) = file_sizes(&pkg.join("release.css"))?;
    let cold = page_gz + js_gz + wasm_gz + css_gz;

    // 6. The mixed workload, on SQLite and (when one answers) PostgreSQL.
    let load_apps = env_num("BENCH_LOAD_APPS", 300);
    let load_secs = env_num("BENCH_LOAD_SECONDS", 60) as u64;
    let mut load = Vec::new();
    {
        let load_dir = dir.path().join("load");
        std::fs::create_dir_all(&load_dir)?;
        let (url, token) = seed(&load_dir, load_apps, 1_000, Environments::default()).await?;
        let server = start(&bin, &url, None).await?;
        load.push(("SQLite", mixed_load(&server.base, &token, load_secs).await?));
    }
    match seed_postgres(load_apps).await? {
        Some((url, token)) => {
            let server = start(&bin, &url, None).await?;
            load.push((
                "PostgreSQL",
                mixed_load(&server.base, &token, load_secs).await?,
            ));
        }
        None => eprintln!("PostgreSQL not reachable: the mixed load runs on SQLite only"),
    }

    let kb = |b: f64| b / 1024.0;
    report.push_str(&format!(
        "Machine: {} cores; SQLite; {apps} apps x {} environments; {history} deployments; server `{}`.\n\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        ENVIRONMENTS.len(),
        bin.display()
    ));
    let measures: [(String, String, &str); 17] = [
        (format!("grid page, {apps} apps x {} environments", ENVIRONMENTS.len()), format!("{:.0} KB of HTML, {:.0} KB gzipped", kb(page.len() as f64), kb(page_gz as f64)), "<= 400 KB (<= 60 KB gzipped)"),
        ("grid bytes per row (`/api/grid.html` / apps)".to_owned(), format!("{per_row:.0} bytes"), "budget test: `tests/api/pages.rs`"),
        (format!("grid median / p99 (sequential, signed in, {requests} requests)"), format!("{median:.2} ms / {p99:.2} ms"), "<= 10 ms median"),
        (format!("grid throughput, wrk -t2 -c8 -d{secs}s: Release / nginx serving the same bytes"), format!("{:.0} / {:.0} req/s = **{:.3}**", ours.0, theirs.0, ours.0 / theirs.0), ">= 0.10 (aim 0.25)"),
        (format!("`POST /deployments`, wrk -t2 -c16 -d{secs}s, median of {} runs", rates.len()), format!("**{:.0}/s** (range {:.0} to {:.0}), {} non-2xx, {} socket errors in all", notify.0, notify.1, notify.2, notify_errors, notify_socket), ">= 5,000/s, zero errors"),
        (format!("live delta: event sent -> changed row applied at each of {clients} open grids"), format!("median {d_med:.1} ms, **p99 {d_p99:.1} ms**; {d_bytes:.0} bytes per change per browser; server RSS {sse_rss:.0} MiB"), "p99 <= 100 ms, <= 5 KB, RSS <= 150 MB"),
        ("wasm: the grid's bundle (main module)".to_owned(), format!("{:.0} KB raw / **{:.0} KB gzipped**", kb(wasm_raw as f64), kb(wasm_gz as f64)), "<= 250 KB gzipped"),
        ("wasm: the other pages' lazy chunks, fetched when first shown".to_owned(), format!("{chunks} files, {:.0} KB raw / {:.0} KB gzipped", kb(chunks_raw as f64), kb(chunks_gz as f64)), ""),
        ("grid page cold load, gzipped: HTML + JS + wasm + CSS".to_owned(), format!("{:.0} + {:.0} + {:.0} + {:.0} = **{:.0} KB**", kb(page_gz as f64), kb(js_gz as f64), kb(wasm_gz as f64), kb(css_gz as f64), kb(cold as f64)), ""),
        (format!("`GET /api/v1/stats`, all apps, 90 days ({in_range} deployments in range; sequential)"), format!("median **{stats_med:.2} ms**, p99 {stats_p99:.2} ms"), "<= 50 ms median"),
        ("`GET /api/v1/stats?application=service-001`, 90 days (counted on demand)".to_owned(), format!("median {app_med:.2} ms, p99 {app_p99:.2} ms"), ""),
        ("stats task: the whole history counted once the server started (from a fresh database)".to_owned(), format!("{count_secs:.1} s"), ""),
        ("`/api/grid.html` revalidated with its ETag".to_owned(), format!("{}", revalidated.as_u16()), "304"),
        ("server peak memory (VmHWM)".to_owned(), format!("{peak:.0} MiB"), ""),
        (format!("Argo CD observers, {apps} apps x {} environments: first sync (list, every cell recorded)", ENVIRONMENTS.len()), format!("{obs_sync:.1} s"), ""),
        ("observers idle (5 watches open, 10 s): server CPU, RSS".to_owned(), format!("{obs_cpu:.2} % of a core, {obs_rss:.0} MiB"), ""),
        ("an Argo CD change (watch event) -> the API shows it, 20 changes".to_owned(), format!("median {obs_med:.1} ms, p99 {obs_p99:.1} ms"), ""),
    ];
    report.push_str(&markdown_table(
        ["measure", "figure", "limit asked"],
        &measures,
    ));
    report.push_str(&format!(
        "\n### Mixed load, {load_secs} s, {load_apps} apps x 3 environments (4 notifiers, 3 event senders, 2 people browsing the grid and activity pages, signing in again every 5 s)\n\n\
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

/// A Markdown table: the header, then one line a row (measure, figure, limit).
fn markdown_table(header: [&str; 3], rows: &[(String, String, &str)]) -> String {
    let mut table = format!("| {} |\n|---|---|---|\n", header.join(" | "));
    for (measure, figure, limit) in rows {
        table.push_str(&format!("| {measure} | {figure} | {limit} |\n"));
    }
    table
}
