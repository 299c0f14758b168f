//! The real `release` binary, started by a test, for what only a process shows (its
//! memory, a kill -9 and a restart).
#![allow(dead_code)]

use std::time::Duration;

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `release serve --addr 127.0.0.1:{port}` with `args` and `envs`, killed when dropped.
pub fn serve(port: u16, args: &[&str], envs: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_release"));
    cmd.args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .env("RUST_LOG", "error")
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the release binary starts")
}

/// Waits (at most 20 s) until `base` answers its readiness check.
pub async fn wait_ready(base: &str) {
    wait_ready_within(base, 400, Duration::from_millis(50)).await;
}

/// Waits until `base` answers its readiness check, asking at most `attempts` times,
/// `interval` apart.
pub async fn wait_ready_within(base: &str, attempts: u32, interval: Duration) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..attempts {
        if http
            .get(format!("{base}/healthcheck/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        tokio::time::sleep(interval).await;
    }
    panic!("the server at {base} did not become ready");
}

/// A memory figure of the process (`VmRSS`, `VmHWM`...), in bytes.
pub fn memory(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("the process's memory")
        * 1024
}
