//! Logging. `RUST_LOG` picks the level; the default is info for Release, warn for the rest.

use tracing_subscriber::{fmt, EnvFilter};

pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("release=info,app=info,warn"));
    let _ = fmt().with_env_filter(filter).with_target(false).try_init();
}
