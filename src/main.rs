//! `release`: the dashboard server and its command line.

/// mimalloc: the server allocates and frees small objects on every request from several
/// threads; glibc's allocator spent a fifth of the notification benchmark's time on that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use app::store::Store;
use clap::{Parser, Subcommand};
use release::configuration::Config;
use release::{http, startup, telemetry};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The embedded default: a SQLite file in the working directory, created on first run.
const DEFAULT_DATABASE_URL: &str = "sqlite:release.db";

#[derive(Parser)]
#[command(
    name = "release",
    version,
    about = "Release: which version of each app runs where, and what needs deploying"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DbArgs {
    /// sqlite:PATH (created if missing) or postgres://USER@HOST/DB
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    database_url: String,
    /// The configuration file (environments, applications).
    #[arg(long, env = "RELEASE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the dashboard and the pipeline API.
    Serve {
        #[arg(long, default_value = "127.0.0.1:3000", env = "RELEASE_ADDR")]
        addr: SocketAddr,
        #[command(flatten)]
        db: DbArgs,
        /// Load demo data into an empty database (implies --dev-sign-in when GitHub is
        /// not configured).
        #[arg(long)]
        demo: bool,
        /// Let anyone reaching the loopback address sign in as a demo user of any role.
        /// Only without GitHub sign-in, only on a loopback address.
        #[arg(long)]
        dev_sign_in: bool,
        /// Serve Prometheus metrics at /metrics on this address of its own (no token).
        /// Without it, /metrics is on the main address with RELEASE_METRICS_TOKEN.
        #[arg(long, env = "RELEASE_METRICS_ADDR")]
        metrics_addr: Option<SocketAddr>,
    },
    /// Run the database migrations and exit.
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage the pipeline's API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it once; only its hash is stored.
    Create { name: String },
    /// List tokens (names and dates, never the tokens).
    List,
    /// Revoke a token by name.
    Revoke { name: String },
}

fn load_config(path: Option<&PathBuf>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
}

async fn open_store(db: &DbArgs) -> anyhow::Result<Store> {
    let config = load_config(db.config.as_ref())?;
    let store = Store::connect(&db.database_url, config.environments)
        .await
        .with_context(|| format!("opening {}", app::store::redact_url(&db.database_url)))?;
    store.migrate().await?;
    Ok(store)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            addr,
            db,
            demo,
            dev_sign_in,
            metrics_addr,
        } => {
            let config = load_config(db.config.as_ref())?;
            let dev_sign_in = dev_sign_in || (demo && config.github.is_none());
            let site_root =
                std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into());
            let apps = config.applications.len();
            let limits = config.limits.clone();
            let server = startup::Server::build(startup::Settings {
                addr,
                database_url: db.database_url.clone(),
                config,
                demo,
                dev_sign_in,
                dev_sign_in_key: std::env::var("RELEASE_DEV_SIGN_IN_KEY").ok(),
                limits,
                site_root,
                github_client_secret: std::env::var("RELEASE_GITHUB_CLIENT_SECRET").ok(),
                secret_key: std::env::var("RELEASE_SECRET_KEY").ok(),
                demo_stage_ms: std::env::var("RELEASE_DEMO_STAGE_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(2_000),
                alert_env: std::env::vars()
                    .filter(|(k, _)| {
                        k.starts_with("RELEASE_ALERT_")
                            || k.starts_with("RELEASE_ARGOCD_TOKEN_")
                            || k == "RELEASE_GITHUB_STATS_TOKEN"
                            || k == "RELEASE_GITHUB_WEBHOOK_SECRET"
                            || k == "RELEASE_GITHUB_APP_KEY"
                            || k == "RELEASE_GITHUB_REPORT_TOKEN"
                    })
                    .collect(),
                alert_poll: std::time::Duration::from_secs(1),
                metrics_addr,
                metrics_token: std::env::var("RELEASE_METRICS_TOKEN").ok(),
                argo_tokens: std::env::vars()
                    .filter_map(|(k, v)| {
                        Some((
                            k.strip_prefix("RELEASE_ARGO_TOKEN_")?.to_ascii_lowercase(),
                            v,
                        ))
                    })
                    .collect(),
            })
            .await?;
            let backend = match server.store.backend() {
                app::store::Backend::Sqlite => "SQLite",
                app::store::Backend::Postgres => "PostgreSQL",
            };
            tracing::info!(
                "Release listening on http://{} ({backend} database {}, {apps} applications declared, demo data {})",
                server.local_addr(),
                app::store::redact_url(&db.database_url),
                if server.demo_loaded { "loaded" } else if demo { "not loaded: the database already has deployments" } else { "off" }
            );
            if let Some(link) = server.dev_sign_in_link() {
                tracing::warn!(
                    "no GitHub OAuth app configured: development sign-in is on (loopback only, with the key in this link)"
                );
                // On standard error as well as in the log: the person who started the server
                // opens it (the key is the sign-in's only secret).
                eprintln!("\n  Sign in at {link}\n");
            }
            if let Some(m) = server.metrics_addr() {
                tracing::info!("Prometheus metrics on http://{m}/metrics");
            }
            server.run_until(shutdown_signal()).await?;
            tracing::info!("Release stopped");
        }
        Command::Migrate { db } => {
            open_store(&db).await?;
            println!(
                "migrations applied to {}",
                app::store::redact_url(&db.database_url)
            );
        }
        Command::Token { command, db } => {
            let store = open_store(&db).await?;
            match command {
                TokenCommand::Create { name } => {
                    let name = name.trim();
                    anyhow::ensure!(
                        !name.is_empty()
                            && name.len() <= 100
                            && !name.chars().any(char::is_control),
                        "a token name is 1 to 100 printable characters"
                    );
                    let token = http::api_token::generate_token();
                    store
                        .create_token(name, &http::api_token::hash_token(&token))
                        .await?;
                    eprintln!("Token {name:?} created. It is shown only this once; Release keeps only its hash.");
                    println!("{token}");
                }
                TokenCommand::List => {
                    for t in store.list_tokens().await? {
                        let state = match t.revoked_at_ms {
                            Some(ms) => format!("revoked {}", app::model::exact_time(ms)),
                            None => "active".into(),
                        };
                        println!(
                            "{}\tcreated {}\t{state}",
                            t.name,
                            app::model::exact_time(t.created_at_ms)
                        );
                    }
                }
                TokenCommand::Revoke { name } => {
                    store.revoke_token(&name).await?;
                    println!("token {name:?} revoked");
                }
            }
            store.close().await;
        }
    }
    Ok(())
}

/// Ctrl-C or SIGTERM: stop taking connections, finish what is in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
